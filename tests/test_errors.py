"""The error model: rankiqa's exception family, the distortions package's own, and what `main` does
with each. User mistakes are one `Error:` line (exit code 2) naming the command's flags; anything
else is a bug and keeps its traceback."""
from __future__ import annotations

import errno
import pickle
import subprocess
import sys

import click
import numpy as np
import pytest
from PIL import Image

import distortions
from _shared import noise
from rankiqa.cli import COMMANDS, cli, main
from rankiqa.cli.command import Command, with_flags
from rankiqa.errors import InvalidOption, RankiqaError, UnknownName, UserError


def run_main(args: list[str], capsys) -> tuple[int, str]:
    """(exit code, stderr) of ``rankiqa ARGS`` run in this process."""
    with pytest.raises(SystemExit) as exc:
        main(args)
    return exc.value.code, capsys.readouterr().err


@pytest.fixture
def photo_file(tmp_path):
    path = tmp_path / "a.png"
    Image.fromarray(noise(0, 48, 48)).save(path)
    return path


def test_the_classes_keep_the_builtin_bases_callers_catch():
    assert issubclass(UserError, RankiqaError) and issubclass(InvalidOption, UserError)
    assert issubclass(InvalidOption, ValueError)
    assert issubclass(UnknownName, InvalidOption) and issubclass(UnknownName, KeyError)
    assert str(UnknownName("unknown backbone 'x'")) == "unknown backbone 'x'"  # not KeyError's quoted repr
    copy = pickle.loads(pickle.dumps(InvalidOption("patch_size must be >= 32", params=("patch_size",))))
    assert (type(copy), str(copy), copy.params) == (InvalidOption, "patch_size must be >= 32", ("patch_size",))
    assert issubclass(distortions.UnknownDistortion, KeyError)
    assert issubclass(distortions.InvalidArgument, ValueError)
    assert issubclass(distortions.UnknownDistortion, distortions.DistortionError)
    assert str(distortions.UnknownDistortion("unknown distortion 'x'")) == "unknown distortion 'x'"


def test_an_unknown_name_is_one_class_everywhere(tmp_path):
    from rankiqa.backends import get_backend
    from rankiqa.data.databases import get_database
    from rankiqa.distortion_table import select_distortions
    from rankiqa.finetune import FinetuneConfig
    from rankiqa.models import get_backbone
    from rankiqa.train import TrainConfig

    calls = [
        (lambda: select_distortions("gausian_blur"), "did you mean gaussian_blur"),
        (lambda: select_distortions("family:blurr"), "unknown distortion family 'blurr'"),
        (lambda: get_backbone("resnet51"), "unknown backbone 'resnet51'"),
        (lambda: get_database("live2"), "unknown database 'live2'"),
        (lambda: get_backend("tensorrt"), "unknown backend 'tensorrt'"),
        (lambda: FinetuneConfig(loss="l3"), "loss must be one of l1, l2, got 'l3'"),
        (lambda: TrainConfig(out=str(tmp_path), pristine=str(tmp_path), loss="hinge"), "loss must be one of"),
    ]
    for call, message in calls:
        with pytest.raises(UnknownName, match=message):
            call()
    with pytest.raises(distortions.UnknownDistortion, match="unknown distortion 'gausian_blur'"):
        distortions.get("gausian_blur")  # the standalone package keeps its own class (a KeyError)


def test_the_distortions_package_stays_standalone():
    code = "import sys, distortions; print(sorted(m for m in sys.modules if m.split('.')[0] in ('rankiqa', 'torch')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.strip() == "[]"


def test_flags_replace_whole_parameter_names_only():
    flags = {"patch": "--patch", "src_dir": "SRC_DIR"}
    assert with_flags("patch 8 is below patch_size; see --patch", ["patch"], flags) == \
        "--patch 8 is below patch_size; see --patch"
    assert with_flags("src_dir x: folder not found", ["src_dir"], flags) == "SRC_DIR x: folder not found"
    assert with_flags("patch 8", [], flags) == "patch 8"  # only the names the error lists
    assert with_flags("seed 3", ["seed"], flags) == "seed 3"  # a name the command does not have stays


def test_library_messages_name_parameters_and_commands_name_their_flags(tmp_path, photo_file, capsys):
    from rankiqa.train import TrainConfig

    with pytest.raises(InvalidOption, match=r"^give at most one of steps \(1\) or epochs \(2\)$"):
        TrainConfig(out=str(tmp_path / "run"), pristine=str(tmp_path), steps=1, epochs=2)
    code, err = run_main(["train", "--pristine", str(tmp_path), "--out", str(tmp_path / "run"), "--steps", "1",
                          "--epochs", "2"], capsys)
    assert (code, err) == (2, "Error: give at most one of --steps (1) or --epochs (2)\n")

    code, err = run_main(["score", str(photo_file), "--model", "tiny", "--patches", "0"], capsys)
    assert (code, err) == (2, "Error: --patches must be a positive int, got 0\n")

    code, err = run_main(["generate", str(tmp_path / "none"), str(tmp_path / "out")], capsys)
    assert (code, err) == (2, f"Error: SRC_DIR {tmp_path / 'none'}: folder not found\n")


def test_a_distortions_error_is_one_line(tmp_path, capsys):
    small = tmp_path / "small.png"
    Image.fromarray(np.zeros((20, 40, 3), np.uint8)).save(small)
    code, err = run_main(["distortions", "show", str(small), "--out", str(tmp_path / "s.png"), "--names", "jpeg"], capsys)
    assert (code, err) == (2, "Error: image must be at least 32x32 pixels, got 40x20\n")


@pytest.mark.parametrize("bug", [ValueError("a numpy-style bug"), KeyError("a missing key"),
                                 OSError("an OSError that names no file")])
def test_a_bug_keeps_its_traceback_even_when_it_is_a_value_error(bug, photo_file, monkeypatch):
    def broken(*args, **kwargs):
        raise bug

    monkeypatch.delenv("RANKIQA_DEBUG", raising=False)
    monkeypatch.setattr("rankiqa.score.report_scores", broken)
    with pytest.raises(type(bug)) as caught:
        main(["score", str(photo_file), "--model", "tiny", "--patch-size", "32"])
    assert caught.value is bug


def test_a_file_system_error_naming_a_file_is_one_line(photo_file, tmp_path, monkeypatch, capsys):
    full = str(tmp_path / "scores.csv")

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", full)

    monkeypatch.delenv("RANKIQA_DEBUG", raising=False)
    monkeypatch.setattr("rankiqa.score.report_scores", disk_full)
    code, err = run_main(["score", str(photo_file), "--model", "tiny", "--patch-size", "32"], capsys)
    assert (code, err) == (2, f"Error: {full}: No space left on device\n")


def test_every_command_maps_its_flags():
    def leaves(command):
        if isinstance(command, click.Group):
            for sub in command.commands.values():
                yield from leaves(sub)
        else:
            yield command

    for name in COMMANDS:
        for command in leaves(cli.get_command(None, name)):
            assert isinstance(command, Command), f"{command.name} is not a rankiqa.cli.command.Command"
