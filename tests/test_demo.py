"""The demo: ranked sets of the bundled images, scored; table, contact sheet, csv; no-weights path."""
from __future__ import annotations

import csv

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import distortions
from rankiqa.cli import cli
from rankiqa.demo import DemoResult, bundled_images, demo_distortions, run_demo
from rankiqa.errors import UserError
from rankiqa.score import load_model


def test_srcc_is_plus_one_for_a_perfect_order_and_minus_one_reversed():
    result = DemoResult(["a"], ["t", "u"], {("a", "t"): [5, 4, 3, 2, 1, 0], ("a", "u"): [0, 1, 2, 3, 4, 5]})
    assert result.srcc("a", "t") == pytest.approx(1.0)
    assert result.srcc("a", "u") == pytest.approx(-1.0)
    rows = result.table().splitlines()
    assert rows[1].split()[0] == "t" and rows[1].split()[-1] == "1.000"
    assert rows[2].split()[-1] == "-1.000"


def test_demo_types_are_registered_and_images_bundled():
    types = demo_distortions()
    assert 1 <= len(types) <= 4 and set(types) <= set(distortions.names())
    images = bundled_images()
    assert len(images) >= 4 and all(img.dtype == np.uint8 and img.ndim == 3 for img in images.values())


def test_run_demo_with_a_tiny_checkpoint(tmp_path, tiny_checkpoint):
    scorer = load_model(tiny_checkpoint, patches=2, patch_size=64)
    lines: list[str] = []
    result = run_demo(scorer, tmp_path / "demo", log=lines.append)
    types, images = demo_distortions(), bundled_images()
    assert set(result.scores) == {(i, t) for i in images for t in types}
    rows = list(csv.DictReader((tmp_path / "demo" / "scores.csv").open()))
    assert len(rows) == len(images) * len(types) * 6
    first = rows[len(types) * 6 + 7]
    image_name, type_name, level = first["image"], first["type"], int(first["level"])
    expected = scorer.score(distortions.apply_levels(images[image_name], type_name, seed=0)[level - 1])
    assert float(first["score"]) == pytest.approx(expected, abs=1e-5)
    sheet = Image.open(tmp_path / "demo" / "contact_sheet.png")
    assert sheet.size[0] > 6 * 100
    assert any(t in "\n".join(lines) for t in types)


def test_cli_demo_runs_with_the_bundled_default_model(tmp_path):
    result = CliRunner().invoke(cli, ["demo", "--out", str(tmp_path / "demo"), "--patches", "1"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((tmp_path / "demo" / "scores.csv").open()))
    assert len(rows) == len(bundled_images()) * len(demo_distortions()) * 6
    table = {line.split()[0]: line.split() for line in result.output.splitlines()}
    for name in demo_distortions():
        pristine, *levels, srcc = map(float, table[name][1:])
        assert pristine > levels[-1] and srcc > 0.8, table[name]


def test_an_empty_image_folder_is_a_user_error(tmp_path, tiny_checkpoint, monkeypatch):
    monkeypatch.setattr("rankiqa.demo.BUNDLED_IMAGES", tmp_path / "empty")
    scorer = load_model(tiny_checkpoint, patches=1, patch_size=64)
    for model in (scorer, None):
        with pytest.raises(UserError, match="no bundled demo images"):
            run_demo(model, tmp_path / "out", log=lambda line: None)


def test_setup_cfg_ships_every_bundled_asset():
    import configparser
    from pathlib import Path

    import rankiqa

    package = Path(rankiqa.__file__).parent
    setup = configparser.ConfigParser()
    setup.read(package.parent / "setup.cfg")
    patterns = setup["options.package_data"]["rankiqa"].split()
    assets = {path for path in (package / "assets").rglob("*") if path.is_file()}
    shipped = {path for pattern in patterns for path in package.glob(pattern) if path.is_file()}
    assert package / "assets" / "images" / "kodim23.png" in assets and package / "assets" / "default.pt" in assets
    assert sorted(assets - shipped) == []
