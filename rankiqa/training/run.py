"""One rank pre-training run: the step, validate and checkpoint units, and the built-in callbacks.

``rankiqa.train.train`` builds a ``RankRun`` and drives it with ``rankiqa.training.loop.run_loop``.
"""
from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from rankiqa.atomic import write_text_atomic
from rankiqa.calibration import TARGET_SETS, coverage, load_targets, target_matrix
from rankiqa.checkpoint import load_checkpoint, save_checkpoint
from rankiqa.errors import InvalidOption, UserError
from rankiqa.models import create_model
from rankiqa.report import write_train_report
from rankiqa.seeding import stable_seed
from rankiqa.training.data import build_datasets, epoch_batches, steps_per_epoch, total_steps
from rankiqa.training.distributed import Distributed, set_threads, setup_distributed
from rankiqa.training.evaluation import calibrate, evaluate_ranking, selection_criterion
from rankiqa.training.loop import Callback
from rankiqa.training.objective import SiameseRanker
from rankiqa.training.outputs import CURVES_EVERY_S, METRIC_COLUMNS, plot_curves, write_csv, write_errors_name
from rankiqa.training.state import checkpoint_payload, restore

if TYPE_CHECKING:
    from rankiqa.train import TrainConfig


@dataclass
class TrainState:
    """What a run carries from step to step; ``last.pt`` saves all but ``loss``, ``seconds`` and
    ``last_val``, so a resumed run continues exactly where the saved one stopped.

    ``step``: optimiser steps done (of ``total_steps``); ``metrics``: the rows of metrics.csv;
    ``best_srcc``: the best validation criterion so far (``selection_criterion``, higher is better);
    ``loss_sum``/``loss_steps``: the training losses since the last metrics row; ``loss``: the last
    step's; ``seconds``: the last step's wall time; ``last_val``: this process's last validation.
    """

    total_steps: int
    step: int = 0
    metrics: list[dict[str, Any]] = field(default_factory=list)
    best_srcc: float | None = None
    loss_sum: float = 0.0
    loss_steps: int = 0
    loss: float = math.nan
    seconds: float = 0.0
    last_val: dict[str, float] = field(default_factory=dict)


@dataclass
class Speed:
    """Sets per second of this process's steps: over the current metrics row, and over the run."""

    sets_per_step: int
    window_seconds: float = 0.0
    window_steps: int = 0
    seconds: float = 0.0
    steps: int = 0

    def add(self, seconds: float) -> None:
        self.window_seconds, self.window_steps = self.window_seconds + seconds, self.window_steps + 1
        self.seconds, self.steps = self.seconds + seconds, self.steps + 1

    def window_rate(self) -> float:
        return self.window_steps * self.sets_per_step / max(self.window_seconds, 1e-9)

    def rate(self) -> float:
        return self.steps * self.sets_per_step / self.seconds if self.seconds else 0.0

    def reset_window(self) -> None:
        self.window_seconds, self.window_steps = 0.0, 0


