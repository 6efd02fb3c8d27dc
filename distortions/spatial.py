"""Spatial family: jitter, non-eccentricity patches, pixelation, value quantization, colour blocks.

Patch and block sides are given for a 512x384 image and scale with sqrt(area), so the fraction of
the image they cover does not depend on its size.
"""
from __future__ import annotations

import cv2
import numpy as np

from distortions._registry import register
from distortions._util import scaled_length
from distortions.noise import normal_field

JITTER_AMOUNTS = (0.05, 0.1, 0.2, 0.5, 1.0)
JITTER_ITERATIONS = 5
PATCH_COUNTS = (20, 40, 60, 80, 100)
PATCH_SIDE, PATCH_OFFSET = 16, 8
PIXELATE_BLOCKS = (2, 3, 4, 6, 8)
QUANTIZATION_LEVELS = (20, 16, 13, 10, 7)
LLOYD_ITERATIONS = 30
BLOCK_COUNTS = (2, 4, 6, 8, 10)
BLOCK_SIDE = 32


@register(
    "jitter",
    family="spatial",
    levels=JITTER_AMOUNTS,
    parameter="per-step displacement sd (px)",
    description="Random per-pixel displacement: one bicubic warp by the sum of KADID's 5 steps (sd sqrt(5)*a).",
    source="KADID-10k imjitter (5 successive warps collapsed into one)",
)
def jitter(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    height, width = image.shape[:2]
    field = normal_field((2, height, width), rng)
    scale = np.float32(np.sqrt(JITTER_ITERATIONS) * JITTER_AMOUNTS[level - 1])
    grid_y, grid_x = np.mgrid[0:height, 0:width].astype(np.float32)
    return cv2.remap(
        image, grid_x + scale * field[1], grid_y + scale * field[0], cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
    )


def moved(starts: np.ndarray, limit: int, upper: int, rng: np.random.Generator) -> np.ndarray:
    """``starts`` moved by a non-zero offset in [-limit, limit], mirrored when it would leave [0, upper]."""
    offsets = rng.integers(1, limit + 1, len(starts)) * rng.choice([-1, 1], len(starts))
    targets = starts + offsets
    return np.clip(np.where((targets < 0) | (targets > upper), starts - offsets, targets), 0, upper)


@register(
    "non_eccentricity_patch",
    family="spatial",
    levels=PATCH_COUNTS,
    parameter="patches (16 px at 512x384)",
    description="Patches copied a few px away from where they were cut; level k adds patches to level k-1 (KADID #20).",
    source="KADID-10k imnoneccentricity",
)
def non_eccentricity_patch(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    height, width = image.shape[:2]
    side = min(scaled_length(PATCH_SIDE, image.shape, 2), height // 2, width // 2)
    limit = min(scaled_length(PATCH_OFFSET, image.shape, 1), side)
    count = PATCH_COUNTS[-1]
    ys, xs = rng.integers(0, height - side + 1, count), rng.integers(0, width - side + 1, count)
    to_y, to_x = moved(ys, limit, height - side, rng), moved(xs, limit, width - side, rng)
    out = image.copy()
    used = PATCH_COUNTS[level - 1]
    for y, x, ty, tx in zip(ys[:used], xs[:used], to_y[:used], to_x[:used]):
        out[ty : ty + side, tx : tx + side] = image[y : y + side, x : x + side]
    return out


@register(
    "pixelate",
    family="spatial",
    levels=PIXELATE_BLOCKS,
    parameter="block side (px)",
    description="Mosaic: each block replaced by its mean colour (KADID #21 resizes by 0.89..0.29 nearest, not ordered).",
    source="KADID-10k impixelate (block averaging instead of nearest-neighbour resizing, which is not ordered)",
)
def pixelate(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    height, width = image.shape[:2]
    block = PIXELATE_BLOCKS[level - 1]
    pad_y, pad_x = -height % block, -width % block
    padded = cv2.copyMakeBorder(image, 0, pad_y, 0, pad_x, cv2.BORDER_REPLICATE)
    rows, cols = padded.shape[0] // block, padded.shape[1] // block
    small = cv2.resize(padded, (cols, rows), interpolation=cv2.INTER_AREA)
    return np.repeat(np.repeat(small, block, axis=0), block, axis=1)[:height, :width]


def lloyd_levels(image: np.ndarray, count: int) -> np.ndarray:
    """A 256-entry lookup table mapping each value to its cell's centroid (Lloyd-Max on the value histogram)."""
    histogram = np.bincount(image.ravel(), minlength=256).astype(np.float64)
    values = np.arange(256, dtype=np.float64)
    cdf = np.cumsum(histogram) / histogram.sum()
    centers = np.searchsorted(cdf, (np.arange(count) + 0.5) / count).astype(np.float64)
    for _ in range(LLOYD_ITERATIONS):
        centers = np.unique(centers)
        cell = np.searchsorted((centers[1:] + centers[:-1]) / 2, values)
        weights = np.bincount(cell, weights=histogram, minlength=len(centers))
        sums = np.bincount(cell, weights=histogram * values, minlength=len(centers))
        updated = np.where(weights > 0, sums / np.maximum(weights, 1e-12), centers)
        if np.allclose(updated, centers):
            break
        centers = updated
    cell = np.searchsorted((centers[1:] + centers[:-1]) / 2, values)
    return np.clip(np.rint(centers[cell]), 0, 255).astype(np.uint8)


@register(
    "quantization",
    family="spatial",
    levels=QUANTIZATION_LEVELS,
    parameter="levels shared by R, G, B",
    description="All RGB values quantized to N levels chosen by Lloyd-Max on their histogram (KADID #22 uses multi-Otsu).",
    source="KADID-10k imnoisequantize",
)
def quantization(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    return cv2.LUT(np.ascontiguousarray(image), lloyd_levels(image, QUANTIZATION_LEVELS[level - 1]))


@register(
    "color_block",
    family="spatial",
    levels=BLOCK_COUNTS,
    parameter="blocks (32 px at 512x384)",
    description="Opaque squares of random uniform colour at random places; level k adds blocks to level k-1 (KADID #23).",
    source="KADID-10k imcolorblock",
)
def color_block(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    height, width = image.shape[:2]
    side = min(scaled_length(BLOCK_SIDE, image.shape, 3), height, width)
    count = BLOCK_COUNTS[-1]
    ys, xs = rng.integers(0, height - side + 1, count), rng.integers(0, width - side + 1, count)
    colors = rng.integers(0, 256, (count, 3), dtype=np.uint8)
    out = image.copy()
    used = BLOCK_COUNTS[level - 1]
    for y, x, color in zip(ys[:used], xs[:used], colors[:used]):
        out[y : y + side, x : x + side] = color
    return out
