"""The bad-input corpus (issue 11): hostile files, built at test time, against every entry point.

Oracle for every case and surface (`score`, `generate`, `benchmark --database csv`,
`train --pristine`, the Python API): exit code 0 or 2; no traceback; the good images given with the
bad one are still used; every bad input is reported exactly once with a reason (or, when it is only
odd, converted and used); JSON and CSV outputs always parse. Cases still wrong on this branch are
``xfail(strict=True)`` with the defect that fixes them elsewhere, so they flip loudly once fixed.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from _shared import photo
from bad_inputs import CHECKPOINT_CASES, CSV_CASES, I11, IMAGE_CASES, LOW_16BIT, PATCH, SCORED, _pgm16
from rankiqa.cli import main
from rankiqa.errors import UserError

SCORING = ["--patches", "2", "--patch-size", str(PATCH)]


def run_cli(args: list[str]) -> tuple[int, str, str]:
    """Run ``rankiqa ARGS`` in this process; (exit code, stdout, stderr). Checks the first two oracles:
    exit code 0 or 2, and no traceback (an unexpected exception propagates and fails the test)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            main(args)
            code = 0
        except SystemExit as exc:
            code = exc.code
    # a Python warning reaches the terminal as a line on stderr too (its text after "file:line: Category: ")
    stdout, stderr = out.getvalue(), err.getvalue() + "".join(f"{warning.message}\n" for warning in caught)
    assert code in (0, 2), f"exit code {code}\n{stdout}\n{stderr}"
    assert "Traceback" not in stdout + stderr
    return code, stdout, stderr


def reports(stderr: str, path: Path | str) -> list[str]:
    """The stderr lines that report ``path`` as skipped."""
    return [line for line in stderr.splitlines() if line.startswith("skipped ") and str(path) in line]


def cases(surface: str, selected=IMAGE_CASES):
    """IMAGE_CASES as pytest params, xfail(strict) where ``surface`` is still wrong on this branch."""
    return [pytest.param(case, id=case.id, marks=[pytest.mark.xfail(strict=True, reason=case.xfail[surface])]
                         if surface in case.xfail else []) for case in selected]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """One folder holding every IMAGE_CASES file, plus good1.png and good2.png."""
    folder = tmp_path_factory.mktemp("corpus")
    for case in IMAGE_CASES:
        case.build(folder / case.name)
    for seed in (1, 2):
        Image.fromarray(photo(seed + 20)).save(folder / f"good{seed}.png")
    return folder


def _check_skip_or_scored(case, path: Path, scored_paths: list[str], stderr: str) -> None:
    skips = reports(stderr, path)
    if str(path) in scored_paths:
        assert re.search(case.expect, SCORED), f"{case.id} was scored, expected a skip matching {case.expect!r}"
        assert not skips
    else:
        assert len(skips) == 1, f"{case.id}: expected one report, got {skips}"
        reason = skips[0].split(f"{path}: ", 1)[-1]
        assert re.search(case.expect, reason), f"{case.id}: reason {reason!r} does not match {case.expect!r}"


# --------------------------------------------------------------------------------------------
# score


@pytest.mark.parametrize("case", cases("score"))
def test_score_cli_json_and_csv(case, corpus, tiny_checkpoint):
    bad, goods = corpus / case.name, [corpus / "good1.png", corpus / "good2.png"]
    base = ["score", str(goods[0]), str(bad), str(goods[1]), "--weights", str(tiny_checkpoint), *SCORING]
    code, out, err = run_cli([*base, "--format", "json"])
    assert code == 0
    rows = json.loads(out, parse_constant=lambda name: pytest.fail(f"invalid JSON constant {name}"))
    scored = [row["path"] for row in rows]
    assert str(goods[0]) in scored and str(goods[1]) in scored
    assert all(np.isfinite(row["score"]) for row in rows)
    _check_skip_or_scored(case, bad, scored, err)

    code, out, err = run_cli([*base, "--format", "csv"])
    table = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [row["path"] for row in table] == scored
    assert [float(row["score"]) for row in table] == pytest.approx([row["score"] for row in rows], abs=1e-6)


