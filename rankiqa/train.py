"""Siamese rank pre-training: ranked distortion sets -> a quality model whose score orders them.

One step draws ``batch_sets`` (reference, distortion) sets of 6 images (pristine + levels 1..5),
scores them with ONE shared model and applies the chosen ranking loss (``rankiqa.losses``):

* ``batch-ranking`` — one forward pass over the batch, hinge on all 15 ordered pairs of every set
  (RankIQA's efficient Siamese back-propagation);
* ``pairwise`` — the naive Siamese: the same 15 pairs, each forwarded as (better, worse) in two
  passes (5x more images forwarded, same pairs compared);
* ``contrastive`` / ``triplet`` — ``ranked_contrastive_loss`` / ``ranked_triplet_loss``.

Everything a run needs is in ``TrainConfig``; a run folder holds ``config.json``, ``metrics.csv``,
``val_per_type.csv``, ``last.pt``, ``best.pt``, ``curves.png`` and ``report.html`` (rewritten with
``curves.png``). Data order is a pure function of (seed, step), so ``resume`` after a crash replays
exactly what an uninterrupted run would do.
The run is one loop (``rankiqa.training.loop``) over a step, a validation and a checkpoint unit,
with logging, checkpoints and plots as callbacks; ``train(..., callbacks=[...])`` adds more.
Launched by ``torchrun`` (``WORLD_SIZE`` > 1), it trains with DistributedDataParallel: each process
takes its own ``batch_sets`` sets per step (gloo on CPU, nccl on GPU).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch.distributed as dist
from torch.utils.data import Dataset

from rankiqa.calibration import TARGET_SETS
from rankiqa.devices import check_device
from rankiqa.errors import InvalidOption, UnknownName, check_choice
from rankiqa.models import get_backbone
from rankiqa.training.data import DEFAULT_STEPS, batch_indices, build_datasets, steps_per_epoch
from rankiqa.training.evaluation import (CALIBRATION_SETS, calibrate, evaluate_ranking, score_sets,
                                        selection_criterion, set_rank_statistics, target_agreement)
from rankiqa.training.loop import Callback, run_loop
from rankiqa.training.objective import TARGET_MARGIN_FLOOR, SiameseRanker, flatten_sets
from rankiqa.training.outputs import CURVES_EVERY_S, METRIC_COLUMNS, plot_curves
from rankiqa.training.run import RankRun, TrainState
from rankiqa.training.state import PATH_OPTIONS, RESUMABLE_CHANGES

__all__ = [  # this module's public names (several now live in rankiqa.training and are re-exported here)
    "CALIBRATION_SETS", "CURVES_EVERY_S", "DEFAULT_STEPS", "LOSSES", "METRIC_COLUMNS", "PATH_OPTIONS",
    "RESUMABLE_CHANGES", "SCHEDULES", "TARGET_LOSSES", "TARGET_MARGIN_FLOOR", "Callback", "SiameseRanker",
    "TrainConfig", "TrainResult", "TrainState", "batch_indices", "build_datasets", "calibrate", "evaluate_ranking",
    "flatten_sets", "plot_curves", "score_sets", "selection_criterion", "set_rank_statistics", "steps_per_epoch",
    "target_agreement", "train",
]

LOSSES = ("batch-ranking", "pairwise", "contrastive", "triplet")
TARGET_LOSSES = ("rank", "regression")
SCHEDULES = ("cosine", "constant")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a rank pre-training run. ``patch`` in pixels; ``lr`` is Adam's initial
    learning rate (``schedule`` "cosine" decays it to 1% over the run, "constant" keeps it).

    Exactly one of ``data`` (a generated OUT_DIR) or ``pristine`` (photos, distorted on the fly;
    ``max_side`` downscales them first, ``distort_crops`` distorts only the patch: much faster).
    Validation: ``val_data``/``val_pristine`` if given, else ``val_fraction`` of the references.
    ``margin`` is in score units (scores are unbounded; 1.0 puts adjacent levels ~1 apart).
    Give at most one of ``steps`` and ``epochs``; with neither, ``DEFAULT_STEPS``.
    """

    out: str
    data: str | None = None
    pristine: str | None = None
    backbone: str = "efficientnet_lite0"
    pretrained: bool = False
    loss: str = "batch-ranking"
    steps: int | None = None
    epochs: int | None = None
    lr: float = 1e-4
    weight_decay: float = 0.0
    schedule: str = "cosine"
    batch_sets: int = 4
    patch: int = 224
    margin: float = 1.0
    cross_reference: bool = False
    dropout: float = 0.0
    distortions: tuple[str, ...] | None = None
    max_side: int | None = None
    distort_crops: bool = False
    val_fraction: float = 0.1
    val_data: str | None = None
    val_pristine: str | None = None
    val_every: int = 100
    val_sets: int | None = None
    log_every: int = 10
    workers: int = 0
    device: str = "auto"
    threads: int | None = None
    seed: int = 0
    resume: bool = False
    targets: str | None = None
    target_loss: str = "rank"
    target_weight: float = 1.0
    target_scale: float = 1.5
    target_margins: bool = False

    def __post_init__(self) -> None:
        if (self.data is None) == (self.pristine is None):
            raise InvalidOption("give exactly one of data (a generated folder) or pristine (a folder of photos)",
                                params=("data", "pristine"))
        if self.val_data is not None and self.val_pristine is not None:
            raise InvalidOption("give at most one of val_data or val_pristine", params=("val_data", "val_pristine"))
        if self.steps is not None and self.epochs is not None:
            raise InvalidOption(f"give at most one of steps ({self.steps}) or epochs ({self.epochs})",
                                params=("steps", "epochs"))
        get_backbone(self.backbone)
        check_choice("loss", self.loss, LOSSES)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_device(self.device)
        for name in ("batch_sets", "patch", "val_every", "log_every"):
            if getattr(self, name) < 1:
                raise InvalidOption(f"{name} must be >= 1, got {getattr(self, name)}", params=(name,))
        for name in ("steps", "epochs", "val_sets", "threads", "max_side"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise InvalidOption(f"{name} must be >= 1, got {getattr(self, name)}", params=(name,))
        if self.workers < 0:
            raise InvalidOption(f"workers must be >= 0, got {self.workers}", params=("workers",))
        if not 0.0 <= self.val_fraction < 1.0:
            raise InvalidOption(f"val_fraction must be in [0, 1), got {self.val_fraction}", params=("val_fraction",))
        if self.targets is not None:
            check_choice("targets", self.targets, TARGET_SETS)
        check_choice("target_loss", self.target_loss, TARGET_LOSSES)
        if self.target_margins and (self.targets is None or self.loss != "batch-ranking"):
            raise InvalidOption("target_margins needs targets and loss batch-ranking",
                                params=("target_margins", "targets", "loss"))
        if self.targets is not None and self.loss == "pairwise":
            raise InvalidOption("targets needs loss batch-ranking, contrastive or triplet (not pairwise)",
                                params=("targets", "loss"))
        if self.target_weight < 0 or self.target_scale <= 0:
            raise InvalidOption(f"target_weight must be >= 0 and target_scale > 0, got {self.target_weight}, "
                                f"{self.target_scale}", params=("target_weight", "target_scale"))
        if self.lr <= 0 or self.margin < 0:
            raise InvalidOption(f"lr must be > 0 and margin >= 0, got lr={self.lr}, margin={self.margin}",
                                params=("lr", "margin"))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Inverse of ``to_dict``; unknown keys are an error."""
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise UnknownName(f"unknown training option(s): {', '.join(unknown)}")
        values = dict(values)
        if values.get("distortions") is not None:
            values["distortions"] = tuple(values["distortions"])
        return cls(**values)


@dataclass
class TrainResult:
    """What a finished (or interrupted) run reports."""

    run_dir: Path
    step: int
    total_steps: int
    best_srcc: float | None
    last_val: dict[str, float] = field(default_factory=dict)
    sets_per_second: float = 0.0
    interrupted: bool = False
    rank: int = 0


def train(config: TrainConfig, train_set: Dataset | None = None, val_set: Dataset | None = None,
          progress: bool = True, callbacks: Sequence[Callback] = ()) -> TrainResult:
    """Run (or resume) rank pre-training into ``config.out``; datasets default to ``build_datasets``.

    ``callbacks``: ``rankiqa.training.loop.Callback`` objects run after each step, after the
    built-in ones (metrics row, validation, ``last.pt``, ``curves.png``); their ``state`` is the
    run's ``TrainState``. Ctrl-C saves ``last.pt`` at the last finished step and returns with
    ``interrupted=True``.
    """
    run = RankRun.start(config, train_set, val_set, progress)
    interrupted = False
    try:
        run_loop(run.batches(), run.step, run.state, [*run.callbacks(), *callbacks])
    except KeyboardInterrupt:
        interrupted = True
        run.bar.write(f"interrupted: saved {run.last_path} at step {run.state.step}; continue with --resume")
    finally:
        run.bar.close()
    if not interrupted:
        run.finish()
    if run.info.world_size > 1:
        dist.barrier()
        dist.destroy_process_group()
    return TrainResult(run.run_dir, run.state.step, run.state.total_steps, run.state.best_srcc, run.state.last_val,
                       run.speed.rate(), interrupted, run.info.rank)
