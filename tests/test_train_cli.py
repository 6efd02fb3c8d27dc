"""``rankiqa train`` end to end on the bundled photos: kill -9 + --resume, torchrun DDP, one-line errors."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rankiqa.checkpoint import load_checkpoint
from rankiqa.cli import main

PHOTOS = Path(__file__).resolve().parents[1] / "rankiqa" / "assets" / "images"
FAST = ["--pristine", str(PHOTOS), "--backbone", "tiny", "--distortions", "gaussian_blur,white_noise",
        "--patch", "48", "--lr", "0.003", "--val-fraction", "0.34", "--threads", "1", "--quiet"]


def _run_cli(args: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*args])
        raise SystemExit(0)
    assert exc.value.code in (0, None)


def _assert_same_weights(path_a: Path, path_b: Path) -> None:
    state_a, state_b = load_checkpoint(path_a)["model_state"], load_checkpoint(path_b)["model_state"]
    assert state_a.keys() == state_b.keys()
    for key in state_a:
        assert torch.equal(state_a[key], state_b[key]), key


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def test_resume_after_kill_9_matches_uninterrupted_run(tmp_path, killing_launcher):
    steps = ["--steps", "40", "--val-every", "5", "--batch-sets", "3"]
    _run_cli(["train", *FAST, *steps, "--out", str(tmp_path / "whole")])
    killed = tmp_path / "killed"
    # the launcher's callback makes the child SIGKILL itself right after step 17 (no chance to clean up)
    process = subprocess.run([*killing_launcher, "train-step", "17", "train", *FAST, *steps, "--out", str(killed)], env=_env(), capture_output=True, text=True, timeout=120)
    assert process.returncode == -signal.SIGKILL, process.stderr[-2000:]
    assert load_checkpoint(killed / "last.pt")["step"] == 15  # steps 16-17 were lost with the process
    _run_cli(["train", *FAST, *steps, "--out", str(killed), "--resume"])
    assert load_checkpoint(killed / "last.pt")["step"] == 40
    _assert_same_weights(tmp_path / "whole" / "last.pt", killed / "last.pt")
    assert (tmp_path / "whole" / "val_per_type.csv").read_text() == (killed / "val_per_type.csv").read_text()


@pytest.mark.slow
def test_torchrun_two_cpu_processes_equal_one_process_with_the_same_global_batch(tmp_path):
    steps = ["--steps", "1", "--val-every", "1"]
    _run_cli(["train", *FAST, *steps, "--batch-sets", "4", "--out", str(tmp_path / "single")])
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "rankiqa", "train",
         *FAST, *steps, "--batch-sets", "2", "--out", str(tmp_path / "ddp")],
        env=_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    payload = load_checkpoint(tmp_path / "ddp" / "last.pt")
    assert payload["step"] == 1
    assert '"world_size": 2' in (tmp_path / "ddp" / "config.json").read_text()
    # Adam's first step moves every weight by ~lr * sign(gradient). Only components whose exact
    # gradient is 0 (e.g. the head bias: ranking losses see score differences) follow the sign of
    # float reduction noise, so require almost every weight to agree; wrong data sharding or
    # unsynchronised gradients flip the sign of many. (One step only: from the second on, the flipped
    # components change activations at zero-padded borders and the runs drift apart chaotically.)
    single = _flat_weights(tmp_path / "single" / "last.pt")
    ddp = _flat_weights(tmp_path / "ddp" / "last.pt")
    agreeing = ((single - ddp).abs() <= 1e-5).float().mean().item()
    assert agreeing > 0.98, agreeing


def _flat_weights(path: Path) -> torch.Tensor:
    return torch.cat([value.flatten().double() for value in load_checkpoint(path)["model_state"].values()])


@pytest.mark.parametrize("args, message", [
    (["--pristine", str(PHOTOS), "--backbone", "resnet19"], "unknown backbone 'resnet19' (did you mean 'resnet18'?)"),
    (["--pristine", "EMPTY", "--backbone", "tiny"], "no reference image"),
    (["--data", "/nonexistent/ranked", "--backbone", "tiny"], "--data /nonexistent/ranked: folder not found"),
    (["--data", str(PHOTOS), "--backbone", "tiny"], "no manifest.csv, not a generated folder"),
    (["--data", "SHARDED", "--backbone", "tiny"], "join them with `rankiqa generate --merge"),
    (["--pristine", str(PHOTOS), "--val-data", str(PHOTOS)], "--val-data " + str(PHOTOS) + ": no manifest.csv"),
    (["--pristine", str(PHOTOS), "--steps", "3", "--epochs", "2"], "at most one of --steps (3) or --epochs (2)"),
    (["--pristine", str(PHOTOS), "--data", str(PHOTOS)], "exactly one of --data"),
    (["--pristine", str(PHOTOS), "--backbone", "tiny", "--distortions", "no_such_blur"], "no_such_blur"),
])
def test_bad_options_are_one_line_errors(tmp_path, capsys, args, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "sharded").mkdir()
    (tmp_path / "sharded" / "manifest-shard-1-of-2.csv").write_text("path,reference,distortion,level\n")
    places = {"EMPTY": str(tmp_path / "empty"), "SHARDED": str(tmp_path / "sharded")}
    args = [places.get(a, a) for a in args]
    steps = [] if "--steps" in args else ["--steps", "1"]
    with pytest.raises(SystemExit) as exc:
        main(["train", *args, "--out", str(tmp_path / "run"), *steps])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("Error: ") and "\n" not in err and "Traceback" not in err
    assert message in err