@pytest.mark.parametrize("case", cases("score_folder"))
def test_score_folder_scan_reports_every_bad_file(case, corpus, tiny_checkpoint, folder_scan):
    code, rows, err = folder_scan
    if case.name == "folder.jpg":  # a folder among the inputs' children is not an input
        assert not reports(err, corpus / case.name)
        return
    _check_skip_or_scored(case, corpus / case.name, [row["path"] for row in rows], err)


@pytest.fixture(scope="module")
def folder_scan(corpus, tiny_checkpoint, tmp_path_factory):
    output = tmp_path_factory.mktemp("scan") / "scores.json"
    code, _, err = run_cli(["score", str(corpus), "--weights", str(tiny_checkpoint), *SCORING, "--format", "json",
                            "--output", str(output)])
    rows = json.loads(output.read_text())
    assert code == 0 and {str(corpus / "good1.png"), str(corpus / "good2.png")} <= {row["path"] for row in rows}
    return code, rows, err


# --------------------------------------------------------------------------------------------
# Python API


@pytest.mark.parametrize("case", cases("api"))
def test_python_api(case, corpus, tiny_checkpoint):
    import rankiqa

    scorer = rankiqa.load_model(tiny_checkpoint, patches=2, patch_size=PATCH)
    bad = corpus / case.name
    results = list(scorer.score_many([corpus / "good1.png", bad, corpus / "good2.png"]))
    assert results[0].error is None and results[2].error is None
    if results[1].error is None:
        assert re.search(case.expect, SCORED) and np.isfinite(results[1].score)
        assert scorer.score(bad) == pytest.approx(results[1].score)
    else:
        assert re.search(case.expect, results[1].error) and "\n" not in results[1].error
        with pytest.raises(UserError, match=re.escape(str(bad))):
            scorer.score(bad)
        with pytest.raises(UserError, match=r"item 1 \("):
            scorer.score([corpus / "good1.png", bad])


def test_16_bit_pgm_decodes_like_the_same_16_bit_png(tmp_path):
    from rankiqa.score import read_for_scoring

    (tmp_path / "low.pgm").write_bytes(_pgm16(LOW_16BIT))
    Image.fromarray(LOW_16BIT).save(tmp_path / "low.png")
    np.testing.assert_array_equal(read_for_scoring(tmp_path / "low.pgm"), read_for_scoring(tmp_path / "low.png"))


def test_float_tiff_decodes_by_its_range_or_is_a_clear_skip(corpus):
    from rankiqa.imageio import UnusableImage
    from rankiqa.score import read_for_scoring

    expected = photo(8)[:, :, 0]
    try:
        decoded = read_for_scoring(corpus / "float.tif")
    except UnusableImage as exc:
        assert "float" in exc.reason
        return
    assert np.abs(decoded[:, :, 0].astype(int) - expected).max() <= 1


def test_exif_orientation_is_applied_when_scoring_a_path(corpus):
    from rankiqa.score import read_for_scoring

    assert read_for_scoring(corpus / "rotated.jpg").shape == (96, 64, 3)  # stored 64 high x 96 wide


def test_exif_orientation_is_applied_when_scoring_a_pil_image(corpus, tiny_checkpoint):
    import rankiqa

    scorer = rankiqa.load_model(tiny_checkpoint, patches=2, patch_size=PATCH)
    with Image.open(corpus / "rotated.jpg") as image:
        assert scorer.score(image) == pytest.approx(scorer.score(corpus / "rotated.jpg"))


# --------------------------------------------------------------------------------------------
# generate: one good photo and one bad file per SRC folder


