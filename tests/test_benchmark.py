"""`rankiqa benchmark` end to end with the tiny model: zero-shot (cached), fine-tuned, cross-database."""
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from _shared import require_shared
from iqa_fixtures import build_noise_database, build_tid2013, png_writer
from rankiqa import metrics
from rankiqa.benchmark import run_benchmark
from rankiqa.cli import cli, main
from rankiqa.data.splits import content_groups
from rankiqa.models import create_model

SCORING = ["--patches", "3", "--patch-size", "32", "--workers", "0", "--device", "cpu"]


@pytest.fixture(scope="module")
def tid_root(tmp_path_factory):
    """TID2013 (real label file, real layout) restricted to 6 references x 3 types: 90 tiny images."""
    labels = require_shared("labels")
    root = tmp_path_factory.mktemp("tid2013")
    build_tid2013(labels, root, png_writer(40), keep=lambda ref, kind: ref <= 6 and kind in (1, 8, 10))
    return root


def test_zero_shot_table_matches_scipy_and_is_cached(tid_root, tmp_path, monkeypatch):
    out, cache = tmp_path / "out", tmp_path / "cache"
    result = CliRunner().invoke(cli, ["benchmark", "--database", "tid2013", "--root", str(tid_root), "--model", "tiny",
                                      "--out", str(out), "--cache", str(cache), *SCORING])
    assert result.exit_code == 0, result.output
    assert "| ALL | 90 |" in result.output
    for distortion in ("white_noise", "gaussian_blur", "jpeg"):
        assert f"| {distortion} | 30 |" in result.output
    for name in ("table.md", "table.csv", "per_split.csv", "predictions.csv", "scatter.png"):
        assert (out / name).is_file()
    predictions = pd.read_csv(out / "predictions.csv")
    table = pd.read_csv(out / "table.csv").set_index("subset")
    assert table.loc["ALL", "SRCC_median"] == pytest.approx(
        metrics.srcc(predictions["pred"], predictions["mos"]), abs=1e-12)
    jpeg = predictions[predictions["distortion"] == "jpeg"]
    assert table.loc["jpeg", "KRCC_median"] == pytest.approx(metrics.krcc(jpeg["pred"], jpeg["mos"]), abs=1e-12)
    assert len(list(cache.glob("*.csv"))) == 1

    import rankiqa.benchmark

    def no_rescoring(*args, **kwargs):
        raise AssertionError("cached predictions were rescored")

    monkeypatch.setattr(rankiqa.benchmark, "score_paths", no_rescoring)
    again = run_benchmark([("tid2013", tid_root)], "tiny", tmp_path / "again", patches=3, patch_size=32,
                          cache_dir=cache)
    np.testing.assert_allclose(again.predictions["pred"], predictions["pred"])


def test_finetuned_splits_are_content_disjoint_with_median_mean_std(tid_root, tiny_checkpoint, tmp_path):
    out = tmp_path / "out"
    args = ["benchmark", "--database", "tid2013", "--root", str(tid_root), "--weights", str(tiny_checkpoint),
            "--finetune", "--splits", "2", "--epochs", "2", "--batch-size", "16", "--out", str(out), *SCORING]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "2 split(s)" in result.output and "±" in result.output
    per_split = pd.read_csv(out / "per_split.csv")
    assert sorted(per_split["split"].unique()) == [0, 1]
    table = pd.read_csv(out / "table.csv").set_index("subset")
    srcc = per_split[per_split["subset"] == "ALL"]["SRCC"].to_numpy()
    assert table.loc["ALL", "SRCC_mean"] == pytest.approx(srcc.mean())
    assert table.loc["ALL", "SRCC_std"] == pytest.approx(srcc.std())
    predictions = pd.read_csv(out / "predictions.csv", keep_default_na=False)
    assert all(len(part) == 30 for _, part in predictions.groupby("split"))  # 2 of 6 references held out
    runs = sorted((out / "runs").iterdir())
    assert len(runs) == 2
    for run in runs:
        config = pd.read_json(run / "config.json", typ="series")
        assert config["n_train_images"] + config["n_test_images"] == 90
    held_out = [set(content_groups(predictions[predictions["split"] == split])) for split in (0, 1)]
    assert all(len(refs) == 2 for refs in held_out) and held_out[0] != held_out[1]  # different random splits
    finished = [(run / "metrics.json").stat().st_mtime_ns for run in runs]
    rerun = CliRunner().invoke(cli, args)  # finished runs are reused, not trained again
    assert rerun.exit_code == 0
    assert [(run / "metrics.json").stat().st_mtime_ns for run in runs] == finished


