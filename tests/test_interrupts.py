"""Interrupting `rankiqa generate`: Ctrl-C exits with 130 and keeps finished work; kill -9 of the
whole job (parent and workers) in the middle of a photo, then a re-run, gives the same bytes as a
clean run."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rankiqa.generate import PROGRESS_DIR, generate
from _shared import make_photos, tree

# slow enough per photo (~0.4 s) that a test can catch one half written; all deterministic
SLOW_TYPES = ["gaussian_blur", "jpeg2000", "denoise", "color_quantization", "white_noise"]
FILES_PER_REFERENCE = 1 + 5 * len(SLOW_TYPES)
pytestmark = pytest.mark.slow


def _command(src: Path, out: Path, workers: int) -> list[str]:
    return [sys.executable, "-m", "rankiqa", "generate", str(src), str(out), "--distortions", ",".join(SLOW_TYPES),
            "--workers", str(workers), "--quiet"]


def _env() -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("RANKIQA_DEBUG", None)
    return env


def _wait_for(condition, process: subprocess.Popen, timeout: float = 120.0):
    """Poll ``condition()`` every 5 ms until it returns something truthy (fails if the child exits first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        if process.poll() is not None:
            pytest.fail(f"the child finished (rc {process.returncode}) before the awaited state: {process.stderr.read()[-2000:]}")
        time.sleep(0.005)
    process.kill()
    pytest.fail("timed out waiting for the child")


def _partial_reference(out: Path) -> Path | None:
    """A reference folder holding some but not all of its images (a photo being written)."""
    images = out / "images"
    if not images.is_dir():
        return None
    for folder in [p for p in images.rglob("*") if p.is_dir()]:
        written = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
        if 0 < len(written) < FILES_PER_REFERENCE:
            return folder
    return None


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    make_photos(src, 6, size=(192, 160))
    return src


@pytest.fixture(scope="module")
def clean(photos, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clean")
    generate(photos, out, distortion_names=SLOW_TYPES, progress=False, log=lambda message: None)
    return out


@pytest.mark.parametrize("workers", [1, 2])
def test_ctrl_c_exits_130_keeps_finished_references_and_a_rerun_completes(photos, clean, tmp_path, workers):
    out = tmp_path / "out"
    process = subprocess.Popen(_command(photos, out, workers), env=_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: (out / PROGRESS_DIR).is_dir() and any((out / PROGRESS_DIR).glob("*.json")), process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert stderr.rstrip().splitlines()[-1] == "Aborted."
    assert "finished references are kept; run the same command again" in stderr
    assert "Traceback" not in stderr
    assert not (out / "manifest.csv").exists()
    generate(photos, out, distortion_names=SLOW_TYPES, progress=False, log=lambda message: None)
    assert tree(out) == tree(clean)


def test_kill_9_with_two_workers_in_the_middle_of_a_photo_then_resume_is_byte_identical(photos, clean, tmp_path):
    out = tmp_path / "killed"
    # a session of its own, so that the whole job (parent and spawned workers) gets the SIGKILL at once
    process = subprocess.Popen(_command(photos, out, 2), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    _wait_for(lambda: _partial_reference(out), process)
    os.killpg(process.pid, signal.SIGKILL)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    time.sleep(0.2)  # let the kernel finish reaping the workers
    partial = _partial_reference(out)
    assert partial is not None, "the kill should have left a photo half written"
    assert not (out / "manifest.csv").exists()
    summary = generate(photos, out, distortion_names=SLOW_TYPES, workers=2,
                       progress=False, log=lambda message: None)
    assert 0 < summary.images_written < summary.images_total
    assert tree(out) == tree(clean)
