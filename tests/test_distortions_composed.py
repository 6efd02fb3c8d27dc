"""Composed distortions: `compose_levels` chains and the LIVE MD presets `blur_jpeg`, `blur_noise`."""
from __future__ import annotations

import numpy as np
import pytest
from test_distortions_ordering import PHOTOS, TEST_SIDE, psnr, resized, ssim

import distortions
from distortions.blur import GAUSSIAN_SIGMAS
from distortions.compression import JPEG_QUALITIES
from distortions.noise import WHITE_NOISE_VARIANCES
from rankiqa.imageio import read_rgb

GRAY = np.full((64, 64, 3), 128, np.uint8)
CHAINS = [
    ["gaussian_blur", "jpeg"],
    ["jpeg2000", "white_noise"],
    ["gaussian_blur", "jpeg", "white_noise"],
    ["contrast_decrease", "motion_blur", "impulse_noise"],
]


def test_presets_are_registered_as_composed_types_with_the_member_levels():
    assert distortions.names()[-2:] == ["blur_jpeg", "blur_noise"]
    assert distortions.names(composed=False) == distortions.names()[:-2]  # "all" defaults leave them out
    jpeg, noise = distortions.get("blur_jpeg"), distortions.get("blur_noise")
    assert jpeg.family == noise.family == "composed"
    assert jpeg.levels == tuple(zip(GAUSSIAN_SIGMAS, JPEG_QUALITIES)) == ((0.5, 43), (1.0, 36), (2.0, 24), (3.5, 7), (5.0, 4))
    assert noise.levels == tuple(zip(GAUSSIAN_SIGMAS, WHITE_NOISE_VARIANCES))
    assert "LIVE Multiply Distorted" in jpeg.source and "part 1" in jpeg.source and "part 2" in noise.source


@pytest.mark.parametrize("level", range(1, 6))
def test_blur_jpeg_is_blur_then_jpeg_at_the_same_level(level, small_image):
    blurred = distortions.apply(small_image, "gaussian_blur", level, seed=0)
    expected = distortions.apply(blurred, "jpeg", level, seed=0)
    np.testing.assert_array_equal(distortions.apply(small_image, "blur_jpeg", level, seed=9), expected)
    np.testing.assert_array_equal(distortions.compose(small_image, ["gaussian_blur", "jpeg"], level, seed=9), expected)
    other_order = distortions.apply(distortions.apply(small_image, "jpeg", level), "gaussian_blur", level)
    np.testing.assert_array_equal(distortions.compose(small_image, ["jpeg", "gaussian_blur"], level, seed=9), other_order)
    assert not np.array_equal(expected, other_order)


def test_blur_noise_adds_the_level_variance_with_one_field_for_all_levels():
    # blur leaves a constant image alone, so what is left is the white noise: variance = the level's,
    # and the same unit field at every level (common random numbers), only scaled.
    residuals = [out.astype(float) / 255 - 128 / 255 for out in distortions.apply_levels(GRAY, "blur_noise", seed=4)]
    for variance, residual in zip(WHITE_NOISE_VARIANCES, residuals):
        assert residual.var() == pytest.approx(variance, rel=0.05)
    unit = [residual / np.sqrt(variance) for variance, residual in zip(WHITE_NOISE_VARIANCES, residuals)]
    for field in unit[1:]:
        assert np.corrcoef(unit[0].ravel(), field.ravel())[0, 1] > 0.97
    other_seed = distortions.apply(GRAY, "blur_noise", 1, seed=5).astype(float) / 255 - 128 / 255
    assert abs(np.corrcoef(residuals[0].ravel(), other_seed.ravel())[0, 1]) < 0.05


@pytest.mark.parametrize("names", CHAINS, ids="+".join)
def test_compose_levels_quality_falls_strictly_on_the_bundled_photos(names):
    for index, path in enumerate(PHOTOS):
        image = resized(read_rgb(path), TEST_SIDE)
        outs = distortions.compose_levels(image, names, seed=index)
        psnrs = [psnr(image, out) for out in outs]
        ssims = [ssim(image, out) for out in outs]
        where = f"{'+'.join(names)} on {path.name}: PSNR {np.round(psnrs, 2)}, SSIM {np.round(ssims, 4)}"
        assert all(np.diff(psnrs) < 0), where
        assert all(np.diff(ssims) < 0), where


