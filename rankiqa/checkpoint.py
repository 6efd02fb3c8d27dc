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
    pickled objects (refused: loading them could run code), or is not a dict.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: checkpoint not found")
    if path.is_dir():
        raise UserError(f"{path}: is a folder, expected a checkpoint file (.pt)")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" in str(exc):
            raise UserError(
                f"{path}: refused, the checkpoint contains arbitrary pickled objects "
                "(only tensors and plain containers are loaded, with weights_only=True)"
            ) from None
        raise UserError(f"{path}: corrupt checkpoint ({_first_line(exc)})") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as exc:
        raise UserError(f"{path}: corrupt or truncated checkpoint ({_first_line(exc)})") from None
    if not isinstance(payload, dict):
        raise UserError(f"{path}: not a rankiqa checkpoint (holds a {type(payload).__name__}, expected a dict)")
    return payload


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__
