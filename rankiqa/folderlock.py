"""OS file locks on output folders, so two processes never write into one folder at once.

``fcntl.flock`` locks belong to the open file: the kernel releases them when the process exits,
however it exits (``kill -9`` included), so a stale lock never blocks a re-run. The lock files
(``.lock``, ``.lock-shard-K-of-N``) hold the pid of their holder, for the error message.

A whole-folder job takes ``.lock`` exclusively. A job on part K of N (``part=(K, N)``) shares
``.lock`` with the other parts and takes ``.lock-shard-K-of-N`` exclusively: shards 1/2 and 2/2 may
run at the same time; two copies of shard 1/2, or a shard and a whole-folder run, may not.
"""
from __future__ import annotations

import errno
import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from rankiqa.errors import UserError

LOCK_NAME = ".lock"


class FolderInUse(UserError):
    """Another process holds the folder's lock; ``pids`` are the holders found (may be empty)."""

    def __init__(self, message: str, pids: list[int], params: tuple[str, ...] = ()) -> None:
        super().__init__(message, params=params)
        self.pids = pids


def _open(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)


def _try_lock(fd: int, operation: int) -> bool:
    try:
        fcntl.flock(fd, operation | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def _write_pid(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _holders(folder: Path) -> list[int]:
    """Pids of the processes that hold a lock in ``folder`` (part locks first, then the whole-folder one)."""
    pids = []
    for path in sorted(folder.glob(f"{LOCK_NAME}-shard-*")):
        fd = _open(path)
        try:
            if not _try_lock(fd, fcntl.LOCK_EX):
                pids.append(_read_pid(path))
            else:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
    if not pids:
        pids.append(_read_pid(folder / LOCK_NAME))
    return sorted({pid for pid in pids if pid is not None})


def _in_use(folder: Path, label: str) -> FolderInUse:
    pids = _holders(folder)
    who = f"pid {', '.join(map(str, pids))}" if pids else "pid unknown"
    return FolderInUse(
        f"{label} {folder} is in use by another process ({who}); wait for it to finish or stop it, "
        "or choose another folder", pids, params=(label,)
    )


@contextmanager
def folder_lock(folder: str | os.PathLike, part: tuple[int, int] | None = None, label: str = "out_dir") -> Iterator[None]:
    """Hold ``folder``'s lock for the block (see the module doc); ``FolderInUse`` (a ``UserError``
    naming ``label``, the parameter that gave the folder, the folder and the holder's pid) when
    another process holds it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    whole = _open(folder / LOCK_NAME)
    own = None
    try:
        if not _try_lock(whole, fcntl.LOCK_EX if part is None else fcntl.LOCK_SH):
            raise _in_use(folder, label)
        if part is None:
            _write_pid(whole)
        else:
            own = _open(folder / f"{LOCK_NAME}-shard-{part[0]}-of-{part[1]}")
            if not _try_lock(own, fcntl.LOCK_EX):
                raise _in_use(folder, label)
            _write_pid(own)
        yield
    finally:
        if own is not None:
            os.close(own)
        os.close(whole)
