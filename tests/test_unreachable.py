"""Unreachable inputs are reported skips, never the end of a batch (issue 11: defects 3, 8, 17).

Links that go nowhere, link loops and folders without permission, in `generate` SRC_DIR and in
`score` inputs. Real permission cases run the CLI in a child process without the file-permission
capabilities (``unprivileged`` fixture: setpriv when root); in-process variants simulate the
PermissionError by monkeypatching ``os.scandir`` / ``os.stat`` so they also run where setpriv cannot.
"""
from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image, features
from _shared import make_photos, photo
from test_generate import run

from rankiqa.cli import cli
from rankiqa.score import expand_paths


def links(folder: Path) -> None:
    """A dangling link and a two-link loop, both with image names."""
    os.symlink(folder / "gone.png", folder / "dangling.png")
    os.symlink(folder / "loop_b.jpg", folder / "loop_a.jpg")
    os.symlink(folder / "loop_a.jpg", folder / "loop_b.jpg")


def skipped_csv(out: Path) -> dict[str, str]:
    frame = pd.read_csv(out / "skipped.csv", keep_default_na=False)
    return dict(zip(frame.path, frame.reason))


@pytest.fixture
def locked(tmp_path):
    """A folder ``locked/`` (with a photo in it) that the owner cannot list or enter: mode 000."""
    folder = tmp_path / "locked"
    folder.mkdir()
    Image.fromarray(photo(7)).save(folder / "hidden.png")
    folder.chmod(0)
    yield folder
    folder.chmod(0o755)


def deny_scandir(monkeypatch, denied: Path) -> None:
    real = os.scandir

    def scandir(path="."):
        if Path(path) == denied:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)


def test_generate_lists_links_that_go_nowhere_in_skipped_csv_and_goes_on(tmp_path):
    src = tmp_path / "src"
    make_photos(src, 2)
    links(src)
    os.mkfifo(src / "pipe.png")  # opening it would block: it must be refused from its stat
    out = tmp_path / "out"
    signal.alarm(120)  # a regression would hang on the pipe: fail instead
    try:
        summary = run(src, out)
    finally:
        signal.alarm(0)
    reasons = skipped_csv(out)
    assert reasons["dangling.png"].startswith("dangling symbolic link")
    assert reasons["loop_a.jpg"].startswith("symbolic link loop") and reasons["loop_b.jpg"].startswith("symbolic link loop")
    assert reasons["pipe.png"] == "not a regular file (a pipe, socket or device)"
    assert summary.references == 2 and summary.skipped == 4
    assert run(src, out).images_written == 0  # the skips stand on a re-run, nothing is redone


def test_generate_reports_a_sub_folder_it_cannot_list(tmp_path, monkeypatch):
    src = tmp_path / "src"
    make_photos(src, 2)
    (src / "private").mkdir()
    Image.fromarray(photo(5)).save(src / "private" / "p.png")
    os.symlink(src / "private", src / "linked")
    deny_scandir(monkeypatch, src / "private")  # simulated: os.scandir raises PermissionError
    summary = run(src, tmp_path / "out")
    reasons = skipped_csv(tmp_path / "out")
    assert reasons["private/"] == "folder not read: permission denied"
    assert reasons["linked/"] == "symbolic link to a folder: not followed"
    assert summary.references == 2 and summary.skipped == 2


def test_generate_reports_a_real_unreadable_sub_folder(tmp_path, locked, unprivileged):
    src = tmp_path  # holds locked/ and the photos
    make_photos(src, 2)
    out = tmp_path.parent / f"{tmp_path.name}-out"
    command = unprivileged([sys.executable, "-m", "rankiqa", "generate", str(src), str(out), "--distortions", "gaussian_blur", "--quiet"])
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert skipped_csv(out) == {"locked/": "folder not read: permission denied"}
    assert "Traceback" not in done.stderr


def test_score_skips_an_unreachable_file_and_scores_the_rest(tmp_path, locked, tiny_checkpoint, unprivileged):
    good = tmp_path / "good.png"
    Image.fromarray(photo(1)).save(good)
    command = unprivileged([sys.executable, "-m", "rankiqa", "score", str(locked / "hidden.png"), str(good), str(tmp_path),
                            "--weights", str(tiny_checkpoint), "--patches", "2", "--patch-size", "32", "--format", "csv", "--recursive"])
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert f"skipped {locked / 'hidden.png'}: permission denied" in done.stderr
    assert f"skipped {locked}: folder not read: permission denied" in done.stderr
    assert [row["path"] for row in csv.DictReader(io.StringIO(done.stdout))] == [str(good)]


def test_expand_paths_reports_unreachable_inputs_instead_of_raising(tmp_path, monkeypatch):
    Image.fromarray(photo(1)).save(tmp_path / "good.png")
    links(tmp_path)
    real_stat = os.stat

    def stat(path, *args, **kwargs):  # simulated: a file inside a folder without search permission
        if "locked" in str(path):
            raise PermissionError(13, "Permission denied", str(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat)
    files, missing = expand_paths([str(tmp_path / "locked" / "x.png"), str(tmp_path / "dangling.png"),
                                   str(tmp_path / "loop_a.jpg"), str(tmp_path / "good.png")])
    assert files == [tmp_path / "good.png"]
    reasons = [result.error for result in missing]
    assert reasons[0] == "permission denied"
    assert reasons[1].startswith("dangling symbolic link") and reasons[2].startswith("symbolic link loop")


@pytest.mark.skipif(not features.check("avif"), reason="this Pillow build cannot write or read AVIF")
def test_folder_scans_include_avif(tmp_path, tiny_checkpoint):
    Image.fromarray(photo(3)).save(tmp_path / "photo.avif", quality=90)
    files, missing = expand_paths([str(tmp_path)])
    assert files == [tmp_path / "photo.avif"] and missing == []
    result = CliRunner().invoke(cli, ["score", str(tmp_path), "--weights", str(tiny_checkpoint), "--patches", "2",
                                      "--patch-size", "32", "--format", "json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["path"] == str(tmp_path / "photo.avif") and np.isfinite(row["score"])
