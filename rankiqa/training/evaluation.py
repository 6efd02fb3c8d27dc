"""Validation of a ranking model on ranked sets, and the calibration of its output scale."""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
from scipy.stats import rankdata
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from rankiqa.calibration import fit_scale
from rankiqa.devices import loader_start_method


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


def selection_criterion(overall: dict[str, float]) -> float:
    """What best.pt maximises: the within-set SRCC, or with human targets the mean of it and the
    cross-type SRCC with the targets (both matter to a user scoring a folder)."""
    target_srcc = overall.get("target_srcc", float("nan"))
    return overall["srcc"] if not math.isfinite(target_srcc) else (overall["srcc"] + target_srcc) / 2
