"""Test-only launcher: run ``rankiqa.cli.main`` with "SIGKILL this process here" injected.

    python tests/_killing_launcher.py train-step N ARGS...   # right after training step N

The tests that check resuming after ``kill -9`` run the CLI through this script in a child
process, so the kill lands at a chosen point without racing a timer, and the product itself has no
testing hook: the fault is injected from here (a training callback).
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


def install(kind: str, count: int) -> None:
    """Arm the fault ``kind`` (see the module docstring) at ``count``."""
    if kind == "train-step":
        import rankiqa.train

        rankiqa.train.train = functools.partial(rankiqa.train.train, callbacks=[KillAtStep(count)])
    else:
        raise SystemExit(f"unknown fault {kind!r}")


if __name__ == "__main__":
    install(sys.argv[1], int(sys.argv[2]))
    from rankiqa.cli import main

    main(sys.argv[3:])
