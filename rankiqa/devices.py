"""Choosing the torch device from a ``--device`` option value."""
from __future__ import annotations

from rankiqa.errors import UserError


def resolve_device(device: str) -> str:
    """``"auto"`` -> ``"cuda"`` when a CUDA device is available, else ``"cpu"``; any other name
    ("cpu", "cuda", "cuda:1", "mps", ...) is returned as given. ``UserError`` when a CUDA device is
    asked for and none is available."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {device}: no CUDA device is available (use --device cpu or auto)")
    return device


def loader_start_method(num_workers: int) -> str | None:
    """The multiprocessing start method for DataLoader workers: ``"spawn"`` when there are workers.

    Forked workers can deadlock when the parent already ran OpenCV's or torch's thread pools (seen
    intermittently in our tests); spawned workers start clean, at the cost of a second or two.
    """
    return "spawn" if num_workers > 0 else None
