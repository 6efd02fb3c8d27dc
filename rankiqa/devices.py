"""Choosing the torch device from a ``device`` option value, and the options that only say where
and how fast a run computes."""
from __future__ import annotations

import os

from rankiqa.errors import InvalidOption, UserError

RUNTIME_OPTIONS = frozenset({"device", "workers", "threads"})
"""Options that choose where and how fast a run computes, never its result: the only options of a
training or fine-tuning run that may change when it is resumed."""


def check_device(device: str) -> str:
    """``device`` if it is ``"auto"`` or a name torch parses ("cpu", "cuda", "cuda:1", "mps", ...);
    ``InvalidOption`` naming ``device`` otherwise. Says nothing about whether the device is present."""
    import torch

    if device != "auto":
        try:
            torch.device(device)
        except (RuntimeError, TypeError):
            raise InvalidOption(f"device must be auto or a torch device (cpu, cuda, cuda:1, mps, ...), got {device!r}",
                                params=("device",)) from None
    return device


def resolve_device(device: str) -> str:
    """``"auto"`` -> ``"cuda"`` when a CUDA device is available, else ``"cpu"``; any other name
    ("cpu", "cuda", "cuda:1", "mps", ...) is returned as given after ``check_device``. ``UserError``
    when a CUDA or MPS device is asked for and none is available."""
    import torch

    if check_device(device) == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {device}: no CUDA device is available (use device cpu or auto)", params=("device",))
    if device == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"device {device}: no MPS device is available (use device cpu or auto)", params=("device",))
    return device


def loader_start_method(num_workers: int) -> str | None:
    """The multiprocessing start method for DataLoader workers: ``"spawn"`` when there are workers.

    Forked workers can deadlock when the parent already ran OpenCV's or torch's thread pools (seen
    intermittently in our tests); spawned workers start clean, at the cost of a second or two.
    """
    return "spawn" if num_workers > 0 else None


def available_cpus() -> int:
    """CPUs this process may run on (its affinity set where the OS reports one, else the CPU count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def default_workers() -> int:
    """Data-loading processes sized to the machine: ``min(4, CPUs - 1)``, leaving one CPU to the
    training process (0, loading in the main process, on a single CPU)."""
    return max(0, min(4, available_cpus() - 1))
