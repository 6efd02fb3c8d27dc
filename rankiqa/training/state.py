"""``last.pt`` of a rank pre-training run: what it holds, its checks, and restoring a run from it."""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from rankiqa.checkpoint import check_entries, check_state_dict, first_line, load_checkpoint
from rankiqa.devices import RUNTIME_OPTIONS
from rankiqa.errors import InvalidOption, UserError

if TYPE_CHECKING:
    from rankiqa.train import TrainConfig

# options that may differ between a run and its resume: where and how fast it computes
# (rankiqa.devices.RUNTIME_OPTIONS), the resume flag itself, and the run folder, which is not an
# option of the run (it may be spelled differently or moved)
RESUMABLE_CHANGES = RUNTIME_OPTIONS | {"resume", "out"}
PATH_OPTIONS = frozenset({"data", "pristine", "val_data", "val_pristine"})


def checkpoint_payload(model: nn.Module, optimizer, scheduler, step: int, config: TrainConfig, metrics: list,
                       best_srcc: float | None, total_steps: int, loss_window: tuple[float, int] = (0.0, 0)
                       ) -> dict[str, Any]:
    """``loss_window``: (sum of the training losses since the last metrics row, their step count),
    so a run resumed between two rows logs the same mean loss as an uninterrupted one."""
    return {
        "format": "rankiqa-train-v1",
        "model_config": dict(model.config),
        "model_state": model.state_dict(),
        "optimizer_state": optimizer.state_dict(),
        "scheduler_state": scheduler.state_dict(),
        "rng_state": torch.get_rng_state(),
        "step": step,
        "total_steps": total_steps,
        "config": config.to_dict(),
        "metrics": metrics,
        "best_srcc": best_srcc,
        "loss_window": [float(loss_window[0]), int(loss_window[1])],
    }


def restore(last_path: Path, config: TrainConfig, device: torch.device, model: nn.Module, optimizer,
            scheduler) -> tuple[int, list[dict[str, Any]], float | None, tuple[float, int]]:
    """Load ``last.pt`` into model, optimiser, scheduler and the RNG; returns (step, metrics, best SRCC,
    loss window)."""
    payload = load_checkpoint(last_path, map_location=device)
    _check_train_payload(payload, str(last_path))
    differences = _config_differences(payload["config"], config)
    if differences:
        raise InvalidOption(f"resume {last_path}: options differ from the saved run: {', '.join(differences)}",
                            params=("resume", *differences))
    try:
        model.load_state_dict(payload["model_state"])
        optimizer.load_state_dict(payload["optimizer_state"])
        scheduler.load_state_dict(payload["scheduler_state"])
        torch.set_rng_state(payload["rng_state"].cpu())
    except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise UserError(f"{last_path}: the saved state does not fit this run ({first_line(exc)})") from None
    return payload["step"], list(payload["metrics"]), payload["best_srcc"], _loss_window(payload, str(last_path))


def _loss_window(payload: dict[str, Any], where: str) -> tuple[float, int]:
    """The saved (loss sum, steps) since the last metrics row; (0.0, 0) for checkpoints without it."""
    window = payload.get("loss_window", [0.0, 0])
    if (not isinstance(window, (list, tuple)) or len(window) != 2 or not isinstance(window[0], (float, int))
            or isinstance(window[1], bool) or not isinstance(window[1], int) or window[1] < 0):
        raise UserError(f"{where}: not a rankiqa training checkpoint (last.pt) ('loss_window' must be "
                        "[loss sum, steps])")
    return float(window[0]), window[1]


def _check_train_payload(payload: dict[str, Any], where: str) -> None:
    """``UserError`` unless ``payload`` has every entry ``train`` saves, of the right type."""
    kind = "rankiqa training checkpoint (last.pt)"
    check_entries(payload, where, kind, {
        "model_state": dict, "optimizer_state": dict, "scheduler_state": dict, "rng_state": torch.Tensor,
        "step": int, "total_steps": int, "config": dict, "metrics": list, "best_srcc": (float, int, type(None))})
    check_state_dict(payload["model_state"], where)
    rng = payload["rng_state"]
    if rng.dtype != torch.uint8 or rng.dim() != 1 or rng.numel() != torch.get_rng_state().numel():
        raise UserError(f"{where}: not a {kind} ('rng_state' is a {tuple(rng.shape)} {rng.dtype} tensor, "
                        f"expected torch.get_rng_state()'s {torch.get_rng_state().numel()} bytes)")
    if not 0 <= payload["step"] <= payload["total_steps"]:
        raise UserError(f"{where}: not a {kind} (step {payload['step']} outside 0..{payload['total_steps']})")
    if not all(isinstance(row, dict) for row in payload["metrics"]):
        raise UserError(f"{where}: not a {kind} ('metrics' must be a list of dicts)")
    if not {"state", "param_groups"} <= set(payload["optimizer_state"]):
        raise UserError(f"{where}: not a {kind} ('optimizer_state' lacks 'state' or 'param_groups')")


def _config_differences(saved: dict[str, Any], current: TrainConfig) -> list[str]:
    """Options of ``current`` that differ from the saved run's; folders compare by location
    (``./photos`` and ``photos``, or two names of one folder, are the same)."""
    now = current.to_dict()
    return sorted(k for k in now if k not in RESUMABLE_CHANGES and saved.get(k) != now[k]
                  and not (k in PATH_OPTIONS and _same_folder(saved.get(k), now[k])))


def _same_folder(saved: Any, current: Any) -> bool:
    if not isinstance(saved, str) or not isinstance(current, str):
        return False
    if os.path.normpath(saved) == os.path.normpath(current):
        return True
    try:
        return os.path.samefile(saved, current)
    except OSError:
        return False
