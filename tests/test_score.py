"""Scoring: patch protocol against hand references, determinism, bad files, CLI, default model."""
from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import distortions
import rankiqa
from _shared import noise
from rankiqa.checkpoint import save_checkpoint
from rankiqa.cli import cli
from rankiqa.errors import UserError
from rankiqa.demo import BUNDLED_IMAGES
from rankiqa.imageio import fit_to_patch, read_rgb
from rankiqa.models import create_model
from rankiqa.seeding import stable_seed
from rankiqa.score import (
    DEFAULT_WEIGHTS,
    Scorer,
    crop_patches,
    expand_paths,
    grid_positions,
    heatmap_overlay,
    inference_copy,
    _seeded_patches,
    patch_positions,
    score_image,
)

PATCH = 32



@pytest.fixture
def image_folder(tmp_path):
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    for i in range(3):
        Image.fromarray(noise(i, 70, 90)).save(folder / f"img{i}.png")
    Image.fromarray(noise(9, 70, 90)).save(folder / "sub" / "deep.png")
    return folder


def test_score_image_matches_a_hand_computed_reference(tiny_module):
    image = noise(1, 70, 90)
    mean, std, per_patch = score_image(tiny_module, image, patches=7, patch_size=PATCH, seed=3)
    positions = patch_positions(image.shape, 7, PATCH, stable_seed(3, *image.shape[:2]))
    expected = []
    for row, col in positions:
        crop = image[row : row + PATCH, col : col + PATCH].astype(np.float32) / 255
        with torch.no_grad():
            expected.append(tiny_module(torch.from_numpy(crop).permute(2, 0, 1)[None]).item())
    np.testing.assert_allclose(per_patch, expected, rtol=1e-5, atol=1e-6)
    assert mean == pytest.approx(np.mean(expected), abs=1e-6)
    assert std == pytest.approx(np.std(expected), abs=1e-6)


def test_patch_positions_are_in_range_and_cover_the_valid_area():
    positions = patch_positions((70, 90, 3), 2000, PATCH, seed=5)
    assert positions[:, 0].min() == 0 and positions[:, 0].max() == 70 - PATCH
    assert positions[:, 1].min() == 0 and positions[:, 1].max() == 90 - PATCH
    crops = crop_patches(noise(0, 70, 90), positions[:4], PATCH)
    assert crops.shape == (4, PATCH, PATCH, 3) and crops.dtype == np.uint8


def test_positions_follow_seed_and_size_not_name_or_content(tmp_path, tiny_module):
    image = noise(2, 70, 90)
    Image.fromarray(image).save(tmp_path / "one.png")
    Image.fromarray(image).save(tmp_path / "other_name.png")
    scorer = Scorer(tiny_module, patches=4, patch_size=PATCH, seed=0)
    by_name = [result.per_patch for result in scorer.score_many([tmp_path / "one.png", tmp_path / "other_name.png"])]
    np.testing.assert_array_equal(by_name[0], by_name[1])
    other_seed = Scorer(tiny_module, patches=4, patch_size=PATCH, seed=1).per_patch(image)
    assert not np.allclose(other_seed, by_name[0])
    # a distorted version of the same photo is scored on the very same crops
    distorted = distortions.apply(image, "white_noise", 5, seed=0)
    positions = patch_positions(image.shape, 4, PATCH, stable_seed(0, *image.shape[:2]))
    np.testing.assert_array_equal(_seeded_patches(distorted, 4, PATCH, 0), crop_patches(distorted, positions, PATCH))
    np.testing.assert_array_equal(_seeded_patches(image, 4, PATCH, 0), crop_patches(image, positions, PATCH))


def test_grid_covers_the_image_edge_to_edge():
    positions = grid_positions((100, 230, 3), PATCH)
    assert positions.shape == (4 * 8, 2)
    assert tuple(positions[0]) == (0, 0) and tuple(positions[-1]) == (100 - PATCH, 230 - PATCH)
    assert len(grid_positions((5000, 5000, 3), PATCH, max_cells=12)) == 144


