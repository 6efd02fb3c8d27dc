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
Launched by ``torchrun`` (``WORLD_SIZE`` > 1), it trains with DistributedDataParallel: each process
takes its own ``batch_sets`` sets per step (gloo on CPU, nccl on GPU).
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import signal
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.distributed as dist
from scipy.stats import rankdata
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from rankiqa.atomic import atomic_path, write_text_atomic
from rankiqa.calibration import TARGET_SETS, coverage, fit_scale, load_targets, target_matrix
from rankiqa.checkpoint import check_entries, check_state_dict, first_line, load_checkpoint, save_checkpoint
from rankiqa.devices import loader_start_method, resolve_device
from rankiqa.errors import UserError
from rankiqa.losses import (batch_ranking_loss, pairwise_ranking_loss, ranked_contrastive_loss, ranked_triplet_loss,
                            target_margins, target_ranking_loss, target_regression_loss)
from rankiqa.models import create_model, get_backbone
from rankiqa.report import write_train_report
from rankiqa.seeding import stable_seed

LOSSES = ("batch-ranking", "pairwise", "contrastive", "triplet")
TARGET_LOSSES = ("rank", "regression")
TARGET_MARGIN_FLOOR = 0.2  # with --target-margins: smallest within-set margin, as a share of --margin
SCHEDULES = ("cosine", "constant")
DEFAULT_STEPS = 1000
# options that may differ between a run and its --resume (they do not change the result); the run
# folder itself is not an option of the run: it may be spelled differently or moved
RESUMABLE_CHANGES = frozenset({"resume", "workers", "device", "threads", "out"})
PATH_OPTIONS = frozenset({"data", "pristine", "val_data", "val_pristine"})
CURVES_EVERY_S = 60.0  # redraw curves.png at checkpoints at most this often (matplotlib costs ~1 s)
# Testing hook: with this variable set to N, the process SIGKILLs itself right after step N, so a
# test can check that --resume after `kill -9` matches an uninterrupted run without racing a timer.
KILL_AT_STEP_ENV = "RANKIQA_TEST_KILL_AT_STEP"


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
            raise UserError("give exactly one of --data (a generated folder) or --pristine (a folder of photos)")
        if self.val_data is not None and self.val_pristine is not None:
            raise UserError("give at most one of --val-data or --val-pristine")
        if self.steps is not None and self.epochs is not None:
            raise UserError(f"give at most one of --steps ({self.steps}) or --epochs ({self.epochs})")
        get_backbone(self.backbone)
        if self.loss not in LOSSES:
            raise UserError(f"--loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.schedule not in SCHEDULES:
            raise UserError(f"--schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise UserError(f"--device must be auto, cpu or cuda, got {self.device!r}")
        for name in ("batch_sets", "patch", "val_every", "log_every"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        for name in ("steps", "epochs", "val_sets", "threads", "max_side"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.workers < 0:
            raise UserError(f"--workers must be >= 0, got {self.workers}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise UserError(f"--val-fraction must be in [0, 1), got {self.val_fraction}")
        if self.targets is not None and self.targets not in TARGET_SETS:
            raise UserError(f"--targets must be one of {', '.join(TARGET_SETS)}, got {self.targets!r}")
        if self.target_loss not in TARGET_LOSSES:
            raise UserError(f"--target-loss must be one of {', '.join(TARGET_LOSSES)}, got {self.target_loss!r}")
        if self.target_margins and (self.targets is None or self.loss != "batch-ranking"):
            raise UserError("--target-margins needs --targets and --loss batch-ranking")
        if self.targets is not None and self.loss == "pairwise":
            raise UserError("--targets needs --loss batch-ranking, contrastive or triplet (not pairwise)")
        if self.target_weight < 0 or self.target_scale <= 0:
            raise UserError(f"--target-weight must be >= 0 and --target-scale > 0, got {self.target_weight}, "
                            f"{self.target_scale}")
        if self.lr <= 0 or self.margin < 0:
            raise UserError(f"--lr must be > 0 and --margin >= 0, got lr={self.lr}, margin={self.margin}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Inverse of ``to_dict``; unknown keys are an error."""
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise UserError(f"unknown training option(s): {', '.join(unknown)}")
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


# --------------------------------------------------------------------------------------------
# pure pieces: data order, objective, validation statistics


def steps_per_epoch(n_sets: int, batch_sets: int, world_size: int = 1) -> int:
    """Optimiser steps in one pass over ``n_sets`` sets (incomplete last batch dropped; at least 1)."""
    return max(1, n_sets // (batch_sets * world_size))


def batch_indices(n_sets: int, batch_sets: int, step: int, seed: int, rank: int = 0, world_size: int = 1) -> list[int]:
    """Set indices this process trains on at ``step``: a pure function of (seed, step).

    Each epoch is a seeded permutation cut into global batches of ``batch_sets * world_size``;
    process ``rank`` takes every ``world_size``-th entry of its global batch. Datasets smaller than
    a global batch are cycled.
    """
    per_epoch = steps_per_epoch(n_sets, batch_sets, world_size)
    epoch, position = divmod(step, per_epoch)
    generator = torch.Generator().manual_seed(stable_seed(seed, "order", epoch))
    order = torch.randperm(n_sets, generator=generator)
    global_batch = batch_sets * world_size
    if n_sets < global_batch:
        order = order.repeat(math.ceil(global_batch / n_sets))
    chunk = order[position * global_batch:(position + 1) * global_batch]
    return chunk[rank::world_size].tolist()


def flatten_sets(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """Collated sets -> per-image tensors: images (B*L, 3, P, P), levels, reference ids, distortion ids."""
    images = batch["images"]
    sets, per_set = images.shape[:2]
    return (
        images.reshape(sets * per_set, *images.shape[2:]),
        batch["levels"].reshape(-1),
        torch.as_tensor(batch["reference_id"]).repeat_interleave(per_set),
        torch.as_tensor(batch["distortion_id"]).repeat_interleave(per_set),
    )


class SiameseRanker(nn.Module):
    """One shared quality model + a ranking objective; ``forward(batch)`` returns the scalar loss.

    Wrapping the whole objective in one module keeps a single forward per step, which is what
    DistributedDataParallel expects even for the two-pass ``pairwise`` loss. With ``targets``
    ((types, 6) human MOS per distortion id and level, NaN = none) and ``target_noise`` (their
    standard deviations), ``target_weight`` times a human-target term is added: images of
    different sets are ranked by their targets (``target_loss="rank"``) or regressed onto them.
    ``target_margins``: within-set pairs with targets get margins that follow the targets
    (``rankiqa.losses.target_margins``) instead of the uniform ``margin``.
    """

    def __init__(self, model: nn.Module, loss: str, margin: float, cross_reference: bool = False,
                 targets: np.ndarray | None = None, target_noise: np.ndarray | None = None,
                 target_loss: str = "rank", target_weight: float = 1.0, target_scale: float = 1.5,
                 target_margins: bool = False):
        super().__init__()
        self.model = model
        self.loss = loss
        self.margin = margin
        self.cross_reference = cross_reference
        self.target_loss, self.target_weight, self.target_scale = target_loss, target_weight, target_scale
        self.target_margins = target_margins
        self.targets = None if targets is None else torch.as_tensor(targets, dtype=torch.float32)
        self.target_noise = None if target_noise is None else torch.as_tensor(target_noise, dtype=torch.float32)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        images, levels, reference_ids, distortion_ids = flatten_sets(batch)
        if self.loss == "pairwise":
            set_levels = batch["levels"]
            set_index, better, worse = torch.nonzero(set_levels[:, :, None] < set_levels[:, None, :], as_tuple=True)
            per_set = set_levels.shape[1]
            score_better = self.model(images[set_index * per_set + better])
            score_worse = self.model(images[set_index * per_set + worse])
            return pairwise_ranking_loss(score_better, score_worse, self.margin)
        scores = self.model(images)
        image_targets = None if self.targets is None else \
            self.targets[distortion_ids.cpu(), levels.cpu()].to(scores.device)
        if self.loss == "batch-ranking":
            margin = self.margin
            if image_targets is not None and self.target_margins:
                margin = target_margins(image_targets, self.margin, self.target_scale,
                                        TARGET_MARGIN_FLOOR * self.margin)
            objective = batch_ranking_loss(scores, reference_ids, distortion_ids, levels, margin,
                                           self.cross_reference)
        else:
            set_scores = scores.view(batch["levels"].shape)
            ranked = ranked_contrastive_loss if self.loss == "contrastive" else ranked_triplet_loss
            objective = ranked(set_scores, batch["levels"], self.margin)
        if image_targets is None or self.target_weight == 0:
            return objective
        return objective + self.target_weight * self.human_term(scores, image_targets, batch, distortion_ids.cpu(),
                                                                levels.cpu())

    def human_term(self, scores: torch.Tensor, targets: torch.Tensor, batch: dict[str, torch.Tensor],
                   distortion_ids: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
        """The human-target part of the loss for one batch (see the class docstring); ``targets``: (N,)
        MOS of the batch's images, NaN where none."""
        if self.target_loss == "regression":
            return target_regression_loss(scores, targets, self.target_scale)
        sets, per_set = batch["levels"].shape
        set_ids = torch.arange(sets, device=scores.device).repeat_interleave(per_set)
        noise = self.target_noise[distortion_ids, levels].to(scores.device)
        return target_ranking_loss(scores, targets, noise, set_ids, self.target_scale)


def set_rank_statistics(set_scores: np.ndarray, set_levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per set: SRCC between score and quality order (-level; 1 = perfect) and pair accuracy.

    ``set_scores``, ``set_levels``: (S, L). Pair accuracy = fraction of pairs with different
    levels where the less distorted image scores higher (ties count 1/2). A set with constant
    scores has SRCC 0.
    """
    score_ranks = rankdata(set_scores, axis=1)
    quality_ranks = rankdata(-set_levels, axis=1)
    a = score_ranks - score_ranks.mean(axis=1, keepdims=True)
    b = quality_ranks - quality_ranks.mean(axis=1, keepdims=True)
    denominator = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    srcc = np.divide((a * b).sum(axis=1), denominator, out=np.zeros(len(a)), where=denominator > 0)
    ordered = set_levels[:, :, None] < set_levels[:, None, :]
    difference = set_scores[:, :, None] - set_scores[:, None, :]
    credit = (difference > 0) + 0.5 * (difference == 0)
    accuracy = (credit * ordered).sum(axis=(1, 2)) / ordered.sum(axis=(1, 2))
    return srcc, accuracy


@torch.no_grad()
def evaluate_ranking(model: nn.Module, dataset: Dataset, device: torch.device, batch_sets: int = 8,
                     max_sets: int | None = None, workers: int = 0,
                     targets: np.ndarray | None = None) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Score every set of ``dataset`` (or ``max_sets`` evenly spaced ones) in eval mode.

    Returns overall ``{"srcc", "pair_accuracy", "sets"}`` (means over sets) and one row per
    distortion type (``distortion, sets, srcc, pair_accuracy``), sorted by name. With ``targets``
    ((types, 6) human MOS of the dataset's distortion names, NaN = none), overall also has
    ``target_srcc``: the SRCC between score and target over every distorted image with a target,
    across types and photos (NaN when fewer than 3 such images).
    """
    count = len(dataset)
    indices = list(range(count)) if max_sets is None or max_sets >= count else \
        np.linspace(0, count - 1, max_sets).round().astype(int).tolist()
    scores, levels, type_ids = score_sets(model, dataset, device, indices, batch_sets, workers)
    srcc, accuracy = set_rank_statistics(scores, levels)
    per_type = [
        {"distortion": dataset.distortion_names[type_id], "sets": int((type_ids == type_id).sum()),
         "srcc": float(srcc[type_ids == type_id].mean()), "pair_accuracy": float(accuracy[type_ids == type_id].mean())}
        for type_id in sorted(set(type_ids.tolist()), key=lambda i: dataset.distortion_names[i])
    ]
    overall = {"srcc": float(srcc.mean()), "pair_accuracy": float(accuracy.mean()), "sets": len(indices)}
    if targets is not None:
        overall["target_srcc"] = target_agreement(scores, levels, type_ids, targets)
    return overall, per_type


@torch.no_grad()
def score_sets(model: nn.Module, dataset: Dataset, device: torch.device, indices: Sequence[int], batch_sets: int = 8,
               workers: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Eval-mode scores of the sets at ``indices``: (S, L) scores, (S, L) levels and (S,) distortion ids."""
    was_training = model.training
    model.eval()
    scores, levels, type_ids = [], [], []
    for batch in DataLoader(Subset(dataset, list(indices)), batch_size=batch_sets, num_workers=workers,
                            multiprocessing_context=loader_start_method(workers)):
        images = batch["images"].to(device)
        sets, per_set = images.shape[:2]
        scores.append(model(images.flatten(0, 1)).view(sets, per_set).float().cpu().numpy())
        levels.append(batch["levels"].numpy())
        type_ids.append(torch.as_tensor(batch["distortion_id"]).numpy())
    model.train(was_training)
    return np.concatenate(scores), np.concatenate(levels), np.concatenate(type_ids)


CALIBRATION_SETS = 240  # training sets scored to fit the calibrated output scale


def calibrate(model: nn.Module, dataset: Dataset, targets: np.ndarray, device: torch.device, batch_sets: int = 8,
              workers: int = 0, max_sets: int = CALIBRATION_SETS) -> dict[str, Any]:
    """Fit the raw-score -> MOS map (``rankiqa.calibration.fit_scale``) on up to ``max_sets`` evenly
    spaced sets of ``dataset`` (the training sets: never the validation photos), every image with a
    target (pristine included)."""
    count = len(dataset)
    indices = np.linspace(0, count - 1, min(count, max_sets)).round().astype(int).tolist()
    scores, levels, type_ids = score_sets(model, dataset, device, indices, batch_sets, workers)
    image_targets = targets[type_ids[:, None], levels]
    return {**fit_scale(scores.ravel(), image_targets.ravel()), "fit_sets": len(indices)}

def target_agreement(set_scores: np.ndarray, set_levels: np.ndarray, type_ids: np.ndarray, targets: np.ndarray) -> float:
    """SRCC between scores and human targets over the distorted images (level >= 1) that have one.

    ``set_scores``, ``set_levels``: (S, L); ``type_ids``: (S,) rows of ``targets`` ((types, 6)).
    """
    from scipy.stats import spearmanr

    image_targets = targets[type_ids[:, None], set_levels]
    keep = np.isfinite(image_targets) & (set_levels >= 1)
    if keep.sum() < 3:
        return float("nan")
    return float(spearmanr(set_scores[keep], image_targets[keep])[0])


# --------------------------------------------------------------------------------------------
# datasets


def build_datasets(config: TrainConfig) -> tuple[Dataset, Dataset | None]:
    """Train and validation ``RankedSets`` from the config (validation may be None)."""
    from rankiqa.data import RankedSets, split_references

    def ranked(source: str, option: str, seed: int, references: list[str] | None = None) -> Dataset:
        _check_folder(source, option)
        if option.endswith("-data"):
            _check_manifest(source, option)
        photos = {} if option.endswith("-data") else {"max_side": config.max_side, "distort_crops": config.distort_crops}
        dataset = RankedSets(source, distortions=list(config.distortions) if config.distortions else None,
                             patch_size=config.patch, seed=seed, references=references, **photos)
        if len(dataset) == 0:
            raise UserError(f"{option} {source}: no ranked sets found (empty folder?)")
        if references is None and os.environ.get("RANK", "0") == "0":  # each left-out photo reported once
            for reference, reason in dataset.skipped:
                print(f"skipped {Path(source) / reference}: {reason}", file=sys.stderr)
        return dataset

    source, option = (config.data, "--data") if config.data else (config.pristine, "--pristine")
    full = ranked(source, option, config.seed)
    upscaled = full.upscale_warning()
    if upscaled and os.environ.get("RANK", "0") == "0":
        print(f"Warning: --patch {config.patch}: {upscaled}", file=sys.stderr)
    if config.val_data or config.val_pristine:
        val_source, val_option = (config.val_data, "--val-data") if config.val_data else (config.val_pristine, "--val-pristine")
        return full, ranked(val_source, val_option, config.seed)
    if config.val_fraction == 0:
        return full, None
    train_refs, val_refs = split_references(full.references, config.val_fraction, config.seed)
    if not train_refs or not val_refs:
        raise UserError(f"{option} {source}: {len(full.references)} reference(s) cannot be split with "
                        f"--val-fraction {config.val_fraction}; add images or use --val-fraction 0")
    return ranked(source, option, config.seed, train_refs), ranked(source, option, config.seed, val_refs)


def _check_folder(path: str, option: str) -> None:
    if not Path(path).exists():
        raise UserError(f"{option} {path}: folder not found")
    if not Path(path).is_dir():
        raise UserError(f"{option} {path}: not a folder")


def _check_manifest(path: str, option: str) -> None:
    """A generated OUT_DIR must hold manifest.csv (sharded runs write it with ``--merge``)."""
    if (Path(path) / "manifest.csv").is_file():
        return
    if any(Path(path).glob("manifest-shard-*-of-*.csv")):
        raise UserError(f"{option} {path}: no manifest.csv, only shard manifests; join them with "
                        f"`rankiqa generate --merge {path}`")
    raise UserError(f"{option} {path}: no manifest.csv, not a generated folder (make one with `rankiqa generate`, "
                    f"then `rankiqa generate --merge` for sharded runs); for a folder of photos use "
                    f"{option.replace('data', 'pristine')}")


# --------------------------------------------------------------------------------------------
# the loop


@dataclass
class _Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _setup_distributed(device_name: str) -> tuple[_Distributed, torch.device]:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    info = _Distributed(int(os.environ.get("RANK", "0")), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    use_cuda = resolve_device(device_name).startswith("cuda")
    if use_cuda:
        device = torch.device(device_name if device_name.startswith("cuda:") and world_size == 1 else f"cuda:{info.local_rank}")
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return info, device


def _set_threads(config: TrainConfig) -> None:
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    elif "OMP_NUM_THREADS" not in os.environ:
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))


def _total_steps(config: TrainConfig, n_sets: int, world_size: int) -> int:
    if config.steps is not None:
        return config.steps
    if config.epochs is not None:
        return config.epochs * steps_per_epoch(n_sets, config.batch_sets, world_size)
    return DEFAULT_STEPS


def _make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int):
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps, eta_min=config.lr * 0.01)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


def _loader(dataset: Dataset, config: TrainConfig, start: int, stop: int, info: _Distributed) -> Iterator[dict]:
    """Batches for steps ``start..stop-1``, one DataLoader per epoch (so ``set_epoch`` reaches workers)."""
    n_sets = len(dataset)
    per_epoch = steps_per_epoch(n_sets, config.batch_sets, info.world_size)
    step = start
    while step < stop:
        epoch = step // per_epoch
        epoch_stop = min(stop, (epoch + 1) * per_epoch)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        batches = [batch_indices(n_sets, config.batch_sets, s, config.seed, info.rank, info.world_size)
                   for s in range(step, epoch_stop)]
        loader = DataLoader(dataset, batch_sampler=batches, num_workers=config.workers,
                            multiprocessing_context=loader_start_method(config.workers),
                            generator=torch.Generator().manual_seed(stable_seed(config.seed, "loader", epoch)))
        yield from loader
        step = epoch_stop


def _checkpoint_payload(model: nn.Module, optimizer, scheduler, step: int, config: TrainConfig, metrics: list,
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


def _restore(last_path: Path, config: TrainConfig, device: torch.device, model: nn.Module, optimizer,
             scheduler) -> tuple[int, list[dict[str, Any]], float | None, tuple[float, int]]:
    """Load ``last.pt`` into model, optimiser, scheduler and the RNG; returns (step, metrics, best SRCC,
    loss window)."""
    payload = load_checkpoint(last_path, map_location=device)
    _check_train_payload(payload, str(last_path))
    differences = _config_differences(payload["config"], config)
    if differences:
        raise UserError(f"--resume {last_path}: options differ from the saved run: {', '.join(differences)}")
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


METRIC_COLUMNS = ("step", "epoch", "loss", "lr", "sets_per_s", "val_srcc", "val_pair_accuracy", "val_target_srcc")


def _write_csv(path: Path, columns: Sequence[str], rows: list[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows({k: ("" if row.get(k) is None else row[k]) for k in columns} for row in rows)
    with _write_errors_name(path):
        write_text_atomic(path, buffer.getvalue())


@contextmanager
def _write_errors_name(path: Path) -> Iterator[None]:
    """Turn a failed write (disk full, read-only, ...) into one ``UserError`` line naming ``path``
    (the OS error alone names no file, or the temporary one); the previous file is unchanged."""
    try:
        yield
    except OSError as exc:
        raise UserError(f"{path}: could not write: {exc.strerror or exc} (the previous file, if any, is "
                        "unchanged)") from None


def plot_curves(metrics: list[dict[str, Any]], path: Path) -> None:
    """Write ``curves.png``: training loss and validation SRCC / pair accuracy (and, with human
    targets, the SRCC with them) against step."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 3.6))  # an explicit Agg canvas: the caller's pyplot backend is untouched
    FigureCanvasAgg(figure)
    loss_axis, val_axis = figure.subplots(1, 2)
    rows = [r for r in metrics if r.get("loss") is not None]
    loss_axis.plot([r["step"] for r in rows], [r["loss"] for r in rows])
    loss_axis.set(xlabel="step", ylabel="training loss", title="loss")
    val_rows = [r for r in metrics if r.get("val_srcc") is not None]
    val_axis.plot([r["step"] for r in val_rows], [r["val_srcc"] for r in val_rows], marker="o", label="SRCC")
    val_axis.plot([r["step"] for r in val_rows], [r["val_pair_accuracy"] for r in val_rows], marker="s",
                  label="pair accuracy")
    human_rows = [r for r in val_rows if r.get("val_target_srcc") is not None]
    if human_rows:  # --targets: agreement with the human targets across types and photos
        val_axis.plot([r["step"] for r in human_rows], [r["val_target_srcc"] for r in human_rows], marker="^",
                      label="SRCC with human targets")
    val_axis.set(xlabel="step", title="validation (higher is better)")
    val_axis.legend()
    figure.tight_layout()
    with _write_errors_name(path), atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)


def train(config: TrainConfig, train_set: Dataset | None = None, val_set: Dataset | None = None,
          progress: bool = True) -> TrainResult:
    """Run (or resume) rank pre-training into ``config.out``; datasets default to ``build_datasets``.

    Ctrl-C saves ``last.pt`` at the last finished step and returns with ``interrupted=True``.
    """
    info, device = _setup_distributed(config.device)
    _set_threads(config)
    run_dir = Path(config.out)
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"
    if last_path.exists() and not config.resume:
        raise UserError(f"--out {run_dir}: already holds a run (last.pt); pass --resume or choose another folder")
    if train_set is None:
        train_set, val_set = build_datasets(config)
    total_steps = _total_steps(config, len(train_set), info.world_size)

    resuming = config.resume and last_path.exists()
    torch.manual_seed(config.seed)
    # resumed weights come from last.pt: no ImageNet weights to load (or download) first
    model = create_model(config.backbone, config.pretrained and not resuming,
                         **({"dropout": config.dropout} if config.dropout else {}))
    model.to(device)
    human = _human_targets(config, train_set, val_set, progress and info.is_main)
    ranker: nn.Module = SiameseRanker(model, config.loss, config.margin, config.cross_reference,
                                      *human["train"], config.target_loss, config.target_weight, config.target_scale,
                                      config.target_margins)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = _make_scheduler(optimizer, config, total_steps)
    step, metrics, best_srcc, (window_loss, window_steps) = 0, [], None, (0.0, 0)
    if resuming:
        step, metrics, best_srcc, (window_loss, window_steps) = _restore(last_path, config, device, model,
                                                                          optimizer, scheduler)
    if info.rank:
        torch.manual_seed(stable_seed(config.seed, "rank", info.rank, step))
    if info.world_size > 1:
        ranker = nn.parallel.DistributedDataParallel(ranker, device_ids=[device.index] if device.type == "cuda" else None)
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        resolved = {**config.to_dict(), "total_steps": total_steps, "world_size": info.world_size,
                    "train_sets": len(train_set), "val_sets_available": len(val_set) if val_set is not None else 0}
        with _write_errors_name(run_dir / "config.json"):
            write_text_atomic(run_dir / "config.json", json.dumps(resolved, indent=2) + "\n")

    def save(path: Path) -> None:
        if info.is_main:
            save_checkpoint(path, _checkpoint_payload(model, optimizer, scheduler, step, config, metrics,
                                                      best_srcc, total_steps, (window_loss, window_steps)))

    def validate() -> dict[str, float]:
        nonlocal best_srcc
        overall, per_type = evaluate_ranking(model, val_set, device, config.batch_sets * 2, config.val_sets,
                                             config.workers, human["val"])
        _write_csv(run_dir / "val_per_type.csv", ("distortion", "sets", "srcc", "pair_accuracy"),
                   [{**row, "srcc": f"{row['srcc']:.4f}", "pair_accuracy": f"{row['pair_accuracy']:.4f}"}
                    for row in per_type])
        criterion = selection_criterion(overall)
        if best_srcc is None or criterion > best_srcc:
            best_srcc = criterion
            save(best_path)
        return overall

    per_epoch = steps_per_epoch(len(train_set), config.batch_sets, info.world_size)
    bar = _progress_bar(progress and info.is_main, step, total_steps)
    window_time, timed_steps, train_time, trained_steps = 0.0, 0, 0.0, 0
    last_val: dict[str, float] = {}
    interrupted = False
    last_plot = time.monotonic()
    ranker.train()
    kill_at_step = int(os.environ.get(KILL_AT_STEP_ENV, "0"))
    tick = time.perf_counter()
    try:
        for batch in _loader(train_set, config, step, total_steps, info):
            batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            loss = ranker(batch)
            if not torch.isfinite(loss):
                save(last_path)
                raise UserError(f"training loss became {loss.item()} at step {step + 1} (saved {last_path} at step "
                                f"{step}); train again with a lower --lr than {config.lr:g}, into a new --out")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            now = time.perf_counter()
            window_loss, window_steps = window_loss + loss.item(), window_steps + 1
            window_time, timed_steps = window_time + now - tick, timed_steps + 1
            train_time, trained_steps = train_time + now - tick, trained_steps + 1
            sets_per_s = timed_steps * config.batch_sets * info.world_size / max(window_time, 1e-9)
            bar.set_postfix(loss=f"{loss.item():.4f}", sets_s=f"{sets_per_s:.1f}")
            bar.update(1)
            validate_now = val_set is not None and info.is_main and (step % config.val_every == 0 or step == total_steps)
            checkpoint_now = step % config.val_every == 0 or step == total_steps
            if step % config.log_every == 0 or checkpoint_now:
                row = {"step": step, "epoch": round(step / per_epoch, 3), "loss": round(window_loss / window_steps, 6),
                       "lr": f"{optimizer.param_groups[0]['lr']:.3g}", "sets_per_s": round(sets_per_s, 2),
                       "val_srcc": None, "val_pair_accuracy": None}
                if validate_now:
                    last_val = validate()
                    row.update(val_srcc=round(last_val["srcc"], 4), val_pair_accuracy=round(last_val["pair_accuracy"], 4))
                    human_text = ""
                    if "target_srcc" in last_val:
                        row["val_target_srcc"] = round(last_val["target_srcc"], 4)
                        human_text = f", SRCC with human targets {last_val['target_srcc']:.4f}"
                    bar.write(f"step {step}: val SRCC {last_val['srcc']:.4f}, pair accuracy "
                              f"{last_val['pair_accuracy']:.4f}{human_text}")
                metrics.append(row)
                window_loss, window_steps, window_time, timed_steps = 0.0, 0, 0.0, 0
                if info.is_main:
                    _write_csv(run_dir / "metrics.csv", METRIC_COLUMNS, metrics)
            if checkpoint_now:
                save(last_path)
                if info.is_main and (step == total_steps or time.monotonic() - last_plot > CURVES_EVERY_S):
                    plot_curves(metrics, run_dir / "curves.png")
                    write_train_report(run_dir, metrics)
                    last_plot = time.monotonic()
            if step == kill_at_step:
                os.kill(os.getpid(), signal.SIGKILL)
            tick = time.perf_counter()
    except KeyboardInterrupt:
        interrupted = True
        save(last_path)
        if info.is_main:
            plot_curves(metrics, run_dir / "curves.png")
            write_train_report(run_dir, metrics)
        bar.write(f"interrupted: saved {last_path} at step {step}; continue with --resume")
    finally:
        bar.close()
    if not interrupted:
        if info.is_main and (val_set is None or not best_path.exists()):
            save(best_path)
        if info.is_main and human["train"][0] is not None:
            _calibrate_checkpoint(best_path, train_set, human["train"][0], device, config)
    if info.world_size > 1:
        dist.barrier()
        dist.destroy_process_group()
    sets_per_second = trained_steps * config.batch_sets * info.world_size / train_time if train_time else 0.0
    return TrainResult(run_dir, step, total_steps, best_srcc, last_val, sets_per_second, interrupted, info.rank)


def selection_criterion(overall: dict[str, float]) -> float:
    """What best.pt maximises: the within-set SRCC, or with human targets the mean of it and the
    cross-type SRCC with the targets (both matter to a user scoring a folder)."""
    target_srcc = overall.get("target_srcc", float("nan"))
    return overall["srcc"] if not math.isfinite(target_srcc) else (overall["srcc"] + target_srcc) / 2


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
