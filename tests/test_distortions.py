"""The distortion registry contract, checked for every registered type and level."""
from __future__ import annotations

import numpy as np
import pytest

import distortions
from distortions._registry import register
from distortions.blur import disk_kernel, motion_kernel
from distortions.compression import jpeg
from distortions.spatial import lloyd_levels
from distortions.transmission import BASE_QUALITY

NAMES = distortions.names()
LEVELS = range(1, distortions.NUM_LEVELS + 1)
FAMILIES = {"blur", "color", "compression", "noise", "brightness", "spatial", "sharpness_contrast", "transmission", "composed"}
KADID_TYPES = 25


def test_registry_covers_kadid_split_types_extras_and_live_presets():
    assert len(NAMES) >= 30
    assert len(set(NAMES)) == len(NAMES)
    assert set(distortions.families()) == FAMILIES
    for pair in [("mean_shift_up", "mean_shift_down"), ("contrast_increase", "contrast_decrease"),
                 ("color_saturation_decrease", "color_saturation_increase")]:
        assert set(pair) <= set(NAMES)
    for extra in ["chromatic_aberration", "correlated_noise", "high_frequency_noise", "jpeg_transmission_errors",
                  "live_gaussian_blur", "live_white_noise", "live_jpeg", "live_jpeg2000"]:
        assert extra in NAMES
    kadid = [n for n in NAMES if "KADID" in distortions.get(n).source]
    # mean shift and contrast change each become 2 one-directional types; saturation #7/#8 already are a pair
    assert len(kadid) == KADID_TYPES + 2


@pytest.mark.parametrize("name", NAMES)
def test_spec_is_frozen_and_complete(name):
    spec = distortions.get(name)
    assert spec.name == name and spec.family in FAMILIES
    assert len(spec.levels) == 5 and spec.parameter and spec.source
    assert spec.description and "\n" not in spec.description and len(spec.description) <= 120
    with pytest.raises(AttributeError):
        spec.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("name", NAMES)
def test_apply_returns_new_uint8_rgb_and_leaves_input_alone(name, level, small_image):
    before = small_image.copy()
    out = distortions.apply(small_image, name, level, seed=3)
    assert out.dtype == np.uint8 and out.shape == small_image.shape
    assert out.flags.writeable and not np.shares_memory(out, small_image)
    np.testing.assert_array_equal(small_image, before)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_output_and_levels_share_random_fields(name, small_image):
    levels = distortions.apply_levels(small_image, name, seed=7)
    again = distortions.apply_levels(small_image, name, seed=7)
    for k, (a, b) in enumerate(zip(levels, again), start=1):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, distortions.apply(small_image, name, k, seed=7))
    from_generator = distortions.apply_levels(small_image, name, seed=np.random.default_rng(1))
    from_same_state = distortions.apply_levels(small_image, name, seed=np.random.default_rng(1))
    assert len(from_generator) == 5
    for a, b in zip(from_generator, from_same_state):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", NAMES)
def test_views_give_the_same_result_as_contiguous_copies(name):
    base = np.random.default_rng(0).integers(0, 256, (40, 96, 3), dtype=np.uint8)
    view = base[:, ::2]
    np.testing.assert_array_equal(
        distortions.apply(view, name, 4, seed=5), distortions.apply(np.ascontiguousarray(view), name, 4, seed=5)
    )


@pytest.mark.parametrize("name", NAMES)
def test_minimum_size_and_gray_input(name):
    gray = np.random.default_rng(0).integers(0, 256, (32, 33), dtype=np.uint8)
    for out in distortions.apply_levels(gray, name, seed=0):
        assert out.shape == (32, 33, 3) and out.dtype == np.uint8


def test_random_types_depend_on_the_seed(small_image):
    for name in ["white_noise", "impulse_noise", "motion_blur", "color_block", "jitter", "jpeg_transmission_errors"]:
        a = distortions.apply(small_image, name, 3, seed=1)
        b = distortions.apply(small_image, name, 3, seed=2)
        assert not np.array_equal(a, b), name


def test_unknown_name_lists_close_matches(small_image):
    with pytest.raises(KeyError, match="gaussian_blur"):
        distortions.apply(small_image, "gausian_blur", 1)
    with pytest.raises(KeyError, match="unknown distortion 'zzz'"):
        distortions.get("zzz")


@pytest.mark.parametrize(
    ("image", "error", "words"),
    [
        (np.zeros((40, 40, 3), np.float32), TypeError, "dtype uint8, got float32"),
        (np.zeros((40, 40, 4), np.uint8), ValueError, r"shape \(H, W, 3\) or \(H, W\), got \(40, 40, 4\)"),
        (np.zeros((31, 40, 3), np.uint8), ValueError, "at least 32x32 pixels, got 40x31"),
        ([[0] * 40] * 40, TypeError, "numpy.ndarray, got list"),
    ],
)
def test_bad_images_are_named(image, error, words):
    with pytest.raises(error, match=words):
        distortions.apply(image, "white_noise", 1, seed=0)