def test_small_images_are_upscaled_and_tiny_ones_rejected(tiny_module):
    assert fit_to_patch(noise(0, 40, 100), 224).shape == (224, 560, 3)
    assert fit_to_patch(noise(0, 300, 400), 224).shape == (300, 400, 3)
    scorer = Scorer(tiny_module, patches=3, patch_size=PATCH)
    with pytest.raises(UserError, match="at least 32x32 pixels, got 300x20"):
        scorer.score(noise(0, 20, 300))


def test_score_accepts_path_pil_array_and_list(tmp_path, tiny_module):
    image = noise(4, 70, 90)
    Image.fromarray(image).save(tmp_path / "a.png")
    scorer = Scorer(tiny_module, patches=5, patch_size=PATCH)
    by_array = scorer.score(image)
    assert isinstance(by_array, float)
    assert scorer.score(tmp_path / "a.png") == by_array
    assert scorer.score(str(tmp_path / "a.png")) == by_array
    assert scorer.score(Image.fromarray(image)) == by_array
    assert scorer.score([image, image[:, :, 0]]) == [by_array, scorer.score(np.repeat(image[:, :, :1], 3, axis=2))]
    assert scorer.score([]) == []
    with pytest.raises(UserError, match="item 1 .*dtype uint8"):
        scorer.score([image, image.astype(np.float32)])


def test_files_decode_like_training_images_alpha_16_bit_and_gray(tmp_path, tiny_module):
    from rankiqa.score import read_for_scoring

    rgb = noise(5, 70, 90)
    alpha = np.random.default_rng(6).integers(0, 256, rgb.shape[:2], dtype=np.uint8)
    rgba = Image.fromarray(np.dstack([rgb, alpha]))
    rgba.save(tmp_path / "rgba.png")
    on_white = (rgb * (alpha[..., None] / 255.0) + 255 * (1 - alpha[..., None] / 255.0))
    assert np.abs(read_for_scoring(tmp_path / "rgba.png").astype(int) - on_white).max() <= 1
    deep = np.random.default_rng(7).integers(0, 65536, (50, 60), dtype=np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    expected = np.repeat(np.rint(deep / 257.0).astype(np.uint8)[..., None], 3, axis=2)
    np.testing.assert_array_equal(read_for_scoring(tmp_path / "deep.png"), expected)
    Image.fromarray(rgb[..., 0]).save(tmp_path / "gray.png")
    np.testing.assert_array_equal(read_for_scoring(tmp_path / "gray.png"), np.repeat(rgb[..., :1], 3, axis=2))
    scorer = Scorer(tiny_module, patches=3, patch_size=PATCH)
    assert scorer.score(rgba) == scorer.score(tmp_path / "rgba.png")


def test_scores_do_not_depend_on_batch_size_or_neighbours(image_folder, tiny_module):
    files = sorted(image_folder.glob("*.png"))
    one = [r.score for r in Scorer(tiny_module, patches=6, patch_size=PATCH, batch_size=1).score_many(files)]
    many = [r.score for r in Scorer(tiny_module, patches=6, patch_size=PATCH, batch_size=64).score_many(files)]
    alone = Scorer(tiny_module, patches=6, patch_size=PATCH, batch_size=7).score_many(files[1:2])
    np.testing.assert_allclose(one, many, rtol=1e-5)
    assert next(alone).score == pytest.approx(one[1], rel=1e-5)


def test_median_aggregate_and_spread(tiny_module):
    image = noise(6, 70, 90)
    scorer = Scorer(tiny_module, patches=9, patch_size=PATCH, aggregate="median")
    per_patch = scorer.per_patch(image)
    assert scorer.score(image) == pytest.approx(float(np.median(per_patch)))
    with pytest.raises(ValueError, match="aggregate"):
        Scorer(tiny_module, aggregate="max")
    with pytest.raises(ValueError, match="patches"):
        Scorer(tiny_module, patches=0)


def test_inference_copy_folds_batchnorm_without_changing_scores():
    torch.manual_seed(1)
    module = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(0),
    )
    bn = module[1]
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    bn.weight.data.uniform_(0.5, 2)
    module.eval()
    fast = inference_copy(module)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    assert isinstance(module[1], torch.nn.BatchNorm2d)
    x = torch.rand(4, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), module(x), rtol=1e-5, atol=1e-5)