class RankRun:
    """One process's part of a run: its model, optimiser, data and ``TrainState``, with the step,
    validate and checkpoint units the loop and its callbacks drive."""

    def __init__(self, config: TrainConfig, info: Distributed, device: torch.device, train_set: Dataset,
                 val_set: Dataset | None, progress: bool):
        self.config, self.info, self.device = config, info, device
        self.train_set, self.val_set = train_set, val_set
        self.run_dir = Path(config.out)
        self.last_path, self.best_path = self.run_dir / "last.pt", self.run_dir / "best.pt"
        self.state = TrainState(total_steps(config, len(train_set), info.world_size))
        resuming = config.resume and self.last_path.exists()
        torch.manual_seed(config.seed)
        # resumed weights come from last.pt: no ImageNet weights to load (or download) first
        self.model = create_model(config.backbone, config.pretrained and not resuming,
                                  **({"dropout": config.dropout} if config.dropout else {}))
        self.model.to(device)
        self.human = _human_targets(config, train_set, val_set, progress and info.is_main)
        self.ranker: nn.Module = SiameseRanker(self.model, config.loss, config.margin, config.cross_reference,
                                               *self.human["train"], config.target_loss, config.target_weight,
                                               config.target_scale, config.target_margins)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.scheduler = _make_scheduler(self.optimizer, config, self.state.total_steps)
        if resuming:
            state = self.state
            state.step, state.metrics, state.best_srcc, (state.loss_sum, state.loss_steps) = restore(
                self.last_path, config, device, self.model, self.optimizer, self.scheduler)
        self.per_epoch = steps_per_epoch(len(train_set), config.batch_sets, info.world_size)
        self.speed = Speed(config.batch_sets * info.world_size)
        self.bar: Any = None  # the progress bar (tqdm), opened by ``start``

    @classmethod
    def start(cls, config: TrainConfig, train_set: Dataset | None, val_set: Dataset | None,
              progress: bool) -> RankRun:
        """Set up the process, the datasets (``build_datasets`` unless given), the model and state
        (restored from ``last.pt`` with ``--resume``), write config.json and open the progress bar."""
        info, device = setup_distributed(config.device)
        set_threads(config)
        run_dir = Path(config.out)
        if (run_dir / "last.pt").exists() and not config.resume:
            raise InvalidOption(f"out {run_dir}: already holds a run (last.pt); pass resume or choose another folder",
                                params=("out", "resume"))
        if train_set is None:
            train_set, val_set = build_datasets(config)
        run = cls(config, info, device, train_set, val_set, progress)
        if info.rank:
            torch.manual_seed(stable_seed(config.seed, "rank", info.rank, run.state.step))
        if info.world_size > 1:
            run.ranker = nn.parallel.DistributedDataParallel(
                run.ranker, device_ids=[device.index] if device.type == "cuda" else None)
        if info.is_main:
            run.write_config()
        run.bar = _progress_bar(progress and info.is_main, run.state.step, run.state.total_steps)
        run.ranker.train()
        return run

    def write_config(self) -> None:
        """config.json: the options and what they resolved to (steps, processes, sets)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        resolved = {**self.config.to_dict(), "total_steps": self.state.total_steps,
                    "world_size": self.info.world_size, "train_sets": len(self.train_set),
                    "val_sets_available": len(self.val_set) if self.val_set is not None else 0}
        with write_errors_name(self.run_dir / "config.json"):
            write_text_atomic(self.run_dir / "config.json", json.dumps(resolved, indent=2) + "\n")

    def batches(self) -> Iterator[dict]:
        """This process's batches from the current step to the last."""
        return epoch_batches(self.train_set, self.config, self.state.step, self.state.total_steps, self.info)

    def callbacks(self) -> list[Callback]:
        """The built-in callbacks, in the order they run after a step."""
        return [_ProgressMeter(self), _MetricsLog(self), _Checkpoints(self), _Curves(self)]

    def is_checkpoint_step(self, step: int) -> bool:
        """Steps that validate and save ``last.pt``: every ``val_every``-th, and the last."""
        return step % self.config.val_every == 0 or step == self.state.total_steps

    def step(self, batch: dict) -> None:
        """One optimiser step on ``batch``; a non-finite loss saves ``last.pt`` (at the previous step)
        and stops the run with a ``UserError``."""
        batch = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        loss = self.ranker(batch)
        if not torch.isfinite(loss):
            self.save(self.last_path)
            raise UserError(f"training loss became {loss.item()} at step {self.state.step + 1} (saved {self.last_path} "
                            f"at step {self.state.step}); train again with a lower lr than {self.config.lr:g}, into "
                            "a new out", params=("lr", "out"))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.state.loss = loss.item()
        self.state.loss_sum, self.state.loss_steps = self.state.loss_sum + self.state.loss, self.state.loss_steps + 1

    def validate(self) -> dict[str, float]:
        """Score the validation sets, write val_per_type.csv, and save ``best.pt`` when the selection
        criterion beats the best so far. Returns the overall statistics (``evaluate_ranking``)."""
        config, state = self.config, self.state
        overall, per_type = evaluate_ranking(self.model, self.val_set, self.device, config.batch_sets * 2,
                                             config.val_sets, config.workers, self.human["val"])
        write_csv(self.run_dir / "val_per_type.csv", ("distortion", "sets", "srcc", "pair_accuracy"),
                  [{**row, "srcc": f"{row['srcc']:.4f}", "pair_accuracy": f"{row['pair_accuracy']:.4f}"}
                   for row in per_type])
        criterion = selection_criterion(overall)
        if state.best_srcc is None or criterion > state.best_srcc:
            state.best_srcc = criterion
            self.save(self.best_path)
        state.last_val = overall
        return overall

    def save(self, path: Path) -> None:
        """Save the run's state to ``path`` (``last.pt`` or ``best.pt``; the main process only)."""
        if self.info.is_main:
            state = self.state
            save_checkpoint(path, checkpoint_payload(self.model, self.optimizer, self.scheduler, state.step,
                                                     self.config, state.metrics, state.best_srcc, state.total_steps,
                                                     (state.loss_sum, state.loss_steps)))

    def finish(self) -> None:
        """After the last step: ``best.pt`` (the last weights when nothing was validated) and, with
        human targets, its calibrated output scale."""
        if not self.info.is_main:
            return
        if self.val_set is None or not self.best_path.exists():
            self.save(self.best_path)
        if self.human["train"][0] is not None:
            _calibrate_checkpoint(self.best_path, self.train_set, self.human["train"][0], self.device, self.config)


class _ProgressMeter(Callback):
    """Times the steps (sets per second) and shows speed and loss on the progress bar."""

    def __init__(self, run: RankRun):
        self.run = run

    def on_step_end(self, state: TrainState) -> None:
        self.run.speed.add(state.seconds)
        self.run.bar.set_postfix(loss=f"{state.loss:.4f}", sets_s=f"{self.run.speed.window_rate():.1f}")
        self.run.bar.update(1)


