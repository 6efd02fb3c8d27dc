"""Blur family: Gaussian, lens (disk), motion."""
from __future__ import annotations

import cv2
import numpy as np

from distortions._registry import register

GAUSSIAN_SIGMAS = (0.5, 1.0, 2.0, 3.5, 5.0)


def gaussian(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with MATLAB imgaussfilt's kernel size 2*ceil(2*sigma)+1, replicate border."""
    ksize = 2 * int(np.ceil(2 * sigma)) + 1
    return cv2.GaussianBlur(image, (ksize, ksize), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REPLICATE)


@register(
    "gaussian_blur",
    family="blur",
    levels=GAUSSIAN_SIGMAS,
    parameter="sigma (px)",
    description="Gaussian low-pass filter (KADID #1; sigma 0.1 replaced by a visible 0.5).",
    source="KADID-10k imblurgauss",
)
def gaussian_blur(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    return gaussian(image, GAUSSIAN_SIGMAS[level - 1])
