"""Noise family: additive (white, colour-component, correlated, high-frequency), impulse, multiplicative, denoised.

Each function draws its whole random field first, whatever the level, and scales it by the level's
parameter, so the 5 levels of one seed share the same field.
"""
from __future__ import annotations

import cv2
import numpy as np

from distortions._registry import register
from distortions._util import gaussian, to_float, to_uint8

WHITE_NOISE_VARIANCES = (0.001, 0.002, 0.003, 0.005, 0.01)
COLOR_NOISE_VARIANCES = (0.0001, 0.0005, 0.001, 0.002, 0.003)
IMPULSE_DENSITIES = (0.001, 0.005, 0.01, 0.02, 0.03)
SPECKLE_VARIANCES = (0.001, 0.005, 0.01, 0.02, 0.05)
DENOISE_VARIANCES = (0.002, 0.005, 0.01, 0.02, 0.04)
CORRELATED_NOISE_VARIANCES = (0.0005, 0.001, 0.002, 0.004, 0.008)
CORRELATION_SIGMA = 1.5
HIGH_FREQUENCY_NOISE_VARIANCES = (0.001, 0.003, 0.006, 0.01, 0.02)
HIGH_PASS_SIGMA = 1.0
DENOISE_TEMPLATE, DENOISE_SEARCH = 3, 7


def add_scaled_field(image: np.ndarray, field: np.ndarray, scale: float) -> np.ndarray:
    """image + scale * field * 255 (field is unit-variance), rounded and clipped to uint8."""
    out = cv2.scaleAdd(np.ascontiguousarray(field, dtype=np.float32), scale * 255.0, image.astype(np.float32))
    return cv2.convertScaleAbs(np.maximum(out, 0, out=out))


def normal_field(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """A float32 standard normal field of ``shape`` (Box-Muller on float32 uniforms: 2-3x faster than
    ``Generator.standard_normal`` here, and exact)."""
    count = int(np.prod(shape))
    uniform = rng.random((2, (count + 1) // 2), dtype=np.float32)
    radius = np.sqrt(np.float32(-2) * np.log1p(-uniform[0]))
    angle = np.float32(2 * np.pi) * uniform[1]
    return np.concatenate([radius * np.cos(angle), radius * np.sin(angle)])[:count].reshape(shape)


def unit_variance(field: np.ndarray) -> np.ndarray:
    """``field`` divided by its standard deviation (left alone when it is constant)."""
    std = float(field.std())
    return field / np.float32(std) if std > 0 else field


@register(
    "white_noise",
    family="noise",
    levels=WHITE_NOISE_VARIANCES,
    parameter="variance (image in [0,1])",
    description="Additive white Gaussian noise on RGB (KADID #11).",
    source="KADID-10k imnoisegauss",
)
def white_noise(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    field = normal_field(image.shape, rng)
    return add_scaled_field(image, field, float(np.sqrt(WHITE_NOISE_VARIANCES[level - 1])))


@register(
    "color_component_noise",
    family="noise",
    levels=COLOR_NOISE_VARIANCES,
    parameter="variance per YCbCr plane (in [0,1])",
    description="White Gaussian noise added to Y, Cb and Cr (full-range YCbCr), then back to RGB (KADID #12).",
    source="KADID-10k imnoisecolorcomp (MATLAB uses studio-range YCbCr)",
)
def color_component_noise(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    field = normal_field(image.shape, rng)
    ycc = cv2.cvtColor(to_float(image), cv2.COLOR_RGB2YCrCb)
    ycc += np.float32(np.sqrt(COLOR_NOISE_VARIANCES[level - 1])) * field
    return to_uint8(cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB))


@register(
    "impulse_noise",
    family="noise",
    levels=IMPULSE_DENSITIES,
    parameter="density (fraction of values)",
    description="Salt and pepper on individual RGB values; the noisy sets of the levels are nested (KADID #13).",
    source="KADID-10k imnoiseimpulse",
)
def impulse_noise(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    hit = rng.random(image.shape, dtype=np.float32)
    salt = rng.random(image.shape, dtype=np.float32) < 0.5
    noisy = hit < IMPULSE_DENSITIES[level - 1]
    out = image.copy()
    out[noisy & salt] = 255
    out[noisy & ~salt] = 0
    return out


@register(
    "multiplicative_noise",
    family="noise",
    levels=SPECKLE_VARIANCES,
    parameter="variance of n in I + n*I",
    description="Speckle: I + n*I with n uniform, zero mean (MATLAB imnoise 'speckle', KADID #14).",
    source="KADID-10k imnoisemultiplicative",
)
def multiplicative_noise(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    uniform = rng.random(image.shape, dtype=np.float32) - np.float32(0.5)
    noise = uniform * np.float32(np.sqrt(12 * SPECKLE_VARIANCES[level - 1]))
    rgb = to_float(image)
    return to_uint8(rgb + noise * rgb)


@register(
    "denoise",
    family="noise",
    levels=DENOISE_VARIANCES,
    parameter="noise variance before denoising",
    description="White noise, then OpenCV non-local means on luma, Gaussian on chroma (KADID #15 uses DnCNN).",
    source=(
        "KADID-10k imdenoise (DnCNN replaced by cv2.fastNlMeansDenoising, 3x3 template, 7x7 search; "
        "noise variances 0.002-0.04 instead of 0.01-0.15, which this denoiser cannot clean)"
    ),
)
def denoise(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    field = normal_field(image.shape, rng)
    sigma = float(np.sqrt(DENOISE_VARIANCES[level - 1]))
    noisy = add_scaled_field(image, field, sigma)
    ycc = cv2.cvtColor(noisy, cv2.COLOR_RGB2YCrCb)
    luma = cv2.fastNlMeansDenoising(
        np.ascontiguousarray(ycc[:, :, 0]), None, h=float(sigma * 255), templateWindowSize=DENOISE_TEMPLATE,
        searchWindowSize=DENOISE_SEARCH,
    )
    chroma = gaussian(np.ascontiguousarray(ycc[:, :, 1:]), 1.0 + 10 * sigma)
    return cv2.cvtColor(np.dstack([luma, chroma]), cv2.COLOR_YCrCb2RGB)


@register(
    "correlated_noise",
    family="noise",
    levels=CORRELATED_NOISE_VARIANCES,
    parameter="variance (image in [0,1])",
    description="Spatially correlated Gaussian noise: white noise low-passed (sigma 1.5 px), rescaled to the variance.",
    source="TID2013 #3 spatially correlated noise",
)
def correlated_noise(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    field = unit_variance(gaussian(normal_field(image.shape, rng), CORRELATION_SIGMA))
    return add_scaled_field(image, field, float(np.sqrt(CORRELATED_NOISE_VARIANCES[level - 1])))


@register(
    "high_frequency_noise",
    family="noise",
    levels=HIGH_FREQUENCY_NOISE_VARIANCES,
    parameter="variance (image in [0,1])",
    description="High-frequency noise: white noise minus its Gaussian low-pass (sigma 1 px), rescaled to the variance.",
    source="TID2013 #5 high frequency noise",
)
def high_frequency_noise(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    white = normal_field(image.shape, rng)
    field = unit_variance(white - gaussian(white, HIGH_PASS_SIGMA))
    return add_scaled_field(image, field, float(np.sqrt(HIGH_FREQUENCY_NOISE_VARIANCES[level - 1])))
