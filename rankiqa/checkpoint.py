"""Checkpoints: atomic writes, safe reads (``torch.load(..., weights_only=True)``).

A checkpoint is a dict saved with ``torch.save``. Keys used across rankiqa:
``model_config`` (dict for ``rankiqa.models.create_model``), ``model_state`` (state_dict), and for
training also ``optimizer_state``, ``scheduler_state``, ``rng_state``, ``step``, ``config``, ...
Only tensors and plain containers (dict, list, tuple, str, int, float, bool, None) may be stored:
a file holding arbitrary pickled objects is refused when read.
"""
from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from rankiqa.atomic import atomic_path
from rankiqa.errors import UserError


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` atomically (temporary file in the same folder, fsync, rename)."""
    if not isinstance(payload, dict):
        raise TypeError(f"save_checkpoint: payload must be a dict, got {type(payload).__name__}")
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint dict with ``weights_only=True``.

    Raises ``UserError`` naming the file when it is missing, truncated/corrupt, holds arbitrary
    Python objects (refused for safety: unpickling them could run code; see ``refusal_message``),
    or is not a dict.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: checkpoint not found")
    if path.is_dir():
        raise UserError(f"{path}: is a folder, expected a checkpoint file (.pt)")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if _is_refusal(exc):
            raise UserError(refusal_message(path)) from None
        raise UserError(f"{path}: corrupt checkpoint ({_inner_reason(exc)})") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as exc:
        raise UserError(f"{path}: corrupt or truncated checkpoint ({_inner_reason(exc)})") from None
    if not isinstance(payload, dict):
        raise UserError(f"{path}: not a rankiqa checkpoint (holds a {type(payload).__name__}, expected a dict)")
    return payload


# Markers of torch's weights-only unpickler refusing an object (a class, a function call, a blocked
# module), as opposed to a damaged byte stream ("Unsupported operand", "String is too long", ...).
_REFUSAL_MARKERS = ("GLOBAL", "allowlisted", "allowed global", "Trying to call reduce", "must be imported")


def refusal_message(path: str | os.PathLike) -> str:
    """The one-line refusal for a file holding arbitrary Python objects (never suggests unsafe loading)."""
    return (f"{path}: refused for safety: the file contains arbitrary Python objects, which could run code "
            "when loaded; a rankiqa checkpoint holds only tensors and plain values (dict, list, str, numbers)")


def _is_refusal(exc: BaseException) -> bool:
    return any(marker in str(exc) for marker in _REFUSAL_MARKERS)


def _inner_reason(exc: BaseException) -> str:
    """torch's own reason, without its advice to load with ``weights_only=False`` (unsafe)."""
    text = str(exc)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    lines = [line.strip() for line in text.splitlines()
             if line.strip() and "weights_only" not in line and "Weights only load failed" not in line]
    return lines[0] if lines else exc.__class__.__name__
