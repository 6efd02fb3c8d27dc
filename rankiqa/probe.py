"""Frozen-feature ridge probe: the evaluation protocol of CONTRIQUE, Re-IQA and ARNIQA, in numpy.

* Features (``image_features``): the pooled backbone features before the score head
  (``QualityModel.extract_features``) of the **whole image** at full scale and of a half-scale copy
  (area-averaged resize), concatenated: ``2 x feature_dim`` values per image. This is CONTRIQUE's
  choice; ARNIQA averages five 224-px crops per scale instead. Images whose long side exceeds
  ``MAX_SIDE`` pixels are first downscaled to it (memory), images below ``MIN_SIDE`` are refused.
* Regression (``fit_probe``): features standardised with the training part's mean and population
  std (floored at ``SCALE_FLOOR`` x the median column std, see ``standardise``), then closed-form
  ridge regression with an intercept onto the MOS (higher is better), so predictions are on the
  database's MOS scale. ``alpha`` is chosen from ``ALPHAS`` by
  ``INNER_FOLDS``-fold cross-validation over the training part's content groups (references): the
  lowest mean squared error averaged over folds, the smaller alpha on a tie. Features are
  re-standardised inside every fold. ARNIQA picks alpha by median validation SRCC instead; the
  squared error is used here because a fold may hold a single reference (too few images for SRCC).
* Caching (``cached_features``): one entry per image file stamp (resolved path, size, mtime), so
  10 splits cost one feature pass.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from rankiqa.atomic import atomic_path

SCALES = (1.0, 0.5)
MAX_SIDE = 2048
ALPHAS = tuple(float(a) for a in np.geomspace(1e-3, 1e7, 41))
INNER_FOLDS = 5
SCALE_FLOOR = 0.1  # a column's scale is at least this x the median column std (``standardise``)
FALLBACK_ALPHA = 1.0  # used when the training part has fewer than 2 content groups (no CV possible)
FLUSH_EVERY = 200  # images between two writes of the feature cache


# ---------------------------------------------------------------------------------------------
# features


def image_features(module, image: np.ndarray) -> np.ndarray:
    """(2 x feature_dim,) float64 features of a uint8 (H, W, 3) RGB image: ``extract_features`` of
    the whole image at each scale of ``SCALES`` (full, half), concatenated. ``module`` in eval mode."""
    import cv2
    import torch

    device = next(module.parameters(), torch.empty(0)).device
    height, width = image.shape[:2]
    parts = []
    with torch.inference_mode():
        for scale in SCALES:
            scaled = image if scale == 1.0 else cv2.resize(
                image, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA)
            tensor = torch.from_numpy(np.array(scaled, dtype=np.uint8, order="C")).to(device).float().div_(255)
            parts.append(module.extract_features(tensor.permute(2, 0, 1)[None]).reshape(-1).double().cpu().numpy())
    return np.concatenate(parts)


def feature_paths(module, paths: Sequence[str], device: str | None = None, desc: str | None = None,
                  log: Callable[[str], None] | None = None) -> np.ndarray:
    """(len(paths), 2 x feature_dim) features (``image_features``) of image files; a row of NaN for a
    file that cannot be read, reported as ``skipped PATH: REASON`` through ``log``."""
    from tqdm import tqdm

    from rankiqa.errors import UserError
    from rankiqa.imageio import MIN_SIDE, load_pristine
    from rankiqa.models import inference_copy

    fast = inference_copy(module)
    if device is not None:
        fast = fast.to(device)
    rows: list[np.ndarray | None] = []
    for path in tqdm(paths, desc=desc, unit="img", disable=desc is None):
        try:
            image = load_pristine(path, min_side=MIN_SIDE, max_side=MAX_SIDE).image
        except UserError as exc:
            if log is not None:
                log(f"skipped {exc}")
            rows.append(None)
            continue
        rows.append(image_features(fast, image))
    width = next((len(row) for row in rows if row is not None), len(SCALES) * int(getattr(module, "feature_dim", 0)))
    out = np.full((len(paths), width), np.nan)
    for index, row in enumerate(rows):
        if row is not None:
            out[index] = row
    return out


def cached_features(module, frame: pd.DataFrame, cache_file: Path, device: str | None = None,
                    log: Callable[[str], None] | None = None) -> np.ndarray:
    """``feature_paths`` of ``frame['path']``, read from ``cache_file`` (.npz) where the file stamp
    (resolved path, size, mtime) matches; the rest are computed and added (atomic writes every
    ``FLUSH_EVERY`` images). A file that could not be read is never cached."""
    from rankiqa.benchmark import cache_lookup

    cached: dict[str, tuple[int, int, np.ndarray]] = {}
    if cache_file.exists():
        with np.load(cache_file, allow_pickle=False) as data:
            for path, size, mtime, row in zip(data["path"], data["size"], data["mtime_ns"], data["features"]):
                cached[str(path)] = (int(size), int(mtime), row)
    stamps, rows, todo = cache_lookup(frame["path"], cached)
    paths = frame["path"].tolist()
    for start in range(0, len(todo), FLUSH_EVERY):
        chunk = todo[start : start + FLUSH_EVERY]
        computed = feature_paths(module, [paths[i] for i in chunk], device,
                                 desc=f"features {start + len(chunk)}/{len(todo)}", log=log)
        for index, row in zip(chunk, computed):
            rows[index] = row
            if stamps[index] is not None and np.all(np.isfinite(row)):
                cached[stamps[index][0]] = (stamps[index][1], stamps[index][2], row)
        _write_cache(cache_file, cached)
    width = next((len(row) for row in rows if row is not None and np.all(np.isfinite(row))), 0)
    return np.stack([row if row is not None and len(row) == width else np.full(width, np.nan) for row in rows]) \
        if rows else np.zeros((0, 0))


def _write_cache(cache_file: Path, cached: dict[str, tuple[int, int, np.ndarray]]) -> None:
    keys = list(cached)
    with atomic_path(cache_file) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, path=np.array(keys, dtype=str), size=np.array([cached[k][0] for k in keys], np.int64),
                 mtime_ns=np.array([cached[k][1] for k in keys], np.int64),
                 features=np.stack([cached[k][2] for k in keys]).astype(np.float32) if keys else np.zeros((0, 0)))


def patch_features(module, paths: Sequence[str], patches: int, patch_size: int, seed: int,
                   device: str | None = None, log: Callable[[str], None] | None = None) -> np.ndarray:
    """(len(paths), feature_dim) mean ``extract_features`` over the ``rankiqa.score`` seeded crops of
    each image (NaN row for an unreadable file). The score head is linear, so ``head(mean features)``
    equals the image's score under the scoring protocol: the right input for initialising the head."""
    import torch

    from rankiqa.errors import UserError
    from rankiqa.imageio import read_for_scoring
    from rankiqa.patches import seeded_patches

    was_training = module.training
    module.eval()
    out = np.full((len(paths), int(module.feature_dim)), np.nan)
    try:
        with torch.inference_mode():
            for index, path in enumerate(paths):
                try:
                    crops = seeded_patches(read_for_scoring(path), patches, patch_size, seed)
                except UserError as exc:
                    if log is not None:
                        log(f"skipped {exc}")
                    continue
                batch = torch.from_numpy(crops).to(device or "cpu").float().div_(255).permute(0, 3, 1, 2)
                out[index] = module.extract_features(batch).double().mean(0).cpu().numpy()
    finally:
        module.train(was_training)
    return out


