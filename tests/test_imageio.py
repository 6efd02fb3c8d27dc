"""rankiqa.imageio on hostile files: elongated strips, declared bit depths, floats, links (issue 11)."""
from __future__ import annotations

import csv
import io
import os

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from PIL.TiffImagePlugin import ImageFileDirectory_v2

import rankiqa.imageio
from _shared import noise
from rankiqa.cli import cli
from rankiqa.errors import UserError
from rankiqa.imageio import MAX_ASPECT, RefusedImage, UnusableImage, fit_to_patch, header_problem, load_pristine
from rankiqa.score import Scorer, read_for_scoring


# --- defect 1: elongated images -----------------------------------------------------------------

def test_an_elongated_strip_is_a_reported_skip_and_the_good_image_is_still_scored(tmp_path, tiny_checkpoint):
    # 32 x 4000 px (125:1, 128 k pixels, ~0.4 MB decoded): before the fix it was upscaled to 224 x 28000
    folder = tmp_path / "batch"
    folder.mkdir()
    Image.fromarray(noise(0, 32, 4000)).save(folder / "strip.png")
    Image.fromarray(noise(1, 64, 80)).save(folder / "good.png")
    result = CliRunner().invoke(cli, ["score", str(folder), "--weights", str(tiny_checkpoint), "--patches", "2",
                                      "--patch-size", "32", "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert f"skipped {folder / 'strip.png'}: elongated image refused: 4000x32 is more elongated than {MAX_ASPECT}:1" in result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [row["path"] for row in rows] == [str(folder / "good.png")]


def test_the_aspect_limit_is_checked_from_the_header_before_decoding(tmp_path, monkeypatch):
    path = tmp_path / "strip.png"
    Image.fromarray(noise(0, 2, 300)).save(path)
    monkeypatch.setattr(Image.Image, "load", lambda self: pytest.fail("decoded an image the header refuses"))
    with pytest.raises(UnusableImage, match="more elongated than 100:1"):
        load_pristine(path, min_side=1)
    assert "elongated" in header_problem(path, min_side=1)


def test_the_pixel_limit_applies_after_the_upscale(tmp_path, tiny_module, monkeypatch):
    strip = noise(0, 40, 1000)  # 25:1 and 40 k pixels: fine as is, 224 x 5600 = 1.25 M pixels once upscaled
    with pytest.raises(RefusedImage, match="224 x|5600x224, above 1000000 pixels"):
        fit_to_patch(strip, 224, max_pixels=1_000_000)
    assert fit_to_patch(strip, 224, max_pixels=2_000_000).shape == (224, 5600, 3)
    Image.fromarray(strip).save(tmp_path / "strip.png")
    Image.fromarray(noise(1, 64, 80)).save(tmp_path / "good.png")
    monkeypatch.setattr(rankiqa.imageio, "DEFAULT_MAX_PIXELS", 1_000_000)
    results = list(Scorer(tiny_module, patches=2, patch_size=224).score_many([tmp_path / "strip.png", tmp_path / "good.png"]))
    assert "too large once upscaled for 224-px patches: 1000x40 would become 5600x224" in results[0].error
    assert results[0].score is None and results[1].error is None and np.isfinite(results[1].score)


def test_in_memory_strips_are_refused_too(tiny_module):
    with pytest.raises(UserError, match="elongated"):
        Scorer(tiny_module, patches=2, patch_size=32).score(noise(0, 32, 3300))
    assert fit_to_patch(noise(0, 32, 3200), 32).shape == (32, 3200, 3)  # exactly 100:1 is accepted


# --- defect 10: declared bit depth, floats, EXIF on PIL images ------------------------------------

def write_pgm(path, values: np.ndarray, maxval: int) -> None:
    data = values.astype(">u2" if maxval > 255 else np.uint8).tobytes()
    path.write_bytes(f"P5\n{values.shape[1]} {values.shape[0]}\n{maxval}\n".encode() + data)


def gray(values: np.ndarray) -> np.ndarray:
    return np.repeat(values[:, :, None], 3, axis=2)


def test_a_16_bit_pgm_is_read_by_its_declared_depth_even_with_small_values(tmp_path):
    values = np.random.default_rng(3).integers(0, 256, (40, 50)).astype(np.uint16)  # all <= 255
    write_pgm(tmp_path / "low.pgm", values, 65535)
    Image.fromarray(values).save(tmp_path / "low.png")  # the same 16-bit data as PNG
    expected = gray(np.rint(values / 257.0).astype(np.uint8))
    np.testing.assert_array_equal(read_for_scoring(tmp_path / "low.pgm"), expected)
    np.testing.assert_array_equal(read_for_scoring(tmp_path / "low.png"), expected)
    twelve = np.random.default_rng(4).integers(0, 4096, (40, 50)).astype(np.uint16)
    write_pgm(tmp_path / "twelve.pgm", twelve, 4095)  # maxval 4095: white is 4095
    np.testing.assert_allclose(read_for_scoring(tmp_path / "twelve.pgm")[..., 0], twelve.astype(np.float64) * 255 / 4095, atol=1.01)


def test_a_float_tiff_in_0_1_is_scaled_not_black(tmp_path):
    values = np.linspace(0, 1, 48 * 40, dtype=np.float32).reshape(40, 48)
    Image.fromarray(values).save(tmp_path / "unit.tif")
    decoded = load_pristine(tmp_path / "unit.tif", min_side=1)
    np.testing.assert_array_equal(decoded.image, gray(np.rint(values.astype(np.float64) * 255).astype(np.uint8)))
    assert any("float pixels scaled from [0, 1]" in note for note in decoded.notes)


def test_a_float_tiff_uses_its_declared_sample_range(tmp_path):
    values = np.linspace(-10, 90, 48 * 40, dtype=np.float32).reshape(40, 48)
    tags = ImageFileDirectory_v2()
    for tag, value in ((340, -10.0), (341, 90.0)):  # SMinSampleValue, SMaxSampleValue
        tags[tag] = value
        tags.tagtype[tag] = 12  # double
    Image.fromarray(values).save(tmp_path / "ranged.tif", tiffinfo=tags)
    expected = np.rint((values.astype(np.float64) + 10) * 2.55).astype(np.uint8)
    np.testing.assert_array_equal(read_for_scoring(tmp_path / "ranged.tif"), gray(expected))


@pytest.mark.parametrize("case", ["float_out_of_range", "float_nan", "int32"])
def test_sample_formats_without_a_faithful_conversion_are_a_clear_skip(tmp_path, case):
    values = np.linspace(0, 300, 48 * 40).reshape(40, 48)
    array = {"float_out_of_range": values.astype(np.float32), "float_nan": np.where(values > 100, np.nan, 0.5).astype(np.float32),
             "int32": values.astype(np.int32)}[case]
    Image.fromarray(array).save(tmp_path / f"{case}.tif")
    reason = {"float_out_of_range": r"float pixels outside \[0, 1\] \(0\.\.300\)", "float_nan": "NaN or infinite",
              "int32": "32-bit or signed integer pixels"}[case]
    with pytest.raises(UnusableImage, match=reason):
        read_for_scoring(tmp_path / f"{case}.tif")


def test_a_pil_image_is_scored_with_its_exif_orientation_like_its_file(tmp_path, tiny_module):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    Image.fromarray(noise(0, 48, 96)).save(tmp_path / "rotated.png", exif=exif)
    scorer = Scorer(tiny_module, patches=4, patch_size=32)
    by_path = scorer.score(tmp_path / "rotated.png")
    assert read_for_scoring(tmp_path / "rotated.png").shape == (96, 48, 3)
    with Image.open(tmp_path / "rotated.png") as im:
        assert scorer.score(im) == by_path
    assert scorer.score(noise(0, 48, 96)) != by_path  # the unrotated pixels score differently


def test_a_16_bit_pil_image_is_scored_like_its_file(tmp_path, tiny_module):
    values = np.random.default_rng(5).integers(0, 256, (40, 50)).astype(np.uint16)
    write_pgm(tmp_path / "low.pgm", values, 65535)
    scorer = Scorer(tiny_module, patches=2, patch_size=32)
    with Image.open(tmp_path / "low.pgm") as im:
        assert scorer.score(im) == scorer.score(tmp_path / "low.pgm")
    with pytest.raises(UserError, match="unknown bit depth"):
        scorer.score(Image.fromarray(values.astype(np.int32)))


# --- defect 17: links are named as links ---------------------------------------------------------

def test_a_symlink_loop_and_a_dangling_link_are_named_as_such(tmp_path):
    os.symlink(tmp_path / "loop_b.png", tmp_path / "loop_a.png")
    os.symlink(tmp_path / "loop_a.png", tmp_path / "loop_b.png")
    os.symlink(tmp_path / "gone.png", tmp_path / "dangling.png")
    with pytest.raises(UnusableImage, match="symbolic link loop"):
        load_pristine(tmp_path / "loop_a.png")
    with pytest.raises(UnusableImage, match="dangling symbolic link"):
        load_pristine(tmp_path / "dangling.png")
    with pytest.raises(UnusableImage, match="file not found"):
        load_pristine(tmp_path / "gone.png")
    assert "symbolic link loop" in header_problem(tmp_path / "loop_a.png")


def test_the_minimum_side_is_the_distortions_one_for_arrays_and_files(tmp_path, tiny_module):
    import distortions

    assert rankiqa.imageio.MIN_SIDE == distortions.MIN_SIDE == 32  # arrays are checked by distortions
    scorer = Scorer(tiny_module, patches=1, patch_size=32)
    for name, height in (("ok", 32), ("small", 31)):
        Image.fromarray(np.zeros((height, 40, 3), np.uint8)).save(tmp_path / f"{name}.png")
    assert np.isfinite(scorer.score(np.zeros((32, 40, 3), np.uint8))) and np.isfinite(scorer.score(tmp_path / "ok.png"))
    for small in (np.zeros((31, 40, 3), np.uint8), tmp_path / "small.png"):
        with pytest.raises(UserError, match="40x31"):
            scorer.score(small)
