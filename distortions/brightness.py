"""Brightness family: brighten and darken (tone curves), mean shift up and down."""
from __future__ import annotations

import cv2
import numpy as np

from distortions._registry import register
from distortions._util import apply_tone_curve, from_lab, to_lab

BRIGHTEN_AMOUNTS = (0.1, 0.2, 0.4, 0.7, 1.1)
DARKEN_AMOUNTS = (0.05, 0.1, 0.2, 0.4, 0.8)
MEAN_SHIFTS = (0.05, 0.1, 0.15, 0.2, 0.25)
GRAY = np.linspace(0.0, 1.0, 256)


def midpoint_curve(x: np.ndarray, amount: float) -> np.ndarray:
    """KADID's tone curve through (0,0), (0.5, 0.5+amount/2), (1,1) (a spline through 3 points is this parabola), clipped."""
    return np.clip(x + 2 * amount * x * (1 - x), 0.0, 1.0)


@register(
    "brighten",
    family="brightness",
    levels=BRIGHTEN_AMOUNTS,
    parameter="curve amount (midpoint 0.5 + amount/2)",
    description="Tone curve lifting mid-tones, mixed 2:1 from RGB and from Lab lightness (KADID #16).",
    source="KADID-10k imbrighten",
)
def brighten(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    amount = BRIGHTEN_AMOUNTS[level - 1]
    rgb_curved = apply_tone_curve(image, midpoint_curve(GRAY, amount))
    lab = to_lab(image)
    lab[:, :, 0] = 100 * midpoint_curve(lab[:, :, 0] / 100, amount)
    return cv2.addWeighted(rgb_curved, 2 / 3, from_lab(lab), 1 / 3, 0.0)


@register(
    "darken",
    family="brightness",
    levels=DARKEN_AMOUNTS,
    parameter="curve amount (midpoint 0.5 - amount/2)",
    description="Tone curve lowering mid-tones on RGB (KADID #17).",
    source="KADID-10k imdarken",
)
def darken(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    return apply_tone_curve(image, midpoint_curve(GRAY, -DARKEN_AMOUNTS[level - 1]))


@register(
    "mean_shift_up",
    family="brightness",
    levels=MEAN_SHIFTS,
    parameter="offset (image in [0,1])",
    description="Constant added to every value, clipped (KADID #18 brighter half, no final re-stretch).",
    source="KADID-10k immeanshift, TID2013 #16",
)
def mean_shift_up(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    return apply_tone_curve(image, GRAY + MEAN_SHIFTS[level - 1])


@register(
    "mean_shift_down",
    family="brightness",
    levels=MEAN_SHIFTS,
    parameter="offset (image in [0,1])",
    description="Constant subtracted from every value, clipped (KADID #18 darker half, no final re-stretch).",
    source="KADID-10k immeanshift, TID2013 #16",
)
def mean_shift_down(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    return apply_tone_curve(image, GRAY - MEAN_SHIFTS[level - 1])
