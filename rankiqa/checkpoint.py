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
from pathlib import Path
from typing import Any

import torch

from rankiqa.atomic import atomic_path
from rankiqa.errors import UserError


# first bytes of the two formats torch.save writes: a zip archive (torch >= 1.6) or a legacy pickle
CHECKPOINT_MAGIC = (b"PK\x03\x04", b"\x80")
_KNOWN_FILES = ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
                (b"BM", "a BMP image"), (b"II*\x00", "a TIFF image"), (b"MM\x00*", "a TIFF image"),
                (b"RIFF", "a RIFF (WebP/WAV) file"), (b"\x1f\x8b", "a gzip file"))


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` atomically (temporary file in the same folder, fsync, rename).

    A failed write (disk full, no permission, ...) raises ``UserError`` naming ``path``; the
    previous file at ``path``, if any, is left unchanged and no temporary file remains.
    """
    if not isinstance(payload, dict):
        raise TypeError(f"save_checkpoint: payload must be a dict, got {type(payload).__name__}")
    try:
        # torch writes through our file object, so a full disk raises OSError(ENOSPC) (possibly wrapped
        # in torch's RuntimeError "unexpected pos ..."), which names the cause
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            torch.save(payload, handle)
    except (OSError, RuntimeError) as exc:
        cause = _os_error(exc)
        if cause is None:
            raise
        kept = " (the previous file is unchanged)" if Path(path).exists() else ""
        raise UserError(f"{path}: could not write the checkpoint: {cause.strerror or cause}{kept}") from None


def _os_error(exc: BaseException | None) -> OSError | None:
    """``exc`` or the first ``OSError`` it was raised while handling (``__context__`` chain), else None."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError):
            return exc
        exc, seen = exc.__context__, seen + 1
    return None


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
    with open(path, "rb") as handle:
        head = handle.read(8)
    if not head.startswith(CHECKPOINT_MAGIC):
        raise UserError(f"{path}: not a PyTorch checkpoint (the file is {_describe(head)})")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if _is_refusal(exc):
            raise UserError(refusal_message(path)) from None
        raise UserError(f"{path}: corrupt checkpoint ({_inner_reason(exc)})") from None
    except Exception as exc:  # noqa: BLE001 - a damaged file can fail inside torch's reader in any way
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


def _describe(head: bytes) -> str:
    if not head:
        return "empty"
    for magic, name in _KNOWN_FILES:
        if head.startswith(magic):
            return name
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return f"binary data starting with {head[:4]!r}"
    return "text"


def check_entries(payload: dict[str, Any], where: str, kind: str, expected: dict[str, type | tuple[type, ...]]) -> None:
    """Raise ``UserError`` unless every key of ``expected`` is in ``payload`` with a value of that type.

    ``kind`` names what the file should be (e.g. "rankiqa training checkpoint"); ``bool`` never
    passes for ``int`` or ``float``.
    """
    for key, types in expected.items():
        if key not in payload:
            raise UserError(f"{where}: not a {kind} (missing {key!r})")
        value = payload[key]
        allowed = types if isinstance(types, tuple) else (types,)
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            names = " or ".join("None" if t is type(None) else t.__name__ for t in allowed)
            raise UserError(f"{where}: not a {kind} ({key!r} is a {type(value).__name__}, expected {names})")


def check_state_dict(state: Any, where: str, key: str = "model_state") -> dict[str, torch.Tensor]:
    """``state`` if it is a dict of str -> tensor, else ``UserError`` naming ``where`` and ``key``."""
    if not isinstance(state, dict):
        raise UserError(f"{where}: {key!r} is a {type(state).__name__}, expected a dict of tensors")
    for name, value in state.items():
        if not isinstance(name, str) or not isinstance(value, torch.Tensor):
            raise UserError(f"{where}: {key!r} entry {name!r} is a {type(value).__name__}, expected a tensor "
                            "under a string name")
    return state


def check_model_payload(payload: dict[str, Any], where: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(model config, state dict) of a model checkpoint payload, validated; ``UserError`` naming
    ``where`` when a key is missing or of the wrong type (config keys must be strings, ``backbone``
    a string, state entries tensors)."""
    check_entries(payload, where, "rankiqa model checkpoint", {"model_config": dict, "model_state": dict})
    config = payload["model_config"]
    bad_keys = [key for key in config if not isinstance(key, str)]
    if bad_keys:
        raise UserError(f"{where}: model_config key {bad_keys[0]!r} is not a string")
    if not isinstance(config.get("backbone"), str):
        raise UserError(f"{where}: model_config has no 'backbone' name")
    return dict(config), check_state_dict(payload["model_state"], where)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its class name when the message is empty)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


_first_line = first_line
