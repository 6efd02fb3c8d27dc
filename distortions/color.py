"""Colour family: colour diffusion, colour shift, quantization with dither, saturation, chromatic aberration."""
from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from distortions._registry import register
from distortions._util import area_scale, from_lab, gaussian, to_lab

DIFFUSION_AMOUNTS = (1, 3, 6, 8, 12)
SHIFT_AMOUNTS = (1, 3, 6, 8, 12)
QUANTIZATION_COLORS = (64, 48, 32, 16, 8)
PALETTE_SIDE = 160
SATURATION_FACTORS = (0.6, 0.4, 0.2, 0.1, 0.0)
OVERSATURATION_FACTORS = (1.5, 2.0, 3.0, 6.0, 9.0)
ABERRATION_SHIFTS = (1, 2, 3, 5, 8)


@register(
    "color_diffusion",
    family="color",
    levels=DIFFUSION_AMOUNTS,
    parameter="amount (chroma blur and gain)",
    description="Lab chroma blurred with sigma 1.5*amount+2 and multiplied by amount (KADID #4).",
    source="KADID-10k imcolordiffuse",
)
def color_diffusion(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    amount = DIFFUSION_AMOUNTS[level - 1]
    lab = to_lab(image)
    lab[:, :, 1:] = gaussian(np.ascontiguousarray(lab[:, :, 1:]), 1.5 * amount + 2) * np.float32(amount)
    return from_lab(lab)


def stretch(values: np.ndarray) -> np.ndarray:
    """Min-max stretch to [0, 1] (MATLAB mapmm); a constant array becomes zeros."""
    low, high = float(values.min()), float(values.max())
    return (values - low) / (high - low) if high > low else np.zeros_like(values)


def edge_weight(image: np.ndarray, sigma: float, floor: float) -> np.ndarray:
    """Where colour shifts show: gradient magnitude blurred by ``sigma`` px, stretched to [0, 1], floored at ``floor``."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32) * np.float32(1 / 255)
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REPLICATE)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REPLICATE)
    return np.clip(stretch(gaussian(cv2.magnitude(gx, gy), sigma)), floor, 1.0)


@register(
    "color_shift",
    family="color",
    levels=SHIFT_AMOUNTS,
    parameter="green shift (px at 512x384)",
    description="Green channel shifted in one random direction, blended in near edges (KADID #5).",
    source=(
        "KADID-10k imcolorshift (any direction; sub-pixel shift scaled with sqrt(area); "
        "edge map blurred by 4 + shift/2 px and floored at 0.1*(1 + shift/4), not 4 px and 0.1)"
    ),
)
def color_shift(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    angle = rng.uniform(0.0, 2 * np.pi)
    amount = SHIFT_AMOUNTS[level - 1]
    scale = area_scale(image.shape)
    weight = edge_weight(image, max(0.5, (4.0 + amount / 2) * scale), 0.1 * (1 + amount / 4))
    height, width = image.shape[:2]
    move = np.float32([[1, 0, np.cos(angle) * amount * scale], [0, 1, np.sin(angle) * amount * scale]])
    green = np.ascontiguousarray(image[:, :, 1])
    shifted = cv2.warpAffine(green, move, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    out = image.copy()
    blended = weight * shifted.astype(np.float32) + (1 - weight) * green.astype(np.float32)
    out[:, :, 1] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return out


@register(
    "color_quantization",
    family="color",
    levels=QUANTIZATION_COLORS,
    parameter="palette colours",
    description="Median-cut palette (built on a <=160 px copy) with Floyd-Steinberg dither (KADID #6).",
    source="KADID-10k imcolorquantize (MATLAB rgb2ind uses minimum-variance quantization)",
)
def color_quantization(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    picture = Image.fromarray(np.ascontiguousarray(image))
    factor = max(1, int(np.ceil(max(image.shape[:2]) / PALETTE_SIDE)))
    sample = picture.reduce(factor) if factor > 1 else picture
    palette = sample.quantize(colors=QUANTIZATION_COLORS[level - 1], method=Image.Quantize.MEDIANCUT)
    quantized = picture.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG)
    return np.array(quantized.convert("RGB"))


@register(
    "color_saturation_decrease",
    family="color",
    levels=SATURATION_FACTORS,
    parameter="HSV saturation factor",
    description="HSV saturation multiplied by a factor < 1, down to gray (KADID #7; its negative factor dropped).",
    source="KADID-10k imcolorsaturate",
)
def color_saturation_decrease(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    factor = SATURATION_FACTORS[level - 1]
    value = np.ascontiguousarray(image.max(axis=2))
    return cv2.addWeighted(np.ascontiguousarray(image), factor, cv2.merge([value] * 3), 1.0 - factor, 0.0)


@register(
    "color_saturation_increase",
    family="color",
    levels=OVERSATURATION_FACTORS,
    parameter="Lab chroma factor",
    description="Lab chroma (a, b) multiplied by a factor > 1, clipped to RGB (KADID #8; identity factor 1 -> 1.5).",
    source="KADID-10k imsaturate",
)
def color_saturation_increase(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    lab = to_lab(image)
    lab[:, :, 1:] *= np.float32(OVERSATURATION_FACTORS[level - 1])
    return from_lab(lab)


def zoom_channel(channel: np.ndarray, factor: float) -> np.ndarray:
    """One channel magnified by ``factor`` about the image centre (bilinear, replicate border)."""
    height, width = channel.shape
    cx, cy = (width - 1) / 2, (height - 1) / 2
    matrix = np.float32([[factor, 0, (1 - factor) * cx], [0, factor, (1 - factor) * cy]])
    return cv2.warpAffine(channel, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


@register(
    "chromatic_aberration",
    family="color",
    levels=ABERRATION_SHIFTS,
    parameter="red shift at the corners (px)",
    description="Lateral chromatic aberration: red magnified, blue shrunk by half as much, about the centre.",
    source="TID2013 #23 (radial instead of TID's uniform channel shift)",
)
def chromatic_aberration(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    height, width = image.shape[:2]
    relative = ABERRATION_SHIFTS[level - 1] / (0.5 * np.hypot(height, width))
    out = image.copy()
    out[:, :, 0] = zoom_channel(np.ascontiguousarray(image[:, :, 0]), 1 + relative)
    out[:, :, 2] = zoom_channel(np.ascontiguousarray(image[:, :, 2]), 1 - relative / 2)
    return out
