"""Blur family: Gaussian, lens (disk), motion."""
from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from distortions._registry import register
from distortions._util import gaussian

GAUSSIAN_SIGMAS = (0.5, 1.0, 2.0, 3.5, 5.0)
LENS_RADII = (1, 2, 4, 6, 8)
MOTION_LENGTHS = (2, 4, 6, 10, 14)
SUBSAMPLES = 16


@lru_cache(maxsize=None)
def disk_kernel(radius: float) -> np.ndarray:
    """Anti-aliased disk of ``radius`` px (like MATLAB fspecial('disk')): each cell weighted by its area inside."""
    half = int(np.ceil(radius))
    offsets = (np.arange(SUBSAMPLES) + 0.5) / SUBSAMPLES - 0.5
    coords = (np.arange(-half, half + 1)[:, None] + offsets[None, :]).ravel()
    inside = coords[:, None] ** 2 + coords[None, :] ** 2 <= radius**2
    side = 2 * half + 1
    coverage = inside.reshape(side, SUBSAMPLES, side, SUBSAMPLES).mean(axis=(1, 3))
    return (coverage / coverage.sum()).astype(np.float32)


def motion_kernel(length: float, angle_deg: float) -> np.ndarray:
    """A line of ``length`` px through the centre at ``angle_deg`` (counter-clockwise), bilinearly splatted."""
    half = int(np.ceil(length / 2)) + 1
    t = np.linspace(-length / 2, length / 2, int(length * SUBSAMPLES) + 1)
    theta = np.deg2rad(angle_deg)
    xs, ys = half + t * np.cos(theta), half - t * np.sin(theta)
    x0, y0 = np.floor(xs).astype(int), np.floor(ys).astype(int)
    fx, fy = xs - x0, ys - y0
    kernel = np.zeros((2 * half + 2, 2 * half + 2))
    for dy, dx, weight in ((0, 0, (1 - fx) * (1 - fy)), (0, 1, fx * (1 - fy)), (1, 0, (1 - fx) * fy), (1, 1, fx * fy)):
        np.add.at(kernel, (y0 + dy, x0 + dx), weight)
    kernel = kernel[: 2 * half + 1, : 2 * half + 1]
    return (kernel / kernel.sum()).astype(np.float32)


def filter_replicate(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Correlate ``image`` with ``kernel`` (replicate border), rounding back to uint8."""
    return cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REPLICATE)


@register(
    "gaussian_blur",
    family="blur",
    levels=GAUSSIAN_SIGMAS,
    parameter="sigma (px)",
    description="Gaussian low-pass filter (KADID #1; identity sigma 0.1 replaced by a visible 0.5).",
    source="KADID-10k imblurgauss",
)
def gaussian_blur(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    return gaussian(image, GAUSSIAN_SIGMAS[level - 1])


@register(
    "lens_blur",
    family="blur",
    levels=LENS_RADII,
    parameter="disk radius (px)",
    description="Defocus: anti-aliased disk kernel, replicate border (KADID #2).",
    source="KADID-10k imblurlens",
)
def lens_blur(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    return filter_replicate(image, disk_kernel(LENS_RADII[level - 1]))


@register(
    "motion_blur",
    family="blur",
    levels=MOTION_LENGTHS,
    parameter="length (px)",
    description="Linear motion blur at one random angle for all levels (KADID #3; identity length 1 dropped).",
    source="KADID-10k imblurmotion",
)
def motion_blur(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    angle = rng.uniform(0.0, 180.0)
    return filter_replicate(image, motion_kernel(MOTION_LENGTHS[level - 1], angle))
