"""Rank pre-training: data order, objectives, validation statistics, learning, resume, Ctrl-C, errors."""
from __future__ import annotations

import csv
import dataclasses
import json

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch.utils.data import Dataset

from rankiqa.checkpoint import load_checkpoint
from rankiqa.errors import UserError
from rankiqa.models import create_model, model_from_checkpoint
from rankiqa.train import (
    SiameseRanker,
    TrainConfig,
    batch_indices,
    evaluate_ranking,
    set_rank_statistics,
    steps_per_epoch,
    train,
)


class NoiseSets(Dataset):
    """A stand-in for ``RankedSets``: level k adds white noise of sigma 0.07*k to a smooth image.

    Same item format; items depend only on (index, epoch). ``interrupt_after`` raises
    KeyboardInterrupt at that many fetches, like a Ctrl-C during training.
    """

    def __init__(self, n_refs: int = 6, patch: int = 32, seed: int = 0, interrupt_after: int | None = None):
        self.references = [f"ref{i}.png" for i in range(n_refs)]
        self.distortion_names = ["noise_a", "noise_b"]
        self.patch, self.seed, self.epoch = patch, seed, 0
        self.interrupt_after, self.fetches = interrupt_after, 0

    def __len__(self) -> int:
        return len(self.references) * len(self.distortion_names)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, index: int) -> dict:
        self.fetches += 1
        if self.interrupt_after is not None and self.fetches > self.interrupt_after:
            raise KeyboardInterrupt
        generator = torch.Generator().manual_seed(self.seed * 10_000 + self.epoch * 100 + index)
        base = torch.nn.functional.interpolate(torch.rand(1, 3, 4, 4, generator=generator), size=self.patch,
                                               mode="bilinear", align_corners=False)[0]
        levels = torch.arange(6)
        noise = torch.randn(6, 3, self.patch, self.patch, generator=generator) * 0.07 * levels.view(6, 1, 1, 1)
        reference_id, distortion_id = divmod(index, len(self.distortion_names))
        return {"images": (base + noise).clamp(0, 1), "levels": levels,
                "reference_id": reference_id, "distortion_id": distortion_id}


def _config(tmp_path, **overrides) -> TrainConfig:
    values = dict(out=str(tmp_path / "run"), pristine="unused", backbone="tiny", steps=12, lr=3e-3, batch_sets=3,
                  patch=32, val_every=4, log_every=2, seed=0)
    values.update(overrides)
    return TrainConfig(**values)


def test_batch_indices_are_a_seeded_permutation_per_epoch():
    per_epoch = steps_per_epoch(10, 3)
    assert per_epoch == 3
    epoch0 = [i for step in range(per_epoch) for i in batch_indices(10, 3, step, seed=5)]
    assert len(set(epoch0)) == 9 and set(epoch0) <= set(range(10))
    assert batch_indices(10, 3, 1, seed=5) == batch_indices(10, 3, 1, seed=5)
    assert batch_indices(10, 3, 0, seed=5) != batch_indices(10, 3, per_epoch, seed=5)  # next epoch reshuffles


def test_batch_indices_shard_the_single_process_batch_across_ranks():
    for step in range(5):
        whole = batch_indices(13, 4, step, seed=1)
        shards = [batch_indices(13, 2, step, seed=1, rank=r, world_size=2) for r in range(2)]
        assert sorted(shards[0] + shards[1]) == sorted(whole)
        assert not set(shards[0]) & set(shards[1])


def test_batch_indices_cycle_a_dataset_smaller_than_a_batch():
    indices = batch_indices(2, 5, 0, seed=0)
    assert sorted(indices[:2]) == [0, 1] and indices == (indices[:2] * 3)[:5]


def test_set_rank_statistics_match_scipy_and_pair_loop():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(20, 6)).round(1)  # rounding makes ties
    scores[0] = 3.0  # constant scores: SRCC defined as 0
    levels = np.tile(np.arange(6), (20, 1))
    srcc, accuracy = set_rank_statistics(scores, levels)
    assert srcc[0] == 0 and accuracy[0] == 0.5
    for row in range(1, 20):
        assert srcc[row] == pytest.approx(spearmanr(scores[row], -levels[row]).statistic)
        pairs = [(i, j) for i in range(6) for j in range(i + 1, 6)]
        credit = [1.0 if scores[row, i] > scores[row, j] else 0.5 if scores[row, i] == scores[row, j] else 0.0
                  for i, j in pairs]
        assert accuracy[row] == pytest.approx(np.mean(credit))


