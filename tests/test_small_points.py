"""Small points of issue 11 (defect 17): option validation and a warning for oversized patches."""
from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from distortions.sheet import contact_sheet
from rankiqa.cli import cli
from rankiqa.data import RankedSets
from rankiqa.train import TrainConfig, build_datasets


@pytest.mark.parametrize("tile", ["0", "-5", "100000"])
def test_distortions_show_refuses_a_tile_out_of_range(tmp_path, small_image, tile):
    Image.fromarray(small_image).save(tmp_path / "a.png")
    result = CliRunner().invoke(cli, ["distortions", "show", str(tmp_path / "a.png"), "--out", str(tmp_path / "s.png"),
                                      "--names", "gaussian_blur", "--tile", tile])
    assert result.exit_code == 2 and "--tile" in result.output and "16<=x<=2048" in result.output
    assert not (tmp_path / "s.png").exists()


def test_contact_sheet_refuses_a_tile_below_one_pixel(small_image):
    with pytest.raises(ValueError, match="tile must be a positive number of pixels, got 0"):
        contact_sheet(small_image, ["gaussian_blur"], tile=0)


@pytest.fixture
def small_photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for index in range(3):
        Image.fromarray(np.random.default_rng(index).integers(0, 256, (64, 80, 3), dtype=np.uint8)).save(folder / f"{index}.png")
    return folder


def test_a_patch_much_larger_than_the_photos_is_warned_once(small_photos, tmp_path, capsys):
    assert RankedSets(small_photos, patch_size=64).upscale_warning() is None
    assert RankedSets(small_photos, patch_size=128).upscale_warning() is None  # a 2x upscale: tolerated
    message = RankedSets(small_photos, patch_size=256).upscale_warning()
    assert "3 of 3 photos checked" in message and "down to 64 px" in message
    build_datasets(TrainConfig(out=str(tmp_path / "run"), pristine=str(small_photos), patch=256, backbone="tiny"))
    err = capsys.readouterr().err
    assert err.count("Warning: --patch 256: 3 of 3 photos checked") == 1 and len(err.strip().splitlines()) == 1
