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