class _MetricsLog(Callback):
    """Every ``log_every`` steps and at checkpoints, a metrics.csv row: the mean loss and speed since
    the previous row, and at checkpoints the validation (main process)."""

    def __init__(self, run: RankRun):
        self.run = run

    def on_step_end(self, state: TrainState) -> None:
        run = self.run
        checkpoint = run.is_checkpoint_step(state.step)
        if state.step % run.config.log_every and not checkpoint:
            return
        row = {"step": state.step, "epoch": round(state.step / run.per_epoch, 3),
               "loss": round(state.loss_sum / state.loss_steps, 6), "lr": f"{run.optimizer.param_groups[0]['lr']:.3g}",
               "sets_per_s": round(run.speed.window_rate(), 2), "val_srcc": None, "val_pair_accuracy": None}
        if checkpoint and run.val_set is not None and run.info.is_main:
            row.update(self.validation_columns(state.step, run.validate()))
        state.metrics.append(row)
        state.loss_sum, state.loss_steps = 0.0, 0
        run.speed.reset_window()
        if run.info.is_main:
            write_csv(run.run_dir / "metrics.csv", METRIC_COLUMNS, state.metrics)

    def validation_columns(self, step: int, overall: dict[str, float]) -> dict[str, float]:
        """The row's validation columns; also printed above the progress bar."""
        columns = {"val_srcc": round(overall["srcc"], 4), "val_pair_accuracy": round(overall["pair_accuracy"], 4)}
        human_text = ""
        if "target_srcc" in overall:
            columns["val_target_srcc"] = round(overall["target_srcc"], 4)
            human_text = f", SRCC with human targets {overall['target_srcc']:.4f}"
        self.run.bar.write(f"step {step}: val SRCC {overall['srcc']:.4f}, pair accuracy "
                           f"{overall['pair_accuracy']:.4f}{human_text}")
        return columns


class _Checkpoints(Callback):
    """``last.pt`` at every checkpoint step, and on Ctrl-C (at the last finished step)."""

    def __init__(self, run: RankRun):
        self.run = run

    def on_step_end(self, state: TrainState) -> None:
        if self.run.is_checkpoint_step(state.step):
            self.run.save(self.run.last_path)

    def on_interrupt(self, state: TrainState) -> None:
        self.run.save(self.run.last_path)


class _Curves(Callback):
    """curves.png and report.html (main process): at checkpoints, at most every ``CURVES_EVERY_S``
    seconds, always at the last step and on Ctrl-C."""

    def __init__(self, run: RankRun):
        self.run = run
        self.drawn = time.monotonic()

    def on_step_end(self, state: TrainState) -> None:
        if (self.run.is_checkpoint_step(state.step)
                and (state.step == state.total_steps or time.monotonic() - self.drawn > CURVES_EVERY_S)):
            self.draw(state)

    def on_interrupt(self, state: TrainState) -> None:
        self.draw(state)

    def draw(self, state: TrainState) -> None:
        if self.run.info.is_main:
            plot_curves(state.metrics, self.run.run_dir / "curves.png")
            write_train_report(self.run.run_dir, state.metrics)
            self.drawn = time.monotonic()


def _make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int):
    """Adam's learning rate over the run: cosine decay to 1 % of ``lr``, or constant."""
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps, eta_min=config.lr * 0.01)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)



def _human_targets(config: TrainConfig, train_set: Dataset, val_set: Dataset | None,
                   report: bool) -> dict[str, Any]:
    """Target matrices for the train set (mos, noise) and the val set (mos), or Nones without --targets."""
    if config.targets is None:
        return {"train": (None, None), "val": None}
    table = load_targets(TARGET_SETS[config.targets])
    names = train_set.distortion_names
    untargeted = coverage(names, table)
    if report and untargeted:
        print(f"--targets {config.targets}: no human target for {', '.join(untargeted)} (only their "
              "pristine image is ranked against other sets)", file=sys.stderr)
    val = target_matrix(val_set.distortion_names, table)[0] if val_set is not None else None
    return {"train": target_matrix(names, table), "val": val}


def _calibrate_checkpoint(path: Path, dataset: Dataset, targets: np.ndarray, device: torch.device,
                          config: TrainConfig) -> None:
    """Add the fitted raw -> MOS scale to the checkpoint at ``path`` (weights unchanged)."""
    from rankiqa.models import model_from_checkpoint

    payload = load_checkpoint(path, map_location=device)
    model = model_from_checkpoint(payload).to(device)
    payload["calibration"] = {**calibrate(model, dataset, targets, device, config.batch_sets * 2, config.workers),
                              "targets": config.targets}
    save_checkpoint(path, payload)


def _progress_bar(enabled: bool, initial: int, total: int):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, unit="step", dynamic_ncols=True, file=sys.stderr)
