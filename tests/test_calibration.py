"""The human calibration table, target losses, the raw -> MOS scale and their use in train/score."""
from __future__ import annotations

import csv
import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import distortions
from rankiqa.calibration import TARGETS_FILE, fit_scale, load_targets, target_matrix, to_mos
from rankiqa.errors import UserError
from rankiqa.losses import target_pair_mask, target_ranking_loss, target_regression_loss

REPO = Path(__file__).resolve().parents[1]
KADID_CSV = REPO.parent / "shared" / "data" / "labels" / "official_format" / "kadid10k_dmos.RECONSTRUCTED.csv"

# KADID-10k's level parameters as published in its MATLAB generator (imdist_generator.m; copied from
# shared/reference/distortions.md section 1), per KADID type id. Contrast (25) is given as the curve
# value at 0.3, 0.25 - a/4, which is how our contrast types state their level.
KADID_PARAMETERS = {
    1: (0.1, 0.5, 1, 2, 5), 2: (1, 2, 4, 6, 8), 3: (1, 2, 4, 6, 10), 4: (1, 3, 6, 8, 12), 5: (1, 3, 6, 8, 12),
    6: (64, 48, 32, 16, 8), 7: (0.4, 0.2, 0.1, 0, -0.4), 8: (1, 2, 3, 6, 9), 9: (16, 32, 45, 120, 400),
    10: (43, 36, 24, 7, 4), 11: (0.001, 0.002, 0.003, 0.005, 0.01), 12: (1e-4, 5e-4, 1e-3, 2e-3, 3e-3),
    13: (0.001, 0.005, 0.01, 0.02, 0.03), 14: (0.001, 0.005, 0.01, 0.02, 0.05), 16: (0.1, 0.2, 0.4, 0.7, 1.1),
    17: (0.05, 0.1, 0.2, 0.4, 0.8), 19: (0.05, 0.1, 0.2, 0.5, 1), 20: (20, 40, 60, 80, 100),
    22: (20, 16, 13, 10, 7), 23: (2, 4, 6, 8, 10), 24: (1, 2, 3, 6, 12),
    25: (0.175, 0.2125, 0.25, 0.35, 0.40),
}


