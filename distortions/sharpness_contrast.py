"""Sharpness and contrast family: over-sharpening, contrast increase and decrease (tone curves)."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.interpolate import PchipInterpolator

from distortions._registry import register
from distortions._util import apply_tone_curve, from_lab, gaussian, to_lab

SHARPEN_AMOUNTS = (1, 2, 3, 6, 12)
SHARPEN_RADIUS = 3.0
CONTRAST_INCREASE_KNEES = (0.25, 0.21, 0.17, 0.13, 0.09)
CONTRAST_DECREASE_KNEES = (0.34, 0.37, 0.40, 0.43, 0.46)


@register(
    "high_sharpen",
    family="sharpness_contrast",
    levels=SHARPEN_AMOUNTS,
    parameter="unsharp-mask amount (radius 3 px)",
    description="Unsharp mask on Lab lightness only, like MATLAB imsharpen (KADID #24).",
    source="KADID-10k imsharpenHi",
)
def high_sharpen(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    lab = to_lab(image)
    lightness = np.ascontiguousarray(lab[:, :, 0])
    detail = lightness - gaussian(lightness, SHARPEN_RADIUS)
    lab[:, :, 0] = np.clip(lightness + np.float32(SHARPEN_AMOUNTS[level - 1]) * detail, 0, 100)
    return from_lab(lab)


@lru_cache(maxsize=None)
def contrast_curve(knee: float) -> np.ndarray:
    """256-entry tone curve through (0,0), (0.3,knee), (0.5,0.5), (0.7,1-knee), (1,1); monotone (PCHIP)."""
    curve = PchipInterpolator([0.0, 0.3, 0.5, 0.7, 1.0], [0.0, knee, 0.5, 1.0 - knee, 1.0])
    return curve(np.linspace(0.0, 1.0, 256))


@register(
    "contrast_increase",
    family="sharpness_contrast",
    levels=CONTRAST_INCREASE_KNEES,
    parameter="curve value at 0.3 (0.3 = identity)",
    description="S-shaped tone curve on RGB (KADID #25 increasing half; monotone PCHIP instead of a spline).",
    source="KADID-10k imcontrastc",
)
def contrast_increase(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    return apply_tone_curve(image, contrast_curve(CONTRAST_INCREASE_KNEES[level - 1]))


@register(
    "contrast_decrease",
    family="sharpness_contrast",
    levels=CONTRAST_DECREASE_KNEES,
    parameter="curve value at 0.3 (0.3 = identity)",
    description="Inverse-S tone curve flattening mid-tones (KADID #25 decreasing half; monotone PCHIP).",
    source="KADID-10k imcontrastc",
)
def contrast_decrease(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    return apply_tone_curve(image, contrast_curve(CONTRAST_DECREASE_KNEES[level - 1]))