def test_heatmap_tints_the_worst_cell_red_and_the_best_green():
    image = np.full((64, 128, 3), 128, np.uint8)
    overlay = heatmap_overlay(image, np.array([[0, 0], [0, 64]]), np.array([-1.0, 2.0]), 64)
    assert overlay.shape == image.shape and overlay.dtype == np.uint8
    worst, best = overlay[:8, :8].astype(int).mean(axis=(0, 1)), overlay[:8, 64:72].astype(int).mean(axis=(0, 1))
    assert worst[0] > worst[1] and best[1] > best[0]


def test_expand_paths_folders_globs_and_missing(image_folder):
    files, missing = expand_paths([str(image_folder)])
    assert [f.name for f in files] == ["img0.png", "img1.png", "img2.png"]
    files, _ = expand_paths([str(image_folder)], recursive=True)
    assert len(files) == 4
    files, missing = expand_paths([str(image_folder / "img*.png"), str(image_folder / "img0.png"), "/no/such.png", str(image_folder / "x*.jpg")])
    assert len(files) == 3
    assert [m.error for m in missing] == ["file not found", "no file matches this pattern"]


def test_cli_scores_a_folder_and_skips_bad_files(image_folder, tiny_checkpoint, tmp_path):
    (image_folder / "broken.jpg").write_bytes(b"not an image")
    Image.fromarray(noise(0, 10, 10)).save(image_folder / "small.png")
    out = tmp_path / "scores.csv"
    heat = tmp_path / "heat"
    args = ["score", str(image_folder), "--weights", str(tiny_checkpoint), "--patches", "4", "--patch-size", str(PATCH),
            "--format", "csv", "--output", str(out), "--heatmap", str(heat)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "skipped " + str(image_folder / "broken.jpg") + ": not an image (unrecognised format)" in result.output
    assert "small.png: too small: 10x10 (short side below 32 px)" in result.output
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["path"].rsplit("/", 1)[1] for r in rows] == ["img0.png", "img1.png", "img2.png"]
    scorer = rankiqa.load_model(tiny_checkpoint, patches=4, patch_size=PATCH)
    assert float(rows[0]["score"]) == pytest.approx(scorer.score(image_folder / "img0.png"), abs=1e-6)
    assert sorted(p.name for p in heat.iterdir()) == ["img0.heatmap.png", "img1.heatmap.png", "img2.heatmap.png"]

    json_result = CliRunner().invoke(cli, [*args[:-6], "--format", "json"])
    assert [row["patches"] for row in json.loads(json_result.stdout)] == [4, 4, 4]


def test_cli_fails_only_when_nothing_is_scored(tmp_path, tiny_checkpoint):
    (tmp_path / "bad.png").write_bytes(b"broken")
    result = CliRunner().invoke(cli, ["score", str(tmp_path / "bad.png"), "--weights", str(tiny_checkpoint)])
    assert result.exit_code != 0
    assert "no image could be scored" in str(result.exception)


def test_unknown_model_name_or_missing_checkpoint_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not a backbone"):
        rankiqa.load_model("resnet51")
    with pytest.raises(UserError, match="checkpoint not found"):
        rankiqa.load_model(tmp_path / "missing.pt")


def test_backbone_names_give_an_untrained_model():
    scorer = rankiqa.load_model("tiny", patches=2, patch_size=PATCH)
    assert scorer.module.config["backbone"] == "tiny"
    assert isinstance(scorer.score(noise(0, 70, 90)), float)


def test_load_scorer_keeps_its_old_name_and_score_returns_a_float_or_a_list():
    assert rankiqa.load_model is rankiqa.load_scorer
    assert rankiqa.score.load_model is rankiqa.score.load_scorer
    scorer = rankiqa.load_scorer("tiny", patches=2, patch_size=PATCH)
    assert isinstance(scorer, Scorer)
    one = scorer.score(noise(0, 70, 90))
    many = scorer.score((noise(1, 70, 90), noise(0, 70, 90)))  # a tuple is several images too; the order is kept
    assert type(one) is float and type(many) is list and all(type(value) is float for value in many)
    assert many[1] == pytest.approx(one, abs=1e-6)