def test_each_level_is_every_member_at_that_level_in_order(small_image):
    names = ["gaussian_blur", "jpeg", "mean_shift_up"]  # no randomness: each member's seed is irrelevant
    for level, out in enumerate(distortions.compose_levels(small_image, names, seed=0), start=1):
        expected = small_image
        for name in names:
            expected = distortions.apply(expected, name, level, seed=0)
        np.testing.assert_array_equal(out, expected)


def test_members_get_their_own_seeds_derived_from_the_seed_and_their_position(small_image):
    names = ["motion_blur", "white_noise"]  # both random: a motion angle, a noise field
    children = np.random.SeedSequence(21).spawn(2)
    for level, out in enumerate(distortions.compose_levels(small_image, names, seed=21), start=1):
        blurred = distortions.apply(small_image, "motion_blur", level, seed=np.random.default_rng(children[0]))
        expected = distortions.apply(blurred, "white_noise", level, seed=np.random.default_rng(children[1]))
        np.testing.assert_array_equal(out, expected)
    # a member at the same position gets the same seed whatever the other members are
    shifted = distortions.compose_levels(GRAY, ["white_noise", "mean_shift_up"], seed=3)
    darker = distortions.compose_levels(GRAY, ["white_noise", "mean_shift_down"], seed=3)
    up = round(distortions.get("mean_shift_up").levels[0] * 255)
    np.testing.assert_array_equal(shifted[0].astype(int) - up, darker[0].astype(int) + up)


def test_same_seed_same_output_and_compose_matches_compose_levels(small_image):
    names = ["gaussian_blur", "white_noise", "jitter"]
    levels = distortions.compose_levels(small_image, names, seed=11)
    for k, out in enumerate(levels, start=1):
        np.testing.assert_array_equal(out, distortions.compose(small_image, names, k, seed=11))
    for a, b in zip(levels, distortions.compose_levels(small_image, names, seed=11)):
        np.testing.assert_array_equal(a, b)
    first = distortions.compose_levels(small_image, names, seed=np.random.default_rng(2))
    second = distortions.compose_levels(small_image, names, seed=np.random.default_rng(2))
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(levels[2], distortions.compose_levels(small_image, names, seed=12)[2])


def test_input_is_untouched_and_outputs_are_new_arrays(small_image):
    before = small_image.copy()
    outs = distortions.compose_levels(small_image, ["gaussian_blur", "white_noise"], seed=0)
    np.testing.assert_array_equal(small_image, before)
    for out in outs:
        assert out.dtype == np.uint8 and out.shape == small_image.shape
        assert out.flags.writeable and not np.shares_memory(out, small_image)
    gray = small_image[:, :, 0]
    assert distortions.compose_levels(gray[:32, :33], ["gaussian_blur", "jpeg"], seed=0)[4].shape == (32, 33, 3)


@pytest.mark.parametrize(
    ("names", "error", "words"),
    [
        (["gaussian_blur"], ValueError, "2 or 3 distortion types, got 1"),
        (["gaussian_blur", "jpeg", "white_noise", "pixelate"], ValueError, "2 or 3 distortion types, got 4"),
        (["gaussian_blur", "lens_blur"], ValueError, "different families: 'gaussian_blur' and 'lens_blur' are both 'blur'"),
        (["jpeg", "jpeg"], ValueError, "are both 'compression'"),
        (["blur_jpeg", "white_noise"], ValueError, "'blur_jpeg' is already composed"),
        (["gausian_blur", "jpeg"], KeyError, "unknown distortion 'gausian_blur'; did you mean gaussian_blur"),
        ("gaussian_blur", TypeError, "list of 2-3 distortion names"),
    ],
)
def test_bad_chains_are_named(names, error, words, small_image):
    with pytest.raises(error, match=words):
        distortions.compose_levels(small_image, names, seed=0)


def test_bad_images_levels_and_seeds_are_named(small_image):
    names = ["gaussian_blur", "jpeg"]
    with pytest.raises(TypeError, match="dtype uint8, got float32"):
        distortions.compose_levels(small_image.astype(np.float32), names, seed=0)
    with pytest.raises(ValueError, match="at least 32x32 pixels, got 40x31"):
        distortions.compose_levels(np.zeros((31, 40, 3), np.uint8), names, seed=0)
    with pytest.raises(ValueError, match=r"level must be in 1..5, got 6"):
        distortions.compose(small_image, names, 6, seed=0)
    with pytest.raises(TypeError, match="seed"):
        distortions.compose_levels(small_image, names, seed="abc")  # type: ignore[arg-type]
