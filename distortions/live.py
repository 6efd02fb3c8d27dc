"""LIVE presets: the Gaussian blur, white noise, JPEG and JPEG2000 level tables RankIQA used for LIVE.

Tables from RankIQA's `data/data_generator/distortion_generator.m` (reference §2). LIVE's JPEG level 5
is quality 0, which libjpeg clamps to 1; it is registered as quality 1, the strongest JPEG there is.
"""
from __future__ import annotations

import cv2
import numpy as np

from distortions._registry import register, register_levels
from distortions.compression import jpeg, jpeg2000_layers
from distortions.noise import add_scaled_field, normal_field

LIVE_BLUR_KERNEL_SIZES = (7, 15, 39, 91, 199)
LIVE_NOISE_LOG2_VARIANCES = (-10.0, -7.5, -5.5, -3.5, 0.0)
LIVE_JPEG_QUALITIES = (43, 12, 7, 4, 1)
LIVE_JPEG2000_BPP = (0.46, 0.16, 0.07, 0.04, 0.02)
LIVE_JPEG2000_RATIOS = tuple(24 / bpp for bpp in LIVE_JPEG2000_BPP)


@register(
    "live_gaussian_blur",
    family="blur",
    levels=LIVE_BLUR_KERNEL_SIZES,
    parameter="kernel size (sigma = size/6, px)",
    description="RankIQA's LIVE Gaussian blur: fspecial('gaussian', n, n/6), symmetric border.",
    source="RankIQA LIVE generator",
)
def live_gaussian_blur(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    size = LIVE_BLUR_KERNEL_SIZES[level - 1]
    kernel = cv2.getGaussianKernel(size, size / 6)
    return cv2.sepFilter2D(image, -1, kernel, kernel, borderType=cv2.BORDER_REFLECT)


@register(
    "live_white_noise",
    family="noise",
    levels=LIVE_NOISE_LOG2_VARIANCES,
    parameter="log2 variance (image in [0,1])",
    description="RankIQA's LIVE white noise: variance 2^e on RGB, clipped (level 5 is sigma 1, nearly binary).",
    source="RankIQA LIVE generator",
)
def live_white_noise(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    field = normal_field(image.shape, rng)
    return add_scaled_field(image, field, float(2 ** (LIVE_NOISE_LOG2_VARIANCES[level - 1] / 2)))


@register(
    "live_jpeg",
    family="compression",
    levels=LIVE_JPEG_QUALITIES,
    parameter="JPEG quality",
    description="RankIQA's LIVE JPEG qualities; LIVE's quality 0 is run as 1 (libjpeg's minimum).",
    source="RankIQA LIVE generator",
)
def live_jpeg(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    return jpeg(image, LIVE_JPEG_QUALITIES[level - 1])


@register(
    "live_jpeg2000",
    family="compression",
    levels=LIVE_JPEG2000_BPP,
    parameter="bits per pixel (ratio 24/bpp)",
    description="RankIQA's LIVE JPEG2000 rates, Pillow/OpenJPEG quality_mode='rates'.",
    source="RankIQA LIVE generator",
)
def live_jpeg2000(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    return jpeg2000_layers(image, LIVE_JPEG2000_RATIOS, decode=(level - 1,))[0]


@register_levels("live_jpeg2000")
def live_jpeg2000_levels(image: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    return jpeg2000_layers(image, LIVE_JPEG2000_RATIOS)
