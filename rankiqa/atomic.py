"""Atomic file writes: write to a temporary file in the target's folder, fsync, then rename.

A reader (or a resumed job) therefore sees either the old file or the complete new one, never a
truncated file, even after ``kill -9`` or a power loss.

File modes are those a plain ``open(path, "w")`` gives: a new file gets ``0o666`` less the
process umask (``-rw-r--r--`` with the usual umask 022); a replaced file keeps its mode (and,
where permitted, its owner and group). Errors name the target, never the temporary file.
"""
from __future__ import annotations

import os
import secrets
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

_NEW_FILE_MODE = 0o666  # as open(): the kernel removes the umask bits


def temp_name(target: str | os.PathLike) -> Path:
    """A fresh temporary name next to ``target``: ``.<stem>.<random><suffix>.tmp`` (hidden)."""
    target = Path(target)
    return target.parent / f".{target.stem}.{secrets.token_hex(6)}{target.suffix}.tmp"


def _create_temp(target: Path) -> Path:
    """Create an empty temporary file next to ``target`` with the mode ``open()`` would give it."""
    for _ in range(100):
        tmp = temp_name(target)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), _NEW_FILE_MODE)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"{target}: could not create a temporary file next to it")


def _keep_mode_of(target: Path, tmp: Path) -> None:
    """Give ``tmp`` the permission bits (and owner/group when allowed) of an existing ``target``."""
    try:
        old = target.stat()
    except FileNotFoundError:
        return
    os.chmod(tmp, stat.S_IMODE(old.st_mode))
    new = tmp.stat()
    if (new.st_uid, new.st_gid) != (old.st_uid, old.st_gid):
        try:
            os.chown(tmp, old.st_uid, old.st_gid)
        except OSError:  # not permitted (not root, not a member of the group): plain open() would keep it, we cannot
            pass


def _name_target(exc: OSError, target: Path, tmp: Path) -> OSError:
    """``exc`` with the target as its file name when it named the temporary file (or no file)."""
    if exc.filename is None or str(exc.filename) == str(tmp):
        return OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(target))  # errno picks the subclass
    return exc


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path next to ``path``; when the block succeeds it is fsynced and renamed
    over ``path``, otherwise removed. Creates missing parent folders. The result has the mode a
    plain ``open()`` would give (see the module doc). An ``OSError`` (disk full, permission
    denied...) names ``path``, not the temporary file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temp(target)
    try:
        yield str(tmp)
        _keep_mode_of(target, tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno is not None:
            renamed = _name_target(exc, target, tmp)
            if renamed is not exc:
                raise renamed from exc
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8, newlines exactly as given) to ``path`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