@pytest.mark.parametrize(("level", "error"), [(0, ValueError), (6, ValueError), (2.0, TypeError), (True, TypeError), ("1", TypeError)])
def test_bad_levels_are_named(level, error, small_image):
    with pytest.raises(error, match="level"):
        distortions.apply(small_image, "white_noise", level, seed=0)


def test_bad_seed_is_named(small_image):
    with pytest.raises(TypeError, match="seed"):
        distortions.apply(small_image, "white_noise", 1, seed="abc")  # type: ignore[arg-type]


def test_register_rejects_duplicates_and_wrong_level_counts():
    with pytest.raises(ValueError, match="already registered"):
        register("white_noise", family="noise", levels=(1, 2, 3, 4, 5), description="x", parameter="x")(lambda i, l, r: i)
    with pytest.raises(ValueError, match="5 values, got 3"):
        register("new_type", family="noise", levels=(1, 2, 3), description="x", parameter="x")


# Independent checks of individual types against hand-computed expectations.

GRAY = np.full((64, 64, 3), 128, np.uint8)


def test_white_noise_has_the_level_variance():
    out = distortions.apply(GRAY, "white_noise", 5, seed=0).astype(float) / 255
    assert out.var() == pytest.approx(0.01, rel=0.05)


def test_impulse_noise_density_and_nested_masks():
    changed = [out != GRAY for out in distortions.apply_levels(GRAY, "impulse_noise", seed=0)]
    for density, mask in zip(distortions.get("impulse_noise").levels, changed):
        assert mask.mean() == pytest.approx(density, abs=3 * np.sqrt(density / mask.size) + 1e-4)
    for smaller, larger in zip(changed, changed[1:]):
        assert not (smaller & ~larger).any()


def test_mean_shift_adds_the_offset_and_saturation_reaches_gray(small_image):
    up = distortions.apply(GRAY, "mean_shift_up", 2, seed=0)
    assert np.all(up == 128 + round(0.1 * 255))
    gray = distortions.apply(small_image, "color_saturation_decrease", 5, seed=0)
    assert np.all(gray[:, :, 0] == gray[:, :, 1]) and np.all(gray[:, :, 1] == gray[:, :, 2])
    np.testing.assert_array_equal(gray[:, :, 0], small_image.max(axis=2))


def test_disk_kernel_area_and_motion_kernel_extent():
    for radius in (1, 4, 8):
        kernel = disk_kernel(radius)
        assert kernel.sum() == pytest.approx(1.0, abs=1e-5)
        assert (kernel / kernel.max()).sum() == pytest.approx(np.pi * radius**2, rel=0.03)  # centre cell fully inside
    horizontal = motion_kernel(10, 0.0)
    rows = np.flatnonzero(horizontal.sum(axis=1) > 1e-6)
    cols = np.flatnonzero(horizontal.sum(axis=0) > 1e-6)
    assert len(rows) == 1 and 10 <= len(cols) <= 12
    assert horizontal.sum() == pytest.approx(1.0, abs=1e-5)


def test_lloyd_levels_are_centroids_of_their_cells(small_image):
    lut = lloyd_levels(small_image, 7)
    values = np.unique(lut)
    assert len(values) <= 7
    histogram = np.bincount(small_image.ravel(), minlength=256)
    for value in values:
        cell = np.flatnonzero(lut == value)
        centroid = (histogram[cell] * cell).sum() / histogram[cell].sum()
        assert abs(centroid - value) <= 0.5 + 1e-9
    out = distortions.apply(small_image, "quantization", 5, seed=0)
    assert len(np.unique(out)) <= 7


def test_color_quantization_uses_at_most_n_colours(small_image):
    out = distortions.apply(small_image, "color_quantization", 5, seed=0)
    assert len(np.unique(out.reshape(-1, 3), axis=0)) <= 8


def test_pixelate_blocks_are_constant_and_hold_the_block_mean():
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    out = distortions.apply(image, "pixelate", 3, seed=0)  # 4x4 blocks
    blocks = out.reshape(16, 4, 16, 4, 3)
    assert np.all(blocks == blocks[:, :1, :, :1])
    means = image.reshape(16, 4, 16, 4, 3).mean(axis=(1, 3))
    assert np.abs(blocks[:, 0, :, 0].astype(float) - means).max() <= 1.0


@pytest.mark.parametrize("name", ["color_block", "non_eccentricity_patch", "jpeg_transmission_errors"])
def test_blocks_patches_and_damaged_runs_grow_level_by_level(name):
    image = np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    undamaged = jpeg(image, BASE_QUALITY) if name == "jpeg_transmission_errors" else image
    outs = distortions.apply_levels(image, name, seed=4)
    for lower, higher in zip(outs, outs[1:]):
        changed_lower = np.any(lower != undamaged, axis=2)
        changed_higher = np.any(higher != undamaged, axis=2)
        assert changed_higher.sum() > changed_lower.sum()
        assert not (changed_lower & ~changed_higher).any()
