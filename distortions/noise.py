"""Noise family: additive, coloured, impulse, multiplicative, denoised noise."""
from __future__ import annotations

import numpy as np

from distortions._registry import register

WHITE_NOISE_VARIANCES = (0.001, 0.002, 0.003, 0.005, 0.01)


def add_scaled_field(image: np.ndarray, field: np.ndarray, scale: float) -> np.ndarray:
    """image + scale * field * 255 (field is unit-variance), rounded and clipped to uint8."""
    out = image.astype(np.float32) + np.float32(scale * 255.0) * field
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


@register(
    "white_noise",
    family="noise",
    levels=WHITE_NOISE_VARIANCES,
    parameter="variance (image in [0,1])",
    description="Additive white Gaussian noise on RGB (KADID #11).",
    source="KADID-10k imnoisegauss",
)
def white_noise(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    field = rng.standard_normal(image.shape, dtype=np.float32)
    return add_scaled_field(image, field, float(np.sqrt(WHITE_NOISE_VARIANCES[level - 1])))