# ---------------------------------------------------------------------------------------------
# closed-form ridge


@dataclass(frozen=True)
class RidgeProbe:
    """A fitted probe: ``predict(x) = ((x - mean) / scale) @ coef + intercept`` (MOS units).

    ``alpha``: the chosen penalty; ``cv_mse``: mean squared error of each alpha in ``alphas`` over the
    inner folds (empty when no CV was possible).
    """

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    alpha: float
    alphas: tuple[float, ...] = ()
    cv_mse: tuple[float, ...] = ()

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Predictions (n,) for (n, d) features."""
        return ((np.asarray(features, np.float64) - self.mean) / self.scale) @ self.coef + self.intercept

    def raw_weights(self) -> tuple[np.ndarray, float]:
        """``(w, b)`` acting on unstandardised features: ``predict(x) == x @ w + b``."""
        weights = self.coef / self.scale
        return weights, float(self.intercept - np.dot(self.mean, weights))


def standardise(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, scale) per column: population std (ddof 0), 1 where a column is constant (as scikit-learn),
    and at least ``SCALE_FLOOR`` x the median column std.

    The floor is the one departure from scikit-learn's ``StandardScaler``: a column that barely varies
    in a small training part (a feature almost always zero on its scenes) would otherwise turn a test
    image's ordinary value into a z-score of hundreds and its prediction far off the MOS scale.

    >>> mean, scale = standardise(np.array([[0.0, 0.0, 1.0], [2.0, 4.0, 1.0], [4.0, 8.0, 1.0]]))
    >>> mean.tolist(), [round(float(v), 3) for v in scale]
    ([2.0, 4.0, 1.0], [1.633, 3.266, 1.0])
    >>> round(float(standardise(np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 1e-6]]))[1][2]), 3)  # floored
    0.05
    """
    mean = features.mean(0)
    scale = features.std(0)
    constant = scale < 10 * np.finfo(np.float64).eps * np.maximum(1.0, np.abs(mean))
    floor = SCALE_FLOOR * float(np.median(scale))
    scale = np.maximum(scale, floor)
    scale[constant] = 1.0
    return mean, scale


