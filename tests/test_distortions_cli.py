"""`rankiqa distortions list/show`, the registry table and the README copy of it."""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import distortions
from distortions.sheet import LABEL_HEIGHT, NAME_WIDTH, contact_sheet
from rankiqa.cli import cli, main
from rankiqa.distortion_table import distortion_table, select_distortions

REPO = Path(__file__).resolve().parents[1]
README_TABLE = re.compile(r"<!-- distortions-table:start -->\n(.*?)\n<!-- distortions-table:end -->", re.S)


def test_readme_table_is_the_generated_one():
    match = README_TABLE.search((REPO / "docs" / "distortions.md").read_text(encoding="utf-8"))
    assert match, "docs/distortions.md lacks the <!-- distortions-table:start/end --> markers"
    assert match.group(1).strip() == distortion_table("markdown"), (
        "docs/distortions.md table is stale: regenerate it with `rankiqa distortions list --format markdown`"
    )


def test_list_prints_every_type_in_each_format():
    runner = CliRunner()
    text = runner.invoke(cli, ["distortions", "list"])
    assert text.exit_code == 0
    assert all(name in text.output for name in distortions.names())
    rows = list(csv.DictReader(io.StringIO(runner.invoke(cli, ["distortions", "list", "--format", "csv"]).output)))
    assert [row["name"] for row in rows] == distortions.names()
    assert rows[0]["L1"] == "0.5" and rows[0]["family"] == "blur"
    markdown = runner.invoke(cli, ["distortions", "list", "--format", "markdown"]).output.splitlines()
    assert len(markdown) == 2 + len(distortions.names())


def test_select_distortions_by_name_family_and_all():
    assert select_distortions("all") == distortions.names(composed=False) == distortions.names()[:-2]
    assert select_distortions("family:composed") == ["blur_jpeg", "blur_noise"]
    blur = select_distortions("family:blur, jpeg")
    assert blur[-1] == "jpeg" and {"gaussian_blur", "live_gaussian_blur"} <= set(blur)
    with pytest.raises(ValueError, match="unknown distortion family 'blurr'"):
        select_distortions("family:blurr")
    with pytest.raises(ValueError, match="gaussian_blur"):
        select_distortions("gausian_blur")


def test_show_writes_a_sheet_with_one_row_per_type(tmp_path):
    out = tmp_path / "sheet.png"
    image = REPO / "rankiqa" / "assets" / "images" / "kodim05.png"
    result = CliRunner().invoke(
        cli, ["distortions", "show", str(image), "--out", str(out), "--names", "gaussian_blur,white_noise", "--tile", "64"]
    )
    assert result.exit_code == 0, result.output
    sheet = np.asarray(Image.open(out))
    assert sheet.shape == (LABEL_HEIGHT + 2 * (64 + LABEL_HEIGHT), NAME_WIDTH + 6 * (64 + 4), 3)


def test_contact_sheet_tiles_are_the_distorted_levels(small_image):
    sheet = contact_sheet(small_image, ["mean_shift_up"], tile=64, captions={})
    level5_tile = sheet[LABEL_HEIGHT : LABEL_HEIGHT + 48, NAME_WIDTH + 5 * 68 : NAME_WIDTH + 5 * 68 + 64]
    expected = distortions.apply(small_image, "mean_shift_up", 5, seed=0)
    np.testing.assert_array_equal(level5_tile, expected)


def test_show_with_unknown_type_is_one_error_line(tmp_path, capsys):
    image = REPO / "rankiqa" / "assets" / "images" / "kodim05.png"
    with pytest.raises(SystemExit) as exit_info:
        main(["distortions", "show", str(image), "--out", str(tmp_path / "s.png"), "--names", "gausian_blur"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("Error: unknown distortion 'gausian_blur'; did you mean gaussian_blur")
    assert "\n" not in error and not (tmp_path / "s.png").exists()
