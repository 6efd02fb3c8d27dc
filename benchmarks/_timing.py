"""Timing shared by the benchmark scripts: contenders take turns, so load from other processes on a
shared machine slows them alike and paired ratios stay meaningful."""
from __future__ import annotations

import time
from typing import Callable


def time_interleaved(runs: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict[str, list[float]]:
    """Wall seconds of each of ``repeats`` calls of every function in ``runs``, by name.

    In every round each function is called once, in the order given; the first ``warmup`` rounds
    are not timed.
    """
    times: dict[str, list[float]] = {name: [] for name in runs}
    for round_index in range(warmup + repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            elapsed = time.perf_counter() - start
            if round_index >= warmup:
                times[name].append(elapsed)
    return times
