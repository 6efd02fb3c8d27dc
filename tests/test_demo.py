"""The demo: ranked sets of the bundled images, scored; table, contact sheet, csv; no-weights path."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import distortions
from rankiqa.checkpoint import save_checkpoint
from rankiqa.cli import cli
from rankiqa.demo import DemoResult, bundled_images, demo_distortions, run_demo, score_ranked_sets
from rankiqa.models import create_model
from rankiqa.score import DEFAULT_WEIGHTS, Scorer, load_model

DEFAULT_MISSING = "default weights are not bundled in this build (rankiqa/assets/default.pt is absent)"


@pytest.fixture
def tiny_checkpoint(tmp_path):
    torch.manual_seed(0)
    model = create_model("tiny")
    path = tmp_path / "tiny.pt"
    save_checkpoint(path, {"model_config": model.config, "model_state": model.state_dict()})
    return path


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


def test_cli_demo_with_weights_and_without_default(tmp_path, tiny_checkpoint):
    runner = CliRunner()
    result = runner.invoke(cli, ["demo", "--out", str(tmp_path / "a"), "--weights", str(tiny_checkpoint), "--patches", "1"])
    assert result.exit_code == 0, result.output
    assert "SRCC" in result.output and (tmp_path / "a" / "scores.csv").is_file()
    if DEFAULT_WEIGHTS.is_file():
        return
    result = runner.invoke(cli, ["demo", "--out", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    assert "default weights are not bundled" in result.output
    assert (tmp_path / "b" / "contact_sheet.png").is_file() and not (tmp_path / "b" / "scores.csv").exists()


@pytest.mark.slow
def test_default_model_orders_blur_and_noise_levels():
    if not DEFAULT_WEIGHTS.is_file():
        pytest.skip(DEFAULT_MISSING)
    scorer = load_model("default", patches=3)
    assert isinstance(scorer, Scorer)
    types = [t for t in ("gaussian_blur", "white_noise") if t in distortions.names()]
    images = dict(list(bundled_images().items())[:2])
    result = score_ranked_sets(scorer, images, types)
    for image in images:
        for name in types:
            assert result.srcc(image, name) > 0.5, (image, name, result.scores[(image, name)])