def test_pairwise_two_pass_equals_batch_ranking_on_the_same_pairs():
    torch.manual_seed(0)
    model = create_model("tiny")  # no batch norm: two passes and one pass give identical scores
    batch = torch.utils.data.default_collate([NoiseSets()[i] for i in range(3)])
    losses, grads = [], []
    for loss in ("pairwise", "batch-ranking"):
        model.zero_grad()
        value = SiameseRanker(model, loss, margin=0.5)(batch)
        value.backward()
        losses.append(value.detach())
        grads.append(model.head.weight.grad.clone())
    torch.testing.assert_close(losses[0], losses[1])
    torch.testing.assert_close(grads[0], grads[1])


def test_evaluate_ranking_reports_per_type_and_overall():
    model = create_model("tiny")
    overall, per_type = evaluate_ranking(model, NoiseSets(n_refs=3), torch.device("cpu"), batch_sets=4)
    assert overall["sets"] == 6
    assert [row["distortion"] for row in per_type] == ["noise_a", "noise_b"]
    assert sum(row["sets"] for row in per_type) == 6
    assert overall["srcc"] == pytest.approx(np.mean([row["srcc"] for row in per_type]))
    assert model.training  # restored


@pytest.mark.parametrize("loss", ["batch-ranking", "pairwise", "triplet", "contrastive"])
def test_training_learns_to_rank_noise_levels(tmp_path, loss):
    config = _config(tmp_path, loss=loss, steps=40, lr=1e-2, val_every=40, margin=0.2)
    result = train(config, NoiseSets(), NoiseSets(n_refs=3, seed=1), progress=False)
    minimum = 0.5 if loss == "contrastive" else 0.9  # contrastive only fixes pristine-vs-distorted
    assert result.best_srcc > minimum, result.last_val


def test_run_folder_contents(tmp_path):
    result = train(_config(tmp_path), NoiseSets(), NoiseSets(n_refs=2, seed=1), progress=False)
    run = result.run_dir
    assert {p.name for p in run.iterdir()} == {"config.json", "metrics.csv", "val_per_type.csv", "last.pt",
                                               "best.pt", "curves.png", "report.html"}
    config = json.loads((run / "config.json").read_text())
    assert config["backbone"] == "tiny" and config["total_steps"] == 12 and config["world_size"] == 1
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows] == [2, 4, 6, 8, 10, 12]
    assert [r["val_srcc"] != "" for r in rows] == [False, True, False, True, False, True]
    payload = load_checkpoint(run / "last.pt")
    assert payload["step"] == 12 and payload["model_config"] == {"backbone": "tiny"}
    assert max(float(r["val_srcc"] or "-2") for r in rows) == pytest.approx(result.best_srcc, abs=1e-4)
    assert not model_from_checkpoint(run / "best.pt").training


def test_ctrl_c_saves_and_resume_matches_uninterrupted_run(tmp_path):
    reference = train(_config(tmp_path / "a"), NoiseSets(), NoiseSets(n_refs=2, seed=1), progress=False)
    interrupted = train(_config(tmp_path / "b"), NoiseSets(interrupt_after=3 * 7 + 1), NoiseSets(n_refs=2, seed=1),
                        progress=False)
    assert interrupted.interrupted and interrupted.step == 7
    assert load_checkpoint(tmp_path / "b" / "run" / "last.pt")["step"] == 7
    resumed = train(_config(tmp_path / "b", resume=True), NoiseSets(), NoiseSets(n_refs=2, seed=1), progress=False)
    assert resumed.step == 12 and not resumed.interrupted
    expected = load_checkpoint(reference.run_dir / "last.pt")["model_state"]
    got = load_checkpoint(resumed.run_dir / "last.pt")["model_state"]
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=0)
    assert resumed.best_srcc == pytest.approx(reference.best_srcc)


def test_resume_builds_the_model_without_pretrained_weights(tmp_path, monkeypatch):
    requested = []

    def recording_create_model(backbone, pretrained=False, **kwargs):
        requested.append(pretrained)
        return create_model(backbone, **kwargs)  # tiny has no ImageNet weights; the flag is what is checked

    monkeypatch.setattr("rankiqa.training.run.create_model", recording_create_model)
    train(_config(tmp_path, steps=2, val_every=2, pretrained=True), NoiseSets(), None, progress=False)
    train(_config(tmp_path, steps=2, val_every=2, pretrained=True, resume=True), NoiseSets(), None, progress=False)
    assert requested == [True, False]


