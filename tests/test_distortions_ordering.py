"""Strict ordering: on real photos, PSNR and SSIM against the pristine image fall from level 1 to 5.

Uses the bundled photos (rankiqa/assets/images) downscaled to 128 px; the LIVE JPEG2000 preset is
checked at 512 px, the size its bit rates were chosen for (below ~0.15 megapixels its smallest
rates hit OpenJPEG's minimum stream and levels 4-5 coincide; see distortions.compression.jpeg2000).
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

import distortions
from rankiqa.imageio import read_rgb

PHOTOS = sorted((Path(__file__).resolve().parents[1] / "rankiqa" / "assets" / "images").glob("*.png"))
TEST_SIDE = 128
FULL_SIZE_TYPES = {"live_jpeg2000": 512}
LEVEL1_MAX_PSNR = 50.0  # dB: level 1 must differ measurably from the pristine image
SSIM_C1, SSIM_C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


def resized(image: np.ndarray, side: int) -> np.ndarray:
    scale = side / max(image.shape[:2])
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)


@pytest.fixture(scope="module")
def photos() -> dict[int, list[np.ndarray]]:
    originals = [read_rgb(path) for path in PHOTOS]
    sides = {TEST_SIDE, *FULL_SIZE_TYPES.values()}
    return {side: [resized(image, side) for image in originals] for side in sides}


def psnr(reference: np.ndarray, image: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB over all RGB values (higher is better; inf when equal)."""
    mse = np.mean((reference.astype(np.float64) - image.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def ssim(reference: np.ndarray, image: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1=0.01, K2=0.03) over RGB channels, 1 = equal."""
    x, y = reference.astype(np.float64), image.astype(np.float64)

    def blur(a: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(a, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    ssim_map = ((2 * mx * my + SSIM_C1) * (2 * cxy + SSIM_C2)) / ((mx * mx + my * my + SSIM_C1) * (vx + vy + SSIM_C2))
    return float(ssim_map.mean())


def test_psnr_and_ssim_match_hand_computed_values():
    a = np.full((32, 32, 3), 100, np.uint8)
    b = a + np.uint8(10)
    assert psnr(a, b) == pytest.approx(10 * np.log10(255**2 / 100))
    assert ssim(a, a) == pytest.approx(1.0)
    # constant images: SSIM reduces to the luminance term (2*m1*m2 + C1) / (m1^2 + m2^2 + C1)
    assert ssim(a, b) == pytest.approx((2 * 100 * 110 + SSIM_C1) / (100**2 + 110**2 + SSIM_C1))
    noisy = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert ssim(noisy, a) == pytest.approx(ssim(a, noisy)) and ssim(noisy, a) < 0.1


@pytest.mark.parametrize("name", distortions.names())
def test_quality_falls_strictly_from_level_1_to_5(name, photos):
    for index, image in enumerate(photos[FULL_SIZE_TYPES.get(name, TEST_SIDE)]):
        outs = distortions.apply_levels(image, name, seed=index)
        psnrs = [psnr(image, out) for out in outs]
        ssims = [ssim(image, out) for out in outs]
        where = f"{name} on {PHOTOS[index].name}: PSNR {np.round(psnrs, 2)}, SSIM {np.round(ssims, 4)}"
        assert psnrs[0] < LEVEL1_MAX_PSNR, where
        assert all(np.diff(psnrs) < 0), where
        assert all(np.diff(ssims) < 0), where
