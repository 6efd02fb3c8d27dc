"""MOS fine-tuning: learns on a learnable synthetic database, selects on validation, resumes, CLI."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from iqa_fixtures import build_noise_database
from rankiqa import metrics
from rankiqa.checkpoint import load_checkpoint, save_checkpoint
from rankiqa.cli import cli
from rankiqa.data import load_database, make_splits
from rankiqa.data.splits import content_groups
from rankiqa.errors import UserError
from rankiqa.finetune import FinetuneConfig, finetune
from rankiqa.models import create_model, model_from_checkpoint
from rankiqa.score import score_image, score_paths
from rankiqa.training.loop import Callback

FAST = dict(batch_size=8, patch_size=32, eval_patches=4, workers=0, device="cpu")


@pytest.fixture(scope="module")
def noise_db(tmp_path_factory):
    csv_path = build_noise_database(tmp_path_factory.mktemp("noise"), n_references=12)
    return csv_path, load_database("csv", csv_path)


def test_finetune_learns_and_reports_on_the_mos_scale(noise_db, tmp_path):
    _, df = noise_db
    split = make_splits(df, n=1, seed=0)[0]
    config = FinetuneConfig(epochs=30, lr=3e-3, **FAST)
    result = finetune(df.iloc[split.train], df.iloc[split.test], "tiny", tmp_path / "run", config)
    predictions = result.predictions
    assert len(predictions) == len(split.test)
    untrained = score_paths(create_model("tiny").eval(), predictions["path"].tolist(), 4, 32, 0)
    assert metrics.srcc(untrained, predictions["mos"]) < 0.5
    assert result.metrics["subsets"]["ALL"]["SRCC"] > 0.8  # the noise level is learnable
    assert result.metrics["subsets"]["ALL"]["SRCC"] == pytest.approx(metrics.srcc(predictions["pred"], predictions["mos"]))
    low, high = df["mos"].iloc[split.train].min(), df["mos"].iloc[split.train].max()
    np.testing.assert_allclose(predictions["pred"], low + predictions["score"] * (high - low))
    assert abs(predictions["pred"].mean() - predictions["mos"].mean()) < 1.0  # on the MOS scale, not [0, 1]
    for name in ("best.pt", "config.json", "history.csv", "test_predictions.csv", "metrics.json"):
        assert (tmp_path / "run" / name).is_file()
    assert not (tmp_path / "run" / "last.pt").exists()
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert len(history) == 30 and history["train_loss"].iloc[-5:].mean() < history["train_loss"].iloc[:5].mean()
    best = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    assert best["mos_range"] == pytest.approx([low, high])
    model = model_from_checkpoint(tmp_path / "run" / "best.pt")
    rescored = score_paths(model, predictions["path"].tolist(), 4, 32, 0)
    np.testing.assert_allclose(rescored, predictions["score"], rtol=1e-5)  # best.pt is the selected model


def test_model_selection_never_sees_test_and_run_is_reused(noise_db, tmp_path):
    _, df = noise_db
    split = make_splits(df, n=1, seed=1)[0]
    train, test = df.iloc[split.train], df.iloc[split.test]
    config = FinetuneConfig(epochs=2, lr=1e-3, **FAST)
    first = finetune(train, test, "tiny", tmp_path / "run", config)
    settings = json.loads((tmp_path / "run" / "config.json").read_text())
    assert settings["n_train_images"] == len(train) and settings["finetune"]["val_fraction"] == 0.2
    again = finetune(train, test, "tiny", tmp_path / "run", config)  # finished: read back, not retrained
    pd.testing.assert_frame_equal(first.predictions, again.predictions)
    with pytest.raises(UserError, match="different configuration"):
        finetune(train, test, "tiny", tmp_path / "run", FinetuneConfig(epochs=3, **FAST))
    with pytest.raises(UserError, match="share 1 reference contents"):
        overlap = df[np.isin(content_groups(df), content_groups(train)[:1]) | np.isin(content_groups(df), content_groups(test)[:1])]
        finetune(train, overlap, "tiny", tmp_path / "other", config)


def test_interrupted_run_resumes_from_last_epoch(noise_db, tmp_path):
    _, df = noise_db
    split = make_splits(df, n=1, seed=2)[0]
    train, test = df.iloc[split.train], df.iloc[split.test]
    full = finetune(train, test, "tiny", tmp_path / "full", FinetuneConfig(epochs=3, lr=1e-3, **FAST))

    class Stop(Exception):
        pass

    class StopAfterTwoEpochs(Callback):  # a crash once epoch 2 and its last.pt are done
        def on_step_end(self, state):
            if state.step == 2:
                raise Stop

    with pytest.raises(Stop):
        finetune(train, test, "tiny", tmp_path / "resumed", FinetuneConfig(epochs=3, lr=1e-3, **FAST),
                 callbacks=[StopAfterTwoEpochs()])
    assert (tmp_path / "resumed" / "last.pt").exists()
    assert load_checkpoint(tmp_path / "resumed" / "last.pt")["epoch"] == 1  # epochs 0 and 1 are done
    resumed = finetune(train, test, "tiny", tmp_path / "resumed", FinetuneConfig(epochs=3, lr=1e-3, **FAST))
    assert len(pd.read_csv(tmp_path / "resumed" / "history.csv")) == 3
    np.testing.assert_allclose(resumed.predictions["score"], full.predictions["score"], rtol=1e-4, atol=1e-6)


def test_score_paths_matches_the_scoring_module(noise_db):
    csv_path, df = noise_db
    model = create_model("tiny").eval()
    from rankiqa.imageio import read_rgb

    ours = score_paths(model, df["path"].head(3).tolist(), patches=5, patch_size=32, seed=7)
    theirs = [score_image(model, read_rgb(p), patches=5, patch_size=32, seed=7)[0] for p in df["path"].head(3)]
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)


def test_config_validation():
    with pytest.raises(ValueError, match="loss"):
        FinetuneConfig(loss="huber")
    with pytest.raises(ValueError, match="val_fraction"):
        FinetuneConfig(val_fraction=1.0)


def test_cli_finetune_from_a_checkpoint(noise_db, tmp_path):
    csv_path, _ = noise_db
    model = create_model("tiny")
    save_checkpoint(tmp_path / "init.pt", {"model_config": model.config, "model_state": model.state_dict()})
    result = CliRunner().invoke(cli, [
        "finetune", "--database", "csv", "--root", str(csv_path), "--init", str(tmp_path / "init.pt"),
        "--out", str(tmp_path / "run"), "--split", "1", "--loss", "l1", "--epochs", "2", "--batch-size", "8",
        "--patch-size", "32", "--patches", "3", "--workers", "0", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "| ALL |" in result.output
    settings = json.loads((tmp_path / "run" / "config.json").read_text())
    assert settings["finetune"]["loss"] == "l1" and settings["init"] == str(tmp_path / "init.pt")
    expected_test = make_splits(load_database("csv", csv_path), n=2, seed=0)[1].test
    assert len(pd.read_csv(tmp_path / "run" / "test_predictions.csv")) == len(expected_test)


def test_bad_training_images_are_skipped_and_reported_once_even_in_workers(tmp_path, capfd):
    csv_path = build_noise_database(tmp_path / "db", n_references=6)
    df = load_database("csv", csv_path)
    split = make_splits(df, n=1, seed=0)[0]
    train, test = df.iloc[split.train], df.iloc[split.test]
    garbage, truncated = train["path"].iloc[0], train["path"].iloc[6]
    Path(garbage).write_bytes(b"not an image")
    data = Path(truncated).read_bytes()
    Path(truncated).write_bytes(data[: len(data) // 2])  # the header still reads; the pixels do not
    config = FinetuneConfig(epochs=2, lr=1e-3, val_fraction=0, **{**FAST, "workers": 1})
    result = finetune(train, test, "tiny", tmp_path / "run", config)
    err = capfd.readouterr().err
    assert f"skipped {garbage}: not a readable image (UnidentifiedImageError)" in err
    assert err.count(f"skipped {truncated}: truncated or corrupt image") == 1
    assert "Traceback" not in err
    assert json.loads((tmp_path / "run" / "config.json").read_text())["n_train_images"] == len(train) - 1
    assert len(pd.read_csv(tmp_path / "run" / "history.csv")) == 2
    assert result.metrics["n_missing"] == 0


def test_linear_probe_head_init_puts_held_out_predictions_on_the_training_mos_scale(noise_db, tmp_path):
    _, df = noise_db
    split = make_splits(df, n=1, seed=4)[0]
    train, test = df.iloc[split.train], df.iloc[split.test]
    rank_like = create_model("tiny")
    with torch.no_grad():  # a rank model: raw scores of a few units, far from normalised MOS in [0, 1]
        rank_like.head.weight.mul_(100)
        rank_like.head.bias.fill_(-3.0)
    save_checkpoint(tmp_path / "rank.pt", {"model_config": rank_like.config, "model_state": rank_like.state_dict()})
    low, high = train["mos"].min(), train["mos"].max()
    margin = 0.2 * (high - low)

    def within(predictions):
        return predictions["pred"].between(low - margin, high + margin).all()

    settings = dict(epochs=2, lr=1e-4, val_fraction=0, **FAST)
    plain = finetune(train, test, str(tmp_path / "rank.pt"), tmp_path / "plain", FinetuneConfig(head_init="none", **settings))
    assert not within(plain.predictions)  # the failure this guards against: the rank scale leaks through
    probed = finetune(train, test, str(tmp_path / "rank.pt"), tmp_path / "probed", FinetuneConfig(**settings))
    assert within(probed.predictions)
    assert probed.metrics["subsets"]["ALL"]["RMSE"] < df["mos"].std()
    head = json.loads((tmp_path / "probed" / "head_init.json").read_text())
    assert head["n_images"] == len(train) and head["alpha"] > 0


def test_head_init_makes_the_scoring_protocol_predict_the_probe(noise_db):
    from rankiqa.finetune import init_head

    _, df = noise_db
    frame = df.iloc[:24]
    targets = (frame["mos"].to_numpy() - frame["mos"].min()) / np.ptp(frame["mos"].to_numpy())
    model = create_model("tiny")
    config = FinetuneConfig(**FAST)
    fitted = init_head(model, frame, targets, config, "cpu")
    scores = score_paths(model, frame["path"].tolist(), config.eval_patches, config.patch_size, config.seed)
    rmse = float(np.sqrt(np.mean((scores - targets) ** 2)))
    assert rmse == pytest.approx(fitted["train_rmse_normalised"], rel=1e-4, abs=1e-6)
    assert rmse < targets.std()


def test_workers_are_sized_to_the_machine_and_torch_warns_once(monkeypatch):
    import warnings

    import rankiqa.devices as devices
    from rankiqa.finetune import _quiet_epochs

    for cpus, expected in ((1, 0), (2, 1), (3, 2), (16, 4)):
        monkeypatch.setattr(devices, "available_cpus", lambda cpus=cpus: cpus)
        assert devices.default_workers() == expected
        assert FinetuneConfig().workers == expected
    monkeypatch.setattr(devices, "available_cpus", lambda: 2)
    reports = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in _quiet_epochs(range(3), 6, reports.append):
            torch.utils.data.DataLoader(list(range(4)), num_workers=99)  # torch warns here without the filter
    assert not [w for w in caught if "DataLoader will create" in str(w.message)]
    assert len(reports) == 1 and "--workers 6" in reports[0]


@pytest.mark.parametrize("change, message", [
    (lambda p: p.pop("optimizer_state"), "missing 'optimizer_state'"),
    (lambda p: p.update(epoch="1"), "'epoch' is a str, expected int"),
    (lambda p: p.update(best_state=[1]), "'best_state' is a list, expected dict"),
    (lambda p: p.update(model_state={"x": torch.zeros(1)}), "saved state does not fit"),
])
def test_a_fine_tuning_last_pt_of_the_wrong_shape_is_a_user_error(noise_db, tmp_path, change, message):
    _, df = noise_db
    split = make_splits(df, n=1, seed=2)[0]
    model = create_model("tiny")
    payload = {"model_config": dict(model.config), "model_state": model.state_dict(),
               "optimizer_state": torch.optim.Adam(model.parameters()).state_dict(), "epoch": 0, "best_srcc": 0.5,
               "best_state": model.state_dict(), "history": []}
    change(payload)
    (tmp_path / "run").mkdir()
    torch.save(payload, tmp_path / "run" / "last.pt")
    with pytest.raises(UserError, match=rf"run/last.pt: .*{message}"):
        finetune(df.iloc[split.train], df.iloc[split.test], "tiny", tmp_path / "run",
                 FinetuneConfig(epochs=2, lr=1e-3, **FAST))