def test_csiq_samples_as_csv_database_and_cross_database(tid_root, tiny_checkpoint, tmp_path, shared_data):
    samples = shared_data / "samples" / "csiq"
    listed = pd.read_csv(shared_data / "labels" / "lists" / "CSIQ.txt")
    listed = listed[listed["dis_img_path"].str.contains("/1600\\.")]
    rows = [{"path": str(samples / name), "dmos": score, "reference": "1600.png", "distortion": kind}
            for name, score, kind in zip(listed["dis_img_path"].str.split("/").str[-1], listed["score"], listed["dis_type"])
            if (samples / name).exists()]
    assert len(rows) == 10
    csv_path = tmp_path / "csiq_samples.csv"
    pd.DataFrame(rows).to_csv(csv_path, index=False)
    result = CliRunner().invoke(cli, ["benchmark", "--database", "csv", "--root", str(csv_path), "--weights",
                                      str(tiny_checkpoint), "--out", str(tmp_path / "zero"),
                                      "--cache", str(tmp_path / "cache"), *SCORING])
    assert result.exit_code == 0, result.output
    assert "| ALL | 10 |" in result.output and "| AWGN | 5 |" in result.output
    cross = CliRunner().invoke(cli, ["benchmark", "--database", "tid2013", "--root", str(tid_root),
                                     "--database", "csv", "--root", str(csv_path), "--weights", str(tiny_checkpoint),
                                     "--finetune", "--epochs", "1", "--out", str(tmp_path / "cross"), *SCORING])
    assert cross.exit_code == 0, cross.output
    assert "tid2013 -> csv" in cross.output and "| ALL | 10 |" in cross.output


@pytest.mark.parametrize("args, message", [
    (["--model", "tiny", "--weights", "x.pt"], "exactly one of --weights"),
    (["--model", "tiny", "--database", "csv", "--root", "b.csv"], "add --finetune"),
    (["--model", "tiny", "--database", "csv"], "one --root per --database"),
])
def test_user_errors_are_one_line(args, message, tmp_path, capsys):
    csv_path = build_noise_database(tmp_path / "db", n_references=2, levels=3)
    with pytest.raises(SystemExit) as exc:
        main(["benchmark", "--database", "csv", "--root", str(csv_path), *args, "--out", str(tmp_path / "o")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_prediction_cache_keys_on_file_stamp_and_never_keeps_failures(tmp_path, monkeypatch):
    import os

    from PIL import Image

    import rankiqa.benchmark
    from rankiqa.benchmark import cached_scores

    rng = np.random.default_rng(0)
    paths = [str(tmp_path / f"img{i}.png") for i in range(3)]
    for path in paths:
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(path)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not yet an image")
    frame = pd.DataFrame({"path": [*paths, str(broken)]})
    cache, module = tmp_path / "cache" / "scores.csv", create_model("tiny").eval()
    with pytest.warns(RuntimeWarning, match="skipped .*broken.png"):
        first = cached_scores(module, frame, cache, 3, 32, 0)
    assert np.isnan(first[3]) and np.isfinite(first[:3]).all()
    assert len(pd.read_csv(cache)) == 3  # the failure is not cached

    Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(broken)
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(paths[0])
    os.utime(paths[0], ns=(1, 1))  # an edited file: same path, new size/mtime stamp
    rescored: list[str] = []

    def recording(module, chunk, *args, **kwargs):
        rescored.extend(chunk)
        return original(module, chunk, *args, **kwargs)

    original = rankiqa.benchmark.score_paths
    monkeypatch.setattr(rankiqa.benchmark, "score_paths", recording)
    second = cached_scores(module, frame, cache, 3, 32, 0)
    assert sorted(rescored) == sorted([paths[0], str(broken)])
    np.testing.assert_array_equal(second[1:3], first[1:3])
    assert np.isfinite(second).all() and second[0] != first[0]
    assert len(pd.read_csv(cache)) == 4  # one entry per file: the edited file's entry was replaced


def test_zero_shot_with_nothing_scorable_fails_with_one_line(tmp_path, capsys):
    for name in ("a.png", "b.png"):
        (tmp_path / name).write_bytes(b"not an image")
    (tmp_path / "db.csv").write_text("path,mos\na.png,1\nb.png,2\n")
    with pytest.raises(SystemExit) as exc:
        main(["benchmark", "--database", "csv", "--root", str(tmp_path / "db.csv"), "--model", "tiny", *SCORING[:4],
              "--out", str(tmp_path / "o"), "--cache", str(tmp_path / "cache")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == "Error: csv: none of the 2 test image(s) could be scored (reasons above); " \
                                           "nothing to evaluate"
    assert not (tmp_path / "o" / "table.md").exists()
