"""Helpers shared by the distortion families: float conversion, Lab, Gaussian filtering, tone curves, sizes."""
from __future__ import annotations

import cv2
import numpy as np

REFERENCE_AREA = 512 * 384
"""Pixel area of a KADID-10k image; sizes of patches and blocks are given for this area and scaled."""


def to_float(image: np.ndarray) -> np.ndarray:
    """uint8 -> float32 in [0, 1]."""
    return image.astype(np.float32) * np.float32(1 / 255)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """float in [0, 1] -> uint8, rounded and clipped."""
    return np.clip(np.rint(image * np.float32(255)), 0, 255).astype(np.uint8)


def to_lab(image: np.ndarray) -> np.ndarray:
    """uint8 RGB -> float32 CIE Lab (L in 0..100, a and b roughly -128..127)."""
    return cv2.cvtColor(to_float(image), cv2.COLOR_RGB2Lab)


def from_lab(lab: np.ndarray) -> np.ndarray:
    """float32 CIE Lab -> uint8 RGB, clipped to the RGB cube."""
    return to_uint8(cv2.cvtColor(np.ascontiguousarray(lab, dtype=np.float32), cv2.COLOR_Lab2RGB))


def gaussian(image: np.ndarray, sigma: float, border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
    """Gaussian blur with MATLAB imgaussfilt's kernel size 2*ceil(2*sigma)+1 (replicate border by default)."""
    ksize = 2 * int(np.ceil(2 * sigma)) + 1
    return cv2.GaussianBlur(image, (ksize, ksize), sigmaX=sigma, sigmaY=sigma, borderType=border)


def apply_tone_curve(image: np.ndarray, curve: np.ndarray) -> np.ndarray:
    """Map uint8 values through ``curve`` (256 floats in [0, 1] or beyond, clipped) with a lookup table."""
    lut = np.clip(np.rint(np.asarray(curve, dtype=np.float64) * 255), 0, 255).astype(np.uint8)
    return cv2.LUT(np.ascontiguousarray(image), lut)


def area_scale(shape: tuple[int, ...]) -> float:
    """sqrt(H*W / (512*384)): how much a length given for a KADID-sized image grows on this image."""
    return float(np.sqrt(shape[0] * shape[1] / REFERENCE_AREA))


def scaled_length(length: float, shape: tuple[int, ...], minimum: int) -> int:
    """``length`` px (given for a 512x384 image) scaled to this image's area, at least ``minimum``."""
    return max(minimum, int(round(length * area_scale(shape))))


def strictly_increasing_counts(counts: tuple[int, ...], shape: tuple[int, ...]) -> tuple[int, ...]:
    """Counts given for a 512x384 image, scaled by area and forced to 1, 2, ... at least (strictly increasing)."""
    scale = area_scale(shape) ** 2
    out: list[int] = []
    for count in counts:
        out.append(max(out[-1] + 1 if out else 1, int(round(count * scale))))
    return tuple(out)