def _table_rows() -> list[dict[str, str]]:
    with open(TARGETS_FILE, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_table_has_one_row_per_registered_level_and_the_pristine():
    keys = [(row["distortion"], int(row["level"])) for row in _table_rows()]
    expected = [("pristine", 0)] + [(name, level) for name in distortions.names() for level in range(1, 6)]
    assert sorted(keys) == sorted(expected) and len(set(keys)) == len(keys)


def test_a_target_only_where_our_parameter_equals_kadids():
    for row in _table_rows():
        if row["distortion"] == "pristine" or not row["mos"]:
            assert row["distortion"] == "pristine" or (row["note"] and row["images"] == "0")
            continue
        ours = distortions.get(row["distortion"]).levels[int(row["level"]) - 1]
        theirs = KADID_PARAMETERS[int(row["source_type"])][int(row["source_level"]) - 1]
        assert math.isclose(float(ours), float(theirs), rel_tol=1e-9), row


def test_types_whose_parameters_differ_have_no_target():
    table = load_targets()
    for name in ("denoise", "mean_shift_up", "mean_shift_down", "pixelate", "live_jpeg", "blur_jpeg"):
        assert not any((name, level) in table for level in range(1, 6)), name
    assert ("gaussian_blur", 4) not in table and ("gaussian_blur", 5) in table


@pytest.mark.skipif(not KADID_CSV.is_file(), reason=f"KADID-10k label file not found at {KADID_CSV}")
def test_table_values_are_kadid_means_computed_independently():
    import pandas as pd

    kadid = pd.read_csv(KADID_CSV)
    kadid["type"] = kadid.dist_img.str.slice(4, 6).astype(int)
    kadid["level"] = kadid.dist_img.str.slice(7, 9).astype(int)
    cells = kadid.groupby(["type", "level"]).dmos.agg(["mean", "std", "count"])
    for row in _table_rows():
        if not row["mos"] or row["distortion"] == "pristine":
            continue
        cell = cells.loc[(int(row["source_type"]), int(row["source_level"]))]
        assert float(row["mos"]) == pytest.approx(cell["mean"], abs=5e-5)
        assert float(row["mos_std"]) == pytest.approx(cell["std"], abs=5e-5)
        assert int(row["images"]) == cell["count"] == 81
    identity = kadid[kadid[["type", "level"]].apply(tuple, axis=1).isin([(1, 1), (8, 1), (18, 3)])].dmos
    assert load_targets()[("pristine", 0)].mos == pytest.approx(identity.mean(), abs=5e-5)


@pytest.mark.skipif(not KADID_CSV.is_file(), reason=f"KADID-10k label file not found at {KADID_CSV}")
def test_shipped_table_is_what_the_build_script_makes(tmp_path):
    spec = importlib.util.spec_from_file_location("build_calibration", REPO / "tools" / "build_calibration.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "table.csv"
    module.main([str(KADID_CSV), "--out", str(out)])
    assert out.read_text(encoding="utf-8") == TARGETS_FILE.read_text(encoding="utf-8")


@pytest.mark.parametrize("content, message", [
    ("distortion,level,mos\n", "missing column"),
    ("distortion,level,mos,mos_std,images,source\npristine,0,6.5,0.1,3,X\n", "outside the 1-5 MOS scale"),
    ("distortion,level,mos,mos_std,images,source\npristine,zero,4,0.1,3,X\n", "is not an integer"),
    ("distortion,level,mos,mos_std,images,source\npristine,0,four,0.1,3,X\n", "cannot read"),
    ("distortion,level,mos,mos_std,images,source\njpeg,1,4,0.1,3,X\n", "no pristine row"),
])
def test_a_bad_table_is_one_line_naming_the_file(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(UserError, match=message) as info:
        load_targets(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_target_matrix_marks_missing_targets_nan():
    table = load_targets()
    mos, std = target_matrix(["jpeg", "denoise"], table)
    assert mos.shape == (2, 6) and np.all(mos[:, 0] == table[("pristine", 0)].mos)
    assert np.all(np.isfinite(mos[0])) and np.all(np.isnan(mos[1, 1:])) and np.isnan(std[1, 3])
    assert mos[0, 5] == table[("jpeg", 5)].mos


def test_target_pair_mask_and_loss_by_hand():
    # images: set 0 = (4.6, 3.0), set 1 = (4.0, nan); sd 0.2 each -> threshold 0.674*sqrt(0.08)=0.1906
    targets = torch.tensor([4.6, 3.0, 4.0, float("nan")])
    noise = torch.full((4,), 0.2)
    sets = torch.tensor([0, 0, 1, 1])
    mask = target_pair_mask(targets, noise, sets)
    expected = torch.zeros(4, 4, dtype=torch.bool)
    expected[0, 2] = True  # 4.6 > 4.0 + 0.19, different sets
    expected[2, 1] = True  # 4.0 > 3.0 + 0.19
    assert torch.equal(mask, expected)
    scores = torch.tensor([1.0, 0.0, 0.5, 9.0], requires_grad=True)
    # pair (0,2): max(0, 1.5*0.6 - 0.5) = 0.4 ; pair (2,1): max(0, 1.5*1.0 - 0.5) = 1.0 -> mean 0.7
    loss = target_ranking_loss(scores, targets, noise, sets, scale=1.5)
    assert loss.item() == pytest.approx(0.7, abs=1e-6)
    loss.backward()
    assert scores.grad[3] == 0 and torch.isfinite(scores.grad).all()


def test_target_pairs_below_the_noise_are_skipped():
    targets = torch.tensor([4.0, 3.9])
    assert not target_pair_mask(targets, torch.tensor([0.3, 0.3]), torch.tensor([0, 1])).any()
    assert target_pair_mask(targets, torch.tensor([0.0, 0.0]), torch.tensor([0, 1]))[0, 1]


def test_target_regression_loss_by_hand():
    scores = torch.tensor([1.5, 0.0, 7.0])
    targets = torch.tensor([4.0, 3.0, float("nan")])
    # goals 1.5*(4-3)=1.5 and 0: zero error
    assert target_regression_loss(scores, targets, scale=1.5).item() == 0.0
    # smooth L1 (beta 1): errors 0.5 and 2.0 -> (0.5*0.25 + 1.5)/2 = 0.8125
    assert target_regression_loss(torch.tensor([2.0, 2.0]), torch.tensor([4.0, 3.0]), 1.5).item() == pytest.approx(0.8125)


def test_fit_scale_recovers_a_known_logistic():
    raw = np.linspace(-4, 6, 200)
    low, high, centre, width = 1.2, 4.7, 1.0, 1.3
    mos = low + (high - low) / (1 + np.exp(-(raw - centre) / width))  # written out, not rankiqa's function
    calibration = fit_scale(raw, mos)
    assert calibration["params"] == pytest.approx([low, high, centre, width], abs=1e-3)
    assert calibration["fit_rmse"] < 1e-4
    mapped = to_mos(np.array([-100.0, 1.0, 100.0]), calibration)
    assert mapped[0] == pytest.approx(low, abs=1e-3) and mapped[1] == pytest.approx((low + high) / 2, abs=1e-3)
    assert np.all(np.diff(to_mos(raw, calibration)) >= 0)
    assert isinstance(to_mos(0.5, calibration), float)


def test_fit_scale_refuses_too_little_data_and_to_mos_unknown_kinds():
    with pytest.raises(UserError, match="cannot fit"):
        fit_scale(np.ones(20), np.linspace(1, 5, 20))
    with pytest.raises(UserError, match="unknown calibration"):
        to_mos(1.0, {"kind": "spline"})


@pytest.fixture
def calibrated_scorer():
    from rankiqa.models import create_model
    from rankiqa.score import Scorer

    torch.manual_seed(0)
    module = create_model("tiny")
    module.calibration = {"kind": "logistic4", "params": [1.0, 5.0, 0.0, 0.5], "scale": "test"}
    return Scorer(module, patches=2, patch_size=32)


def test_scorer_reports_mos_when_the_model_is_calibrated(calibrated_scorer, tmp_path):
    from rankiqa.score import format_results

    image = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    raw = calibrated_scorer.score(image)
    mos = calibrated_scorer.score(image, scale="mos")
    assert mos == pytest.approx(1.0 + 4.0 / (1 + math.exp(-raw / 0.5)), abs=1e-9)
    result = next(calibrated_scorer.score_many([image]))
    assert result.mos == pytest.approx(mos)
    header, row = format_results([result], "csv").splitlines()
    assert header == "path,score,spread,patches,mos" and row.endswith(f"{mos:.4f}")


def test_uncalibrated_scorer_refuses_the_mos_scale():
    from rankiqa.score import load_model

    scorer = load_model("tiny", patches=1, patch_size=32)
    assert scorer.calibration is None
    with pytest.raises(UserError, match="no calibrated scale"):
        scorer.score(np.zeros((40, 40, 3), np.uint8), scale="mos")
    assert "mos" not in next(scorer.score_many([np.zeros((40, 40, 3), np.uint8)])).as_row()


def test_stripped_checkpoint_keeps_the_calibration(tmp_path):
    from rankiqa.checkpoint import save_checkpoint
    from rankiqa.export import strip_checkpoint
    from rankiqa.models import create_model, model_from_checkpoint

    model = create_model("tiny")
    calibration = {"kind": "logistic4", "params": [1.0, 5.0, 0.0, 1.0]}
    save_checkpoint(tmp_path / "full.pt", {"model_config": dict(model.config), "model_state": model.state_dict(),
                                           "calibration": calibration})
    strip_checkpoint(tmp_path / "full.pt", tmp_path / "small.pt")
    assert model_from_checkpoint(tmp_path / "small.pt").calibration == calibration


def test_train_with_targets_fits_and_stores_a_calibrated_scale(tmp_path):
    from rankiqa.models import model_from_checkpoint
    from rankiqa.train import TrainConfig, train

    config = TrainConfig(out=str(tmp_path / "run"), pristine=str(REPO / "rankiqa" / "assets" / "images"),
                         backbone="tiny", steps=4, batch_sets=3, patch=32, val_fraction=0.34, val_every=4,
                         distortions=("jpeg", "white_noise", "denoise"), targets="kadid", target_margins=True,
                         max_side=128, seed=0)
    result = train(config, progress=False)
    assert "target_srcc" in result.last_val and -1 <= result.last_val["target_srcc"] <= 1
    calibration = model_from_checkpoint(tmp_path / "run" / "best.pt").calibration
    assert calibration["kind"] == "logistic4" and calibration["targets"] == "kadid"
    # 6 bundled photos, 2 held out: every image of the 4 x 3 training sets has a target except denoise 1-5
    assert calibration["fit_images"] == 4 * 3 * 6 - 4 * 5
    header = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0]
    assert header.endswith("val_target_srcc")


def test_targets_need_a_set_based_loss(tmp_path):
    from rankiqa.train import TrainConfig

    with pytest.raises(UserError, match="not pairwise"):
        TrainConfig(out=str(tmp_path), pristine=str(tmp_path), loss="pairwise", targets="kadid")


def test_docs_mapping_table_is_in_sync():
    import re

    from rankiqa.calibration import mapping_markdown

    text = (REPO / "docs" / "calibration.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- calibration-table:start -->\n(.*?)\n<!-- calibration-table:end -->", text, re.S)
    assert match and match[1] == mapping_markdown(), "regenerate docs/calibration.md's table with mapping_markdown()"


def test_target_margins_follow_the_targets_with_a_floor_by_hand():
    from rankiqa.losses import batch_ranking_loss, target_margins

    targets = torch.tensor([4.6, 4.5, 2.6, float("nan")])
    margins = target_margins(targets, margin=1.0, scale=1.5, floor=0.2)
    assert margins[0, 1].item() == pytest.approx(0.2)          # 1.5 * 0.1 = 0.15 -> floor 0.2
    assert margins[0, 2].item() == pytest.approx(3.0)          # 1.5 * 2.0
    assert margins[1, 2].item() == pytest.approx(2.85)         # 1.5 * 1.9
    assert margins[0, 3].item() == 1.0 and margins[3, 0].item() == 1.0  # no target: the uniform margin
    scores = torch.tensor([3.0, 2.9, 0.0, -5.0])
    ids = torch.zeros(4, dtype=torch.long)
    levels = torch.tensor([0, 1, 2, 3])
    # pairs (0,1): 0.2-0.1=0.1; (0,2): 3-3=0; (1,2): 2.85-2.9<0 -> 0; (0,3),(1,3),(2,3): 1-8, 1-7.9, 1-5 <0
    loss = batch_ranking_loss(scores, ids, ids, levels, margins)
    assert loss.item() == pytest.approx(0.1 / 6, abs=1e-6)


def test_target_margins_need_targets_and_batch_ranking(tmp_path):
    from rankiqa.train import TrainConfig

    with pytest.raises(UserError, match="^target_margins needs targets and loss batch-ranking"):
        TrainConfig(out=str(tmp_path), pristine=str(tmp_path), target_margins=True)
    with pytest.raises(UserError, match="^target_margins needs targets and loss batch-ranking"):
        TrainConfig(out=str(tmp_path), pristine=str(tmp_path), loss="triplet", targets="kadid", target_margins=True)


def test_target_noise_threshold_is_z_times_the_combined_sd_by_hand():
    # sd 0.3 and 0.4 combine to 0.5; z = 0.674 (default) -> threshold 0.337
    noise = torch.tensor([0.3, 0.4])
    sets = torch.tensor([0, 1])
    assert not target_pair_mask(torch.tensor([4.0, 3.7]), noise, sets).any()        # 0.30 < 0.337
    assert target_pair_mask(torch.tensor([4.0, 3.64]), noise, sets)[0, 1]           # 0.36 > 0.337
    equal = target_pair_mask(torch.tensor([4.0, 4.0]), torch.zeros(2), sets)
    assert not equal.any()  # a zero difference is never a pair, even without noise


def test_target_losses_defaults_and_single_pairs_by_hand():
    # one qualifying pair: the mean over pairs is that pair's hinge (default scale 1.0)
    loss = target_ranking_loss(torch.tensor([0.0, 0.0]), torch.tensor([4.0, 3.0]), torch.zeros(2), torch.tensor([0, 1]))
    assert loss.item() == pytest.approx(1.0)
    # regression, default scale 1 and centre 3: goals 1.0 and 0.0 -> smooth L1 of errors 1.0 and 0.0
    assert target_regression_loss(torch.tensor([0.0, 0.0]), torch.tensor([4.0, 3.0])).item() == pytest.approx(0.25)
    scores = torch.tensor([1.0, 2.0], requires_grad=True)
    none = target_regression_loss(scores, torch.tensor([float("nan"), float("nan")]))
    assert none.item() == 0.0
    none.backward()
    assert torch.equal(scores.grad, torch.zeros(2))
