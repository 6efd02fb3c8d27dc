"""JPEG2000 ranked sets from one multi-layer encode: same levels alone and as a set, close to one
encode per level, one encode per set, and the per-level fallback on images too small for layers."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import distortions
from distortions.compression import JPEG2000_RATIOS, MIN_LAYER_BYTES, jpeg2000, jpeg2000_layers
from distortions.live import LIVE_JPEG2000_RATIOS
from rankiqa.imageio import read_rgb

PHOTO = Path(__file__).resolve().parents[1] / "rankiqa" / "assets" / "images" / "kodim23.png"
LAYERED_TYPES = {"jpeg2000": JPEG2000_RATIOS, "live_jpeg2000": LIVE_JPEG2000_RATIOS}


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return cv2.resize(read_rgb(PHOTO), (512, 384), interpolation=cv2.INTER_CUBIC)


def psnr(reference: np.ndarray, image: np.ndarray) -> float:
    mse = np.mean((reference.astype(np.float64) - image.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


def count_encodes(monkeypatch) -> list[int]:
    calls: list[int] = []
    save = Image.Image.save

    def counting_save(self, fp, format=None, **params):
        if format == "JPEG2000":
            calls.append(1)
        return save(self, fp, format=format, **params)

    monkeypatch.setattr(Image.Image, "save", counting_save)
    return calls


@pytest.mark.parametrize("name", LAYERED_TYPES)
def test_a_set_is_one_encode_and_equals_the_levels_made_alone(name, photo, monkeypatch):
    calls = count_encodes(monkeypatch)
    levels = distortions.apply_levels(photo, name, seed=0)
    assert len(calls) == 1
    for k, image in enumerate(levels, start=1):
        np.testing.assert_array_equal(image, distortions.apply(photo, name, k, seed=0))


@pytest.mark.parametrize("name", LAYERED_TYPES)
def test_layers_stay_close_to_one_encode_per_level(name, photo):
    ratios = LAYERED_TYPES[name]
    layered = distortions.apply_levels(photo, name, seed=0)
    for ratio, image in zip(ratios, layered):
        single = jpeg2000(photo, ratio)
        # documented change: the same rate in a layered stream costs a little quality (layer headers)
        assert psnr(photo, single) - 0.5 < psnr(photo, image) <= psnr(photo, single) + 0.05, ratio


def test_strongest_layer_alone_is_the_single_layer_encode(photo):
    # the first layer of the stream is decoded exactly like a one-layer stream at that ratio
    np.testing.assert_array_equal(jpeg2000_layers(photo, JPEG2000_RATIOS, decode=(4,))[0], jpeg2000(photo, 400))


def test_small_images_fall_back_to_one_encode_per_level(monkeypatch):
    image = np.random.default_rng(0).integers(0, 256, (64, 80, 3), dtype=np.uint8)
    assert image.shape[0] * image.shape[1] * 3 / max(JPEG2000_RATIOS) < MIN_LAYER_BYTES
    calls = count_encodes(monkeypatch)
    outs = jpeg2000_layers(image, JPEG2000_RATIOS)
    assert len(calls) == 5
    for ratio, out in zip(JPEG2000_RATIOS, outs):
        np.testing.assert_array_equal(out, jpeg2000(image, ratio))


def test_decode_selects_levels_in_the_order_asked(photo):
    every = jpeg2000_layers(photo, JPEG2000_RATIOS)
    picked = jpeg2000_layers(photo, JPEG2000_RATIOS, decode=(3, 0))
    np.testing.assert_array_equal(picked[0], every[3])
    np.testing.assert_array_equal(picked[1], every[0])


def test_register_levels_refuses_a_second_levels_function():
    with pytest.raises(ValueError, match="already has a levels function"):
        distortions._registry.register_levels("jpeg2000")(lambda image, rng: [])
    with pytest.raises(KeyError):
        distortions._registry.register_levels("no_such_type")(lambda image, rng: [])