def test_a_stripped_checkpoint_dropped_in_place_becomes_the_default(tmp_path, tiny_checkpoint, monkeypatch):
    from rankiqa.export import strip_checkpoint

    bundled = strip_checkpoint(tiny_checkpoint, tmp_path / "assets" / "default.pt")
    monkeypatch.setattr("rankiqa.models.DEFAULT_WEIGHTS", bundled)
    scorer = rankiqa.load_model("default", patches=3, patch_size=PATCH)
    # the stripped file stores float16 weights: the reference is the original with its weights
    # rounded to float16 and back, so the scores agree to float32 rounding (not to fp16's 1e-3)
    rounded = create_model("tiny")
    rounded.load_state_dict({k: v.half().float() for k, v in torch.load(tiny_checkpoint, weights_only=True)["model_state"].items()})
    reference = Scorer(rounded, patches=3, patch_size=PATCH)
    assert scorer.score(noise(3, 70, 90)) == pytest.approx(reference.score(noise(3, 70, 90)), rel=1e-6, abs=1e-7)
    assert scorer.score(noise(3, 70, 90)) != rankiqa.load_model(tiny_checkpoint, patches=3, patch_size=PATCH).score(noise(3, 70, 90))


@pytest.fixture(scope="module")
def default_scorer():
    return rankiqa.load_model("default", patches=5)