class NaNSets(NoiseSets):
    """NoiseSets whose images turn to NaN after ``fine_fetches`` fetches (a diverged input pipeline)."""

    def __init__(self, fine_fetches: int):
        super().__init__()
        self.fine_fetches = fine_fetches

    def __getitem__(self, index: int) -> dict:
        item = super().__getitem__(index)
        if self.fetches > self.fine_fetches:
            item["images"] = torch.full_like(item["images"], float("nan"))
        return item


def test_non_finite_loss_saves_last_step_and_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match=r"loss became nan at step 6 .*at step 5\).*lower lr than 0.003"):
        train(_config(tmp_path), NaNSets(fine_fetches=3 * 5), None, progress=False)
    payload = load_checkpoint(tmp_path / "run" / "last.pt")
    assert payload["step"] == 5
    assert all(torch.isfinite(value).all() for value in payload["model_state"].values())


def test_epochs_set_the_step_count(tmp_path):
    result = train(_config(tmp_path, steps=None, epochs=2, val_every=100), NoiseSets(), None, progress=False)
    assert result.total_steps == 2 * steps_per_epoch(len(NoiseSets()), 3) == 8 and result.step == 8
    assert load_checkpoint(result.run_dir / "best.pt")["step"] == 8  # no validation: best = last


def test_existing_run_needs_resume_and_resume_refuses_changed_options(tmp_path):
    train(_config(tmp_path, steps=2, val_every=2), NoiseSets(), None, progress=False)
    with pytest.raises(UserError, match="already holds a run.*pass resume"):
        train(_config(tmp_path, steps=2, val_every=2), NoiseSets(), None, progress=False)
    with pytest.raises(UserError, match="options differ from the saved run: lr"):
        train(_config(tmp_path, steps=2, val_every=2, lr=0.5, resume=True), NoiseSets(), None, progress=False)


@pytest.mark.parametrize("overrides, message", [
    ({"pristine": None}, "exactly one of data"),
    ({"data": "x"}, "exactly one of data"),
    ({"loss": "hinge"}, "^loss must be one of"),
    ({"batch_sets": 0}, "^batch_sets must be >= 1"),
    ({"val_fraction": 1.0}, "^val_fraction must be in"),
    ({"device": "tpu"}, "^device must be"),
    ({"epochs": 2}, r"at most one of steps \(12\) or epochs \(2\)"),
])
def test_bad_config_is_a_user_error(tmp_path, overrides, message):
    with pytest.raises(UserError, match=message):
        _config(tmp_path, **overrides)


def test_config_round_trip_and_unknown_keys(tmp_path):
    config = _config(tmp_path, distortions=("gaussian_blur",))
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(UserError, match="unknown training option"):
        TrainConfig.from_dict({**config.to_dict(), "learning_rate": 1})


def _saved_run(tmp_path, **overrides) -> tuple[TrainConfig, dict]:
    """A 4-step run stopped by Ctrl-C after step 2, and its last.pt payload."""
    config = _config(tmp_path, steps=4, val_every=2, **overrides)
    assert train(config, NoiseSets(interrupt_after=3 * 2 + 1), None, progress=False).step == 2
    return config, load_checkpoint(tmp_path / "run" / "last.pt")