def _ridge_solutions(x: np.ndarray, y: np.ndarray, alphas: Sequence[float]) -> np.ndarray:
    """(len(alphas), d) ridge coefficients for centred ``x``, ``y`` (one SVD for all alphas)."""
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    uty = u.T @ y
    shrink = s[None, :] / (s[None, :] ** 2 + np.asarray(alphas, np.float64)[:, None])
    return (shrink * uty[None, :]) @ vt


def fit_ridge(features: np.ndarray, targets: np.ndarray, alpha: float) -> RidgeProbe:
    """Standardise ``features`` and fit ridge regression with intercept at a fixed ``alpha``."""
    features, targets = np.asarray(features, np.float64), np.asarray(targets, np.float64)
    mean, scale = standardise(features)
    offset = targets.mean()
    coef = _ridge_solutions((features - mean) / scale, targets - offset, [alpha])[0]
    return RidgeProbe(mean, scale, coef, float(offset), float(alpha))


def group_folds(groups: Sequence[str], n_folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train rows, validation rows) of ``min(n_folds, n_groups)`` folds; each content group lies in
    exactly one validation part (groups shuffled by ``seed``, then dealt round-robin)."""
    groups = np.asarray(groups).astype(str)
    unique = np.unique(groups)
    k = min(n_folds, unique.size)
    order = np.random.default_rng(seed).permutation(unique.size)
    fold_of = {unique[g]: position % k for position, g in enumerate(order)}
    assignment = np.array([fold_of[g] for g in groups])
    return [(np.flatnonzero(assignment != fold), np.flatnonzero(assignment == fold)) for fold in range(k)]


def fit_probe(features: np.ndarray, targets: np.ndarray, groups: Sequence[str], *, alphas: Sequence[float] = ALPHAS,
              n_folds: int = INNER_FOLDS, seed: int = 0) -> RidgeProbe:
    """Ridge probe with ``alpha`` chosen by grouped inner cross-validation (see the module docstring).

    ``features`` (n, d) and ``targets`` (n,) of the TRAINING part only; ``groups``: its content
    group per row (``rankiqa.data.splits.content_groups``). Fewer than 2 groups: ``FALLBACK_ALPHA``.
    """
    features, targets = np.asarray(features, np.float64), np.asarray(targets, np.float64)
    if len(features) < 2:
        raise ValueError(f"a ridge probe needs at least 2 training images, got {len(features)}")
    folds = group_folds(groups, n_folds, seed)
    if len(folds) < 2:
        probe = fit_ridge(features, targets, FALLBACK_ALPHA)
        return RidgeProbe(probe.mean, probe.scale, probe.coef, probe.intercept, probe.alpha)
    squared = np.zeros((len(folds), len(alphas)))
    for index, (train, val) in enumerate(folds):
        mean, scale = standardise(features[train])
        offset = targets[train].mean()
        coefs = _ridge_solutions((features[train] - mean) / scale, targets[train] - offset, alphas)
        predictions = ((features[val] - mean) / scale) @ coefs.T + offset
        squared[index] = np.mean((predictions - targets[val][:, None]) ** 2, axis=0)
    cv_mse = squared.mean(0)
    best = float(alphas[int(np.argmin(cv_mse))])
    probe = fit_ridge(features, targets, best)
    return RidgeProbe(probe.mean, probe.scale, probe.coef, probe.intercept, best,
                      tuple(float(a) for a in alphas), tuple(float(v) for v in cv_mse))


def probe_cache_name(model_id: str, name: str) -> str:
    """File name of the feature cache of one (weights, database) under the cache folder."""
    scales = "_".join(f"{scale:g}" for scale in SCALES)
    return f"{model_id}__{name}__features_whole_s{scales}_max{MAX_SIDE}.npz"