def test_the_bundled_default_model_loads_offline_with_weights_only(monkeypatch, tmp_path):
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("loading the default model tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))
    assert DEFAULT_WEIGHTS.stat().st_size <= 20 * 2**20
    payload = torch.load(DEFAULT_WEIGHTS, weights_only=True, map_location="cpu")
    scorer = rankiqa.load_model("default", patches=3)
    assert scorer.module.config == payload["model_config"]
    for name, tensor in scorer.module.state_dict().items():
        torch.testing.assert_close(tensor, payload["model_state"][name].to(tensor.dtype))
    bundled = sorted(BUNDLED_IMAGES.glob("*.png"))
    scores = scorer.score(bundled)
    assert len(scores) == len(bundled) >= 6
    assert np.all(np.isfinite(scores)) and len(set(scores)) == len(scores)


@pytest.mark.parametrize("distortion", ["gaussian_blur", "white_noise"])
def test_the_default_model_orders_distortion_levels_of_bundled_images(default_scorer, distortion):
    for name in ("chelsea.png", "kodim05.png"):
        levels = distortions.apply_levels(read_rgb(BUNDLED_IMAGES / name), distortion, seed=0)
        scores = default_scorer.score(levels)
        assert scores[0] > scores[4] + 1.0, (name, scores)
        assert all(better > worse for better, worse in zip(scores, scores[1:])), (name, scores)


@pytest.mark.slow
def test_a_24_megapixel_jpeg_is_scored_below_2_gb(tmp_path, tiny_checkpoint):
    import subprocess
    import sys

    rng = np.random.default_rng(0)
    gradient = np.linspace(0, 255, 6000, dtype=np.float32)[None, :, None] + np.zeros((4000, 1, 3), np.float32)
    Image.fromarray(np.clip(gradient + rng.normal(0, 4, (4000, 1, 3)), 0, 255).astype(np.uint8)).save(tmp_path / "big.jpg", quality=85)
    measure = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    command = [sys.executable, "-m", "rankiqa", "score", str(tmp_path / "big.jpg"), "--weights", str(tiny_checkpoint), "--format", "csv"]
    done = subprocess.run([sys.executable, "-c", measure, *command], capture_output=True, text=True, check=True)
    lines = done.stdout.split()
    peak_mib = int(lines[-1]) / 1024
    assert "big.jpg" in done.stdout
    assert peak_mib < 2048, f"peak RSS {peak_mib:.0f} MiB"


class NaNWhenBright(torch.nn.Module):
    """Scores a patch by its mean brightness, but outputs NaN for bright patches (a broken model)."""

    def __init__(self):
        super().__init__()
        self.gain = torch.nn.Parameter(torch.ones(1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        mean = images.mean(dim=(1, 2, 3)) * self.gain
        return torch.where(mean > 0.5, torch.full_like(mean, float("nan")), mean)


def test_a_non_finite_model_output_is_an_error_for_that_image_only(tmp_path):
    dark, bright = np.full((40, 40, 3), 50, np.uint8), np.full((40, 40, 3), 200, np.uint8)
    scorer = Scorer(NaNWhenBright(), patches=3, patch_size=PATCH)
    results = list(scorer.score_many([dark, bright, dark]))
    assert [r.error is None for r in results] == [True, False, True]
    assert results[1].error == "the model gave a non-finite score (nan) for 3 of 3 patches"
    assert results[1].score is None and results[0].score == pytest.approx(50 / 255)
    with pytest.raises(UserError, match="non-finite score"):
        scorer.score(bright)


def test_cli_json_stays_valid_json_when_the_model_gives_nan(tmp_path, monkeypatch, capsys):
    from rankiqa.cli import main

    Image.fromarray(np.full((40, 40, 3), 50, np.uint8)).save(tmp_path / "dark.png")
    Image.fromarray(np.full((40, 40, 3), 200, np.uint8)).save(tmp_path / "bright.png")
    monkeypatch.setattr("rankiqa.score.load_model", lambda *a, **k: Scorer(NaNWhenBright(), patches=3, patch_size=PATCH))
    main(["score", str(tmp_path / "dark.png"), str(tmp_path / "bright.png"), "--format", "json"])
    captured = capsys.readouterr()
    rows = json.loads(captured.out, parse_constant=lambda name: pytest.fail(f"invalid JSON constant {name}"))
    assert [row["path"] for row in rows] == [str(tmp_path / "dark.png")]
    assert f"skipped {tmp_path / 'bright.png'}: the model gave a non-finite score (nan) for 3 of 3 patches" in captured.err


def test_cli_with_nan_weights_fails_with_one_line(tmp_path, tiny_module, capsys):
    from rankiqa.cli import main

    state = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
             for k, v in tiny_module.state_dict().items()}
    save_checkpoint(tmp_path / "nan.pt", {"model_config": tiny_module.config, "model_state": state})
    Image.fromarray(noise(0, 70, 90)).save(tmp_path / "a.png")
    with pytest.raises(SystemExit) as exit_info:
        main(["score", str(tmp_path / "a.png"), "--weights", str(tmp_path / "nan.pt"), "--format", "json"])
    captured = capsys.readouterr()
    assert exit_info.value.code == 2 and captured.out == "" and "Traceback" not in captured.err
    assert "non-finite score (nan)" in captured.err and "Error: no image could be scored" in captured.err


def test_batch_size_help_tells_the_truth_and_printed_scores_are_rounded(image_folder, tiny_checkpoint):
    from rankiqa.score import PRINT_DECIMALS

    help_text = " ".join(CliRunner().invoke(cli, ["score", "--help"]).output.split())
    assert "never changes a score" not in help_text
    assert "float rounding only, ~1e-6" in help_text and "6 decimals printed in csv/json" in help_text
    result = CliRunner().invoke(cli, ["score", str(image_folder), "--weights", str(tiny_checkpoint), "--patches", "4",
                                      "--patch-size", str(PATCH), "--format", "json"])
    rows = json.loads(result.stdout)
    assert rows and all(round(row[key], PRINT_DECIMALS) == row[key] for row in rows for key in ("score", "spread"))


def test_scores_over_batch_sizes_1_to_16_agree_to_float_rounding(image_folder, tiny_module):
    files = sorted(image_folder.glob("*.png"))
    runs = np.array([[r.score for r in Scorer(tiny_module, patches=5, patch_size=PATCH, batch_size=size).score_many(files)]
                     for size in range(1, 17)])
    assert np.abs(runs - runs[0]).max() <= 1e-6 * max(1.0, np.abs(runs).max())