@pytest.mark.parametrize("case", cases("generate"))
def test_generate(case, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(photo(30)).save(src / "good.png")
    case.build(src / case.name)
    code, _, err = run_cli(["generate", str(src), str(tmp_path / "out"), "--distortions", "gaussian_blur", "--quiet"])
    assert code == 0, err
    manifest = pd.read_csv(tmp_path / "out" / "manifest.csv")
    skipped = pd.read_csv(tmp_path / "out" / "skipped.csv")
    assert "good.png" in set(manifest["reference"])
    used, left_out = case.name in set(manifest["reference"]), list(skipped["path"]).count(case.name)
    if case.name == "folder.jpg":  # a sub-folder of SRC is scanned, not an input itself
        assert left_out == 0 and not used
        return
    assert used + left_out == 1, f"{case.id}: used={used}, listed in skipped.csv {left_out} time(s)"
    if left_out:
        reason = skipped.loc[skipped["path"] == case.name, "reason"].item()
        assert re.search(case.expect + "|too small", reason), reason
    else:
        assert re.search(case.expect, SCORED)


# --------------------------------------------------------------------------------------------
# train --pristine on the whole corpus


def test_train_pristine_on_the_corpus(corpus, tmp_path):
    # one epoch draws every usable photo once, so a file that only fails when decoded is reported too
    code, out, err = run_cli(["train", "--pristine", str(corpus), "--backbone", "tiny", "--patch", "32", "--epochs", "1",
                              "--batch-sets", "2", "--val-fraction", "0", "--distortions", "gaussian_blur",
                              "--out", str(tmp_path / "run"), "--quiet"])
    assert code == 0 and "done:" in out, err
    for case in IMAGE_CASES:
        if case.name == "folder.jpg":  # a sub-folder is scanned, not an input
            continue
        found = reports(err, corpus / case.name)
        if re.search(case.expect, SCORED) and not found:
            continue  # used for training
        assert len(found) == 1, f"{case.id} reported {len(found)} times:\n{err}"
        assert found[0].split(f"{corpus / case.name}: ", 1)[1].strip(), found[0]  # with a reason
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    assert rows and all(np.isfinite(float(row["loss"])) for row in rows)


# --------------------------------------------------------------------------------------------
# benchmark --database csv: the corpus images listed with MOS next to good ones


@pytest.fixture(scope="module")
def benchmark_run(corpus, tiny_checkpoint, tmp_path_factory):
    work = tmp_path_factory.mktemp("bench")
    goods = []
    for seed in range(6):
        Image.fromarray(photo(40 + seed)).save(work / f"ok{seed}.png")
        goods.append((str(work / f"ok{seed}.png"), float(seed)))
    listed = [case for case in IMAGE_CASES if case.exists and case.name != "folder.jpg"]
    rows = goods + [(str(corpus / case.name), 2.5) for case in listed]
    pd.DataFrame(rows, columns=["path", "mos"]).to_csv(work / "db.csv", index=False)
    code, out, err = run_cli(["benchmark", "--database", "csv", "--root", str(work / "db.csv"), "--weights",
                              str(tiny_checkpoint), *SCORING, "--device", "cpu", "--out", str(work / "out"),
                              "--cache", str(work / "cache")])
    predictions = pd.read_csv(work / "out" / "predictions.csv")
    pd.read_csv(work / "out" / "table.csv")
    # skipped images are summarised once per run in warnings.txt (issue 15), not printed mid-table
    warnings = (work / "out" / "warnings.txt").read_text(encoding="utf-8")
    return code, out, warnings, predictions


@pytest.mark.parametrize("case", cases("benchmark", [c for c in IMAGE_CASES if c.exists and c.name != "folder.jpg"]))
def test_benchmark_csv_database(case, corpus, benchmark_run):
    code, out, warnings, predictions = benchmark_run
    assert code == 0 and "| ALL |" in out
    good = predictions[predictions["path"].str.contains("/ok")]
    assert len(good) == 6 and np.isfinite(good["pred"]).all()
    row = predictions[predictions["path"] == str(corpus / case.name)]
    assert len(row) == 1
    scored = [str(corpus / case.name)] if np.isfinite(row["pred"].item()) else []
    _check_skip_or_scored(case, corpus / case.name, scored, warnings)


@pytest.mark.parametrize("case", CSV_CASES, ids=[case.id for case in CSV_CASES])
def test_benchmark_refuses_a_bad_csv_database_with_one_line(case, tmp_path, tiny_checkpoint):
    for name in ("a.png", "b.png"):
        Image.fromarray(photo(len(name))).save(tmp_path / name)
    (tmp_path / "db.csv").write_text(case.text)
    code, out, err = run_cli(["benchmark", "--database", "csv", "--root", str(tmp_path / "db.csv"), "--weights",
                              str(tiny_checkpoint), *SCORING, "--out", str(tmp_path / "out")])
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and re.search(case.expect, err), err
    assert "db.csv" in err


# --------------------------------------------------------------------------------------------
# files that are not checkpoints, or checkpoints of the wrong shape, wherever a checkpoint is read


CHECKPOINT_COMMANDS = {
    "score": lambda ckpt, tmp: ["score", str(tmp / "a.png"), "--weights", str(ckpt)],
    "score_model": lambda ckpt, tmp: ["score", str(tmp / "a.png"), "--model", str(ckpt)],
    "export": lambda ckpt, tmp: ["export", "--weights", str(ckpt), "--format", "weights", "--out", str(tmp / "o.pt")],
    "export_onnx": lambda ckpt, tmp: ["export", "--weights", str(ckpt), "--format", "onnx", "--out", str(tmp / "o.onnx")],
    "benchmark": lambda ckpt, tmp: ["benchmark", "--database", "csv", "--root", str(tmp / "db.csv"), "--weights",
                                    str(ckpt), *SCORING, "--out", str(tmp / "bench")],
    "finetune": lambda ckpt, tmp: ["finetune", "--database", "csv", "--root", str(tmp / "db.csv"), "--init", str(ckpt),
                                   "--out", str(tmp / "ft"), "--epochs", "1", "--workers", "0", *SCORING],
}


def _run_with_checkpoint(case, command: str, tmp_path: Path) -> tuple[Path, str]:
    """Run ``command`` with ``case``'s file as its checkpoint; (checkpoint path, the one Error line)."""
    rows = []
    for index in range(6):
        Image.fromarray(photo(index)).save(tmp_path / f"r{index}.png")
        rows.append(f"r{index}.png,{index},ref{index // 2}")
    (tmp_path / "db.csv").write_text("path,mos,reference\n" + "\n".join(rows) + "\n")
    Image.fromarray(photo(0)).save(tmp_path / "a.png")
    checkpoint = tmp_path / "weights.pt"
    case.build(checkpoint)
    code, out, err = run_cli(CHECKPOINT_COMMANDS[command](checkpoint, tmp_path))
    assert code == 2 and out == "", out
    errors = [line for line in err.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and str(checkpoint) in errors[0], err
    assert not checkpoint.with_suffix(".ran").exists()  # the malicious pickle never ran
    assert not (tmp_path / "o.pt").exists() and not (tmp_path / "o.onnx").exists()
    return checkpoint, errors[0]


@pytest.mark.parametrize("command", sorted(CHECKPOINT_COMMANDS))
@pytest.mark.parametrize("case", [pytest.param(case, id=case.id, marks=[pytest.mark.xfail(strict=True, reason=case.xfail)]
                                               if case.xfail else []) for case in CHECKPOINT_CASES])
def test_a_bad_checkpoint_is_one_line_everywhere(case, command, tmp_path):
    _, error = _run_with_checkpoint(case, command, tmp_path)
    assert re.search(case.expect, error), error


@pytest.mark.parametrize("command", sorted(CHECKPOINT_COMMANDS))
def test_a_malicious_pickle_never_runs_and_is_one_line(command, tmp_path):
    case = next(case for case in CHECKPOINT_CASES if case.id == "malicious_pickle")
    _run_with_checkpoint(case, command, tmp_path)  # asserts one Error line and that the payload never ran
