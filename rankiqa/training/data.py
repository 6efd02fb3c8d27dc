"""Training data: the order of the sets (a pure function of seed and step) and the datasets of a run."""
from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from rankiqa.devices import loader_start_method
from rankiqa.errors import InvalidOption, UserError
from rankiqa.seeding import stable_seed
from rankiqa.training.distributed import Distributed

if TYPE_CHECKING:
    from rankiqa.train import TrainConfig

DEFAULT_STEPS = 1000


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



def build_datasets(config: TrainConfig) -> tuple[Dataset, Dataset | None]:
    """Train and validation ``RankedSets`` from the config (validation may be None)."""
    from rankiqa.data import RankedSets, split_references

    def ranked(source: str, option: str, seed: int, references: list[str] | None = None) -> Dataset:
        _check_folder(source, option)
        if option.endswith("data"):
            _check_manifest(source, option)
        photos = {} if option.endswith("data") else {"max_side": config.max_side, "distort_crops": config.distort_crops}
        dataset = RankedSets(source, distortions=list(config.distortions) if config.distortions else None,
                             patch_size=config.patch, seed=seed, references=references, **photos)
        if len(dataset) == 0:
            raise UserError(f"{option} {source}: no ranked sets found (empty folder?)", params=(option,))
        if references is None and os.environ.get("RANK", "0") == "0":  # each left-out photo reported once
            for reference, reason in dataset.skipped:
                print(f"skipped {Path(source) / reference}: {reason}", file=sys.stderr)
        return dataset

    source, option = (config.data, "data") if config.data else (config.pristine, "pristine")
    full = ranked(source, option, config.seed)
    upscaled = full.upscale_warning()
    if upscaled and os.environ.get("RANK", "0") == "0":
        print(f"Warning: --patch {config.patch}: {upscaled}", file=sys.stderr)
    if config.val_data or config.val_pristine:
        val_source, val_option = (config.val_data, "val_data") if config.val_data else (config.val_pristine, "val_pristine")
        return full, ranked(val_source, val_option, config.seed)
    if config.val_fraction == 0:
        return full, None
    train_refs, val_refs = split_references(full.references, config.val_fraction, config.seed)
    if not train_refs or not val_refs:
        raise InvalidOption(f"{option} {source}: {len(full.references)} reference(s) cannot be split with "
                            f"val_fraction {config.val_fraction}; add images or use val_fraction 0",
                            params=(option, "val_fraction"))
    return ranked(source, option, config.seed, train_refs), ranked(source, option, config.seed, val_refs)


def _check_folder(path: str, option: str) -> None:
    if not Path(path).exists():
        raise UserError(f"{option} {path}: folder not found", params=(option,))
    if not Path(path).is_dir():
        raise UserError(f"{option} {path}: not a folder", params=(option,))


def _check_manifest(path: str, option: str) -> None:
    """A generated OUT_DIR must hold manifest.csv (sharded runs write it with ``--merge``)."""
    if (Path(path) / "manifest.csv").is_file():
        return
    if any(Path(path).glob("manifest-shard-*-of-*.csv")):
        raise UserError(f"{option} {path}: no manifest.csv, only shard manifests; join them with "
                        f"`rankiqa generate --merge {path}`", params=(option,))
    photos = option.replace("data", "pristine")
    raise UserError(f"{option} {path}: no manifest.csv, not a generated folder (make one with `rankiqa generate`, "
                    f"then `rankiqa generate --merge` for sharded runs); for a folder of photos use {photos}",
                    params=(option, photos))


def total_steps(config: TrainConfig, n_sets: int, world_size: int) -> int:
    """The run's optimiser steps: ``steps``, else ``epochs`` passes, else ``DEFAULT_STEPS``."""
    if config.steps is not None:
        return config.steps
    if config.epochs is not None:
        return config.epochs * steps_per_epoch(n_sets, config.batch_sets, world_size)
    return DEFAULT_STEPS


def epoch_batches(dataset: Dataset, config: TrainConfig, start: int, stop: int, info: Distributed) -> Iterator[dict]:
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