@pytest.mark.parametrize("change, message", [
    (lambda p: p.pop("optimizer_state"), "missing 'optimizer_state'"),
    (lambda p: p.update(step="2"), "'step' is a str, expected int"),
    (lambda p: p.update(step=True), "'step' is a bool, expected int"),
    (lambda p: p.update(step=99), "step 99 outside 0..4"),
    (lambda p: p.update(rng_state=torch.zeros(5)), "'rng_state' is a \\(5,\\) torch.float32 tensor"),
    (lambda p: p.update(rng_state=[1, 2]), "'rng_state' is a list, expected Tensor"),
    (lambda p: p.update(model_state=[1, 2]), "'model_state' is a list, expected dict"),
    (lambda p: p.update(metrics={"a": 1}), "'metrics' is a dict, expected list"),
    (lambda p: p.update(metrics=[1]), "'metrics' must be a list of dicts"),
    (lambda p: p.update(config=[1, 2]), "'config' is a list, expected dict"),
    (lambda p: p.update(optimizer_state={}), "'optimizer_state' lacks"),
    (lambda p: p.update(optimizer_state={"state": {}, "param_groups": [1]}), "saved state does not fit"),
    (lambda p: p["model_state"].update({next(iter(p["model_state"])): torch.zeros(1)}), "saved state does not fit"),
    (lambda p: p.update(loss_window="x"), "'loss_window' must be"),
])
def test_resume_from_a_last_pt_of_the_wrong_shape_is_a_user_error(tmp_path, change, message):
    config, payload = _saved_run(tmp_path)
    change(payload)
    torch.save(payload, tmp_path / "run" / "last.pt")
    with pytest.raises(UserError, match=rf"last.pt: .*{message}"):
        train(dataclasses.replace(config, resume=True), NoiseSets(), None, progress=False)


def test_resume_from_a_file_that_is_no_checkpoint_is_a_user_error(tmp_path):
    config, _ = _saved_run(tmp_path)
    (tmp_path / "run" / "last.pt").write_text("step,loss\n2,0.1\n")
    with pytest.raises(UserError, match=r"last.pt: not a PyTorch checkpoint \(the file is text\)"):
        train(dataclasses.replace(config, resume=True), NoiseSets(), None, progress=False)


def test_resume_accepts_another_spelling_or_place_of_the_run_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photos").mkdir()
    config = _config(tmp_path, out="runs/base", steps=6, val_every=2, pristine="photos")
    assert train(config, NoiseSets(interrupt_after=3 * 2 + 1), None, progress=False).step == 2
    respelled = dataclasses.replace(config, out="./runs//base/", pristine="./photos/", resume=True)
    assert train(respelled, NoiseSets(interrupt_after=3 * 2 + 1), None, progress=False).step == 4
    (tmp_path / "runs" / "base").rename(tmp_path / "moved")
    moved = dataclasses.replace(config, out=str(tmp_path / "moved"), pristine=str(tmp_path / "photos"), resume=True)
    with pytest.raises(UserError, match="options differ from the saved run: pristine"):
        train(dataclasses.replace(moved, pristine="other"), NoiseSets(), None, progress=False)
    assert train(moved, NoiseSets(), None, progress=False).step == 6


def test_ctrl_c_and_resume_log_the_same_losses_as_an_uninterrupted_run(tmp_path):
    train(_config(tmp_path / "a"), NoiseSets(), NoiseSets(n_refs=2, seed=1), progress=False)
    train(_config(tmp_path / "b"), NoiseSets(interrupt_after=3 * 7 + 1), NoiseSets(n_refs=2, seed=1), progress=False)
    train(_config(tmp_path / "b", resume=True), NoiseSets(), NoiseSets(n_refs=2, seed=1), progress=False)

    def losses(run):
        return [(row["step"], row["loss"]) for row in csv.DictReader((run / "run" / "metrics.csv").open())]

    # interrupted after step 7 with a row every 2 steps: the step-8 row must average steps 7 and 8
    assert losses(tmp_path / "b") == losses(tmp_path / "a")


def test_disk_full_during_training_names_the_file_and_keeps_last_pt(tmp_path, monkeypatch):
    from bad_inputs import full_disk_save

    config, _ = _saved_run(tmp_path)
    before = (tmp_path / "run" / "last.pt").read_bytes()
    monkeypatch.setattr(torch, "save", full_disk_save(room=1000))
    with pytest.raises(UserError, match=r"run/last.pt: could not write the checkpoint: No space left on device "
                                        r"\(the previous file is unchanged\)"):
        train(dataclasses.replace(config, resume=True), NoiseSets(), None, progress=False)
    assert (tmp_path / "run" / "last.pt").read_bytes() == before
    assert not [p.name for p in (tmp_path / "run").iterdir() if p.name.endswith(".tmp")]


def test_disk_full_writing_metrics_names_the_file(tmp_path, monkeypatch):
    import errno

    import rankiqa.training.run

    def full(path, text):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(rankiqa.training.run, "write_text_atomic", full)
    with pytest.raises(UserError, match=r"run/config.json: could not write: No space left on device"):
        train(_config(tmp_path, steps=2, val_every=2), NoiseSets(), None, progress=False)
