"""Patches: where crops are cut from an image (seeded, or on a regular grid), and cutting them.

``patch_positions`` is the one seeded crop drawer: scoring (``patches`` crops per image),
fine-tuning and rank training (one crop per item) all take their crops from it. Images come in
through ``rankiqa.imageio`` (``as_rgb``, ``fit_to_patch``); nothing here decodes or resizes.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from rankiqa.imageio import as_rgb, fit_to_patch
from rankiqa.seeding import stable_seed

MAX_GRID_CELLS = 12


def patch_positions(shape: tuple[int, ...], patches: int, patch_size: int, seed: int) -> np.ndarray:
    """(patches, 2) int array of top-left (row, column) corners, uniform over the valid range."""
    height, width = shape[:2]
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, height - patch_size + 1, size=patches)
    cols = rng.integers(0, width - patch_size + 1, size=patches)
    return np.stack([rows, cols], axis=1)


def grid_positions(shape: tuple[int, ...], patch_size: int, max_cells: int = MAX_GRID_CELLS) -> np.ndarray:
    """(rows*cols, 2) top-left corners of a regular grid of patches covering the image, row-major.

    Up to ``max_cells`` patches per side, evenly spaced from edge to edge (overlapping or with gaps).
    """
    height, width = shape[:2]
    rows = np.linspace(0, height - patch_size, min(max_cells, -(-height // patch_size))).round().astype(int)
    cols = np.linspace(0, width - patch_size, min(max_cells, -(-width // patch_size))).round().astype(int)
    return np.stack(np.meshgrid(rows, cols, indexing="ij"), axis=-1).reshape(-1, 2)


def crop_patches(image: np.ndarray, positions: np.ndarray, patch_size: int) -> np.ndarray:
    """(N, P, P, 3) uint8 crops of ``image`` at ``positions`` (views copied into one small array)."""
    return np.stack([image[r : r + patch_size, c : c + patch_size] for r, c in positions])


def seeded_patches(image: Any, patches: int, patch_size: int, seed: int) -> np.ndarray:
    """Crops at positions seeded by (seed, image size) only: every version of one photo (pristine,
    distorted, re-encoded) is compared on the same crops, and a score never depends on the file
    name, the batch or the other images scored with it. ``image``: a uint8 array or PIL image
    (``rankiqa.imageio.as_rgb``), upscaled first when a side is below ``patch_size``."""
    rgb = fit_to_patch(as_rgb(image), patch_size)
    positions = patch_positions(rgb.shape, patches, patch_size, stable_seed(seed, *rgb.shape[:2]))
    return crop_patches(rgb, positions, patch_size)
