"""Test-only launcher: run ``rankiqa.cli.main`` with "SIGKILL this process here" injected.

    python tests/_killing_launcher.py train-step N ARGS...            # right after training step N
    python tests/_killing_launcher.py generate-references N ARGS...   # once N references are finished
    python tests/_killing_launcher.py generate-images N ARGS...       # once this process wrote N images

(``ARGS``: the ``rankiqa`` command line, e.g. ``train --pristine photos/ ...``.)

The tests that check resuming after ``kill -9`` run the CLI through this script in a child
process, so the kill lands at a chosen point without racing a timer, and the product itself has no
testing hook: the fault is injected from here (a training callback, or a wrapper around the
function that records a finished reference in the driver, or the one that writes an image; the
latter counts only in this process, so run ``generate`` with one worker). It also holds a Ray
worker setup hook that pauses a generate task (``pause_the_first_generate_task``).
"""
from __future__ import annotations

import functools
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the rankiqa of this checkout

from rankiqa.training.loop import Callback  # noqa: E402


def kill_now() -> None:
    """SIGKILL this process: no handler, no clean-up, like ``kill -9``."""
    os.kill(os.getpid(), signal.SIGKILL)


class KillAtStep(Callback):
    """Kills the run right after step ``step`` (after that step's built-in callbacks)."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, state) -> None:
        if state.step == self.step:
            kill_now()


def _kill_after_calls(function, count: int):
    """``function``, wrapped to kill the process when its ``count``-th call has returned."""
    calls = 0

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        nonlocal calls
        result = function(*args, **kwargs)
        calls += 1
        if calls == count:
            kill_now()
        return result

    return wrapper


PAUSE_FILE_ENV = "RANKIQA_TEST_PAUSE_FILE"
"""For ``pause_the_first_generate_task``: the file its paused worker writes its PID to."""


def pause_the_first_generate_task() -> None:
    """A Ray ``worker_process_setup_hook``: in the first worker to claim ``$RANKIQA_TEST_PAUSE_FILE``,
    the first generate task writes one image, then the worker's PID to that file, and sleeps, so a
    test can SIGKILL a worker in the middle of a task."""
    import time

    from rankiqa import generate_worker
    from rankiqa.atomic import write_text_atomic

    target = os.environ[PAUSE_FILE_ENV]
    original = generate_worker._save

    def save_then_pause(path, image, image_format):
        original(path, image, image_format)
        generate_worker._save = original
        try:
            os.close(os.open(f"{target}.claim", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return  # another worker paused already
        write_text_atomic(target, str(os.getpid()))
        time.sleep(120)

    generate_worker._save = save_then_pause


def install(kind: str, count: int) -> None:
    """Arm the fault ``kind`` (see the module docstring) at ``count``."""
    if kind == "train-step":
        import rankiqa.train

        rankiqa.train.train = functools.partial(rankiqa.train.train, callbacks=[KillAtStep(count)])
    elif kind == "generate-references":
        from rankiqa.generate import _Progress

        _Progress.__call__ = _kill_after_calls(_Progress.__call__, count)
    elif kind == "generate-images":
        import rankiqa.generate_worker

        rankiqa.generate_worker._save = _kill_after_calls(rankiqa.generate_worker._save, count)
    else:
        raise SystemExit(f"unknown fault {kind!r}")


if __name__ == "__main__":
    install(sys.argv[1], int(sys.argv[2]))
    from rankiqa.cli import main

    main(sys.argv[3:])
