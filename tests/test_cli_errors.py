"""User mistakes in `score`, `export`, `finetune` and `demo` are one `Error: ...` line (exit code 2)
naming the file and the reason; `RANKIQA_DEBUG=1` shows the traceback instead."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from iqa_fixtures import build_noise_database
from rankiqa.cli import main
from rankiqa.errors import UserError


@pytest.fixture
def files(tmp_path):
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    (tmp_path / "a_file").write_text("a file, not a folder")
    return tmp_path


def _cases(t):
    """(arguments, words the one line must contain) per command; ``t`` is the files folder."""
    missing, junk = str(t / "missing.pt"), str(t / "junk.pt")
    noise = str(t / "noise" / "scores.csv")
    return {
        "score missing weights": (["score", str(t / "a.png"), "--weights", missing], [missing, "checkpoint not found"]),
        "score corrupt weights": (["score", str(t / "a.png"), "--weights", junk], [junk, "not a PyTorch checkpoint"]),
        "score unknown model": (["score", str(t / "a.png"), "--model", "resnet51"], ["'resnet51'", "not a backbone"]),
        "score nothing scorable": (["score", str(t / "missing.png"), "--model", "tiny", "--patch-size", "32"],
                                   ["no image could be scored"]),
        "export missing weights": (["export", "--weights", missing, "--format", "onnx", "--out", str(t / "m.onnx")],
                                   [missing, "checkpoint not found"]),
        "export unwritable out": (["export", "--model", "tiny", "--format", "weights", "--out", str(t / "a_file" / "w.pt")],
                                  [str(t / "a_file"), "File exists"]),
        "finetune missing database": (["finetune", "--database", "csv", "--root", str(t / "none.csv"), "--init", "tiny",
                                       "--out", str(t / "run")], ["csv:", str(t / "none.csv"), "not found"]),
        "finetune missing init": (["finetune", "--database", "csv", "--root", noise, "--init", missing, "--out",
                                   str(t / "run"), "--epochs", "1", "--workers", "0", "--patch-size", "32", "--device", "cpu"],
                                  [missing, "checkpoint not found"]),
        "demo missing weights": (["demo", "--weights", missing, "--out", str(t / "demo")], [missing, "checkpoint not found"]),
        "demo corrupt weights": (["demo", "--weights", junk, "--out", str(t / "demo")], [junk, "not a PyTorch checkpoint"]),
    }


CASE_NAMES = sorted(_cases(Path("/x")))


@pytest.mark.parametrize("case", CASE_NAMES)
def test_user_mistakes_are_one_line_with_exit_code_2(case, files, capsys, monkeypatch):
    monkeypatch.delenv("RANKIQA_DEBUG", raising=False)
    build_noise_database(files / "noise", n_references=4, levels=2)
    args, words = _cases(files)[case]
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    last = err.splitlines()[-1]
    assert last.startswith("Error: ") and "Traceback" not in err
    # the error is one line (progress or "skipped" notes may precede it, on their own lines)
    assert all(not line.startswith((" ", "\t")) for line in err.splitlines())
    for word in words:
        assert word in last, (word, err)


def test_rankiqa_debug_keeps_the_traceback(files, monkeypatch):
    monkeypatch.setenv("RANKIQA_DEBUG", "1")
    with pytest.raises(UserError, match="checkpoint not found"):
        main(["score", str(files / "a.png"), "--weights", str(files / "missing.pt")])
    env = {**os.environ, "RANKIQA_DEBUG": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "rankiqa", "score", str(files / "a.png"), "--weights", str(files / "missing.pt")]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1
    assert "Traceback (most recent call last)" in done.stderr
    assert done.stderr.strip().splitlines()[-1] == f"rankiqa.errors.UserError: {files / 'missing.pt'}: checkpoint not found"
    env.pop("RANKIQA_DEBUG")
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2
    assert done.stderr == f"Error: {files / 'missing.pt'}: checkpoint not found\n"


def test_a_bug_keeps_its_traceback(files, monkeypatch):
    """Anything outside the user-error family is a bug: it propagates (traceback) without RANKIQA_DEBUG."""
    monkeypatch.delenv("RANKIQA_DEBUG", raising=False)

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr("rankiqa.score.report_scores", broken)
    with pytest.raises(ZeroDivisionError, match="a bug"):
        main(["score", str(files / "a.png"), "--model", "tiny", "--patch-size", "32"])


def test_keyboard_interrupt_is_exit_130(files, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("rankiqa.score.report_scores", interrupted)
    with pytest.raises(SystemExit) as exc:
        main(["score", str(files / "a.png"), "--model", "tiny", "--patch-size", "32"])
    assert exc.value.code == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == "Aborted."
