"""rankiqa.atomic: atomic writes keep the file modes of a plain open() and name the real target."""
from __future__ import annotations

import errno
import os
import stat

import numpy as np
import pytest

from rankiqa import atomic
from rankiqa.atomic import atomic_path, write_text_atomic


@pytest.fixture
def umask():
    """Set the process umask for one test (restored afterwards)."""
    previous = os.umask(0o022)
    os.umask(previous)
    yield lambda value: os.umask(value)
    os.umask(previous)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def plain_open_mode(path) -> int:
    """The mode a plain open(path, "w") gives a new file under the current umask (the reference)."""
    with open(path, "w") as handle:
        handle.write("x")
    return mode(path)


@pytest.mark.parametrize("value", [0o022, 0o002, 0o077, 0o027], ids=oct)
def test_a_new_file_gets_the_umask_mode_like_open(tmp_path, umask, value):
    umask(value)
    write_text_atomic(tmp_path / "new.csv", "a,b\n")
    assert mode(tmp_path / "new.csv") == plain_open_mode(tmp_path / "reference.csv") == 0o666 & ~value


@pytest.mark.parametrize("existing", [0o644, 0o640, 0o600, 0o664, 0o755], ids=oct)
def test_a_replaced_file_keeps_its_mode(tmp_path, umask, existing):
    umask(0o077)  # a umask that would give 0600 to a new file: the existing mode must win
    target = tmp_path / "scores.csv"
    target.write_text("old\n")
    os.chmod(target, existing)
    write_text_atomic(target, "new\n")
    assert target.read_text() == "new\n" and mode(target) == existing


def test_images_and_checkpoints_get_normal_modes(tmp_path, umask):
    import torch

    from rankiqa.checkpoint import save_checkpoint
    from rankiqa.imageio import write_image

    umask(0o022)
    write_image(tmp_path / "a.png", np.zeros((4, 4, 3), np.uint8))
    save_checkpoint(tmp_path / "last.pt", {"step": 1, "w": torch.zeros(2)})
    assert mode(tmp_path / "a.png") == 0o644 and mode(tmp_path / "last.pt") == 0o644
    os.chmod(tmp_path / "last.pt", 0o640)
    save_checkpoint(tmp_path / "last.pt", {"step": 2, "w": torch.zeros(2)})
    assert mode(tmp_path / "last.pt") == 0o640


def test_a_failed_write_names_the_target_and_leaves_no_temp_file(tmp_path, monkeypatch):
    target = tmp_path / "manifest.csv"
    target.write_text("old\n")

    def disk_full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left") as caught:
        write_text_atomic(target, "new\n")
    assert caught.value.filename == str(target) and ".tmp" not in str(caught.value)
    assert target.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["manifest.csv"]


def test_an_error_naming_the_temp_file_is_renamed_to_the_target(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(PermissionError) as caught:
        with atomic_path(target) as tmp:
            raise PermissionError(errno.EACCES, "Permission denied", tmp)
    assert caught.value.filename == str(target) and isinstance(caught.value, PermissionError)
    with pytest.raises(OSError) as caught:  # an error about another file keeps its name
        with atomic_path(target):
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", "/elsewhere/input.png")
    assert caught.value.filename == "/elsewhere/input.png"
    assert list(tmp_path.iterdir()) == []
