"""The paper's evaluation table in one call: zero-shot, ridge probe or fine-tuned, per split, per distortion.

* Zero-shot (``probe="none"``): the model scores every image of the database once (mean of
  ``patches`` seeded crops); metrics are computed on the whole database.
* Ridge probe (``probe="ridge"``, the protocol of CONTRIQUE, Re-IQA and ARNIQA): frozen features of
  every image (whole image, full and half scale, ``rankiqa.probe``) are computed once and cached; for
  each split a ridge regression is fitted on the training part (alpha by inner cross-validation over
  its references) and predicts the held-out part on the MOS scale.
* Fine-tuned (``probe="finetune"``): for each of ``splits`` content-disjoint 80/20 splits
  (``rankiqa.data.make_splits``, seeds derived from ``seed`` and the split index), ``rankiqa.finetune``
  initialises the score head by a linear probe, trains on the training part (model selection on
  references carved from it) and scores the held-out part once.
* Cross-database (two databases, ridge or fine-tune): train on all of the first, test on all of the second.

Metrics (``rankiqa.metrics``): SRCC, KRCC, raw PLCC and RMSE, PLCC and RMSE after the VQEG
5-parameter logistic, overall (``ALL``) and per distortion type; summarised over splits by median
and mean ± std. Zero-shot predictions and probe features are cached per (weights, database,
protocol) and image file stamp under ``cache_dir``; fine-tuning runs are kept under
``out_dir/runs`` and reused when run again. Warnings (skipped images, logistic-fit fallbacks) are
collected, listed under the table and written to ``warnings.txt``, never printed mid-table.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rankiqa.atomic import atomic_path, write_text_atomic
from rankiqa.devices import resolve_device
from rankiqa.csvio import write_csv_atomic
from rankiqa.errors import InvalidOption, UserError, check_choice
from rankiqa.finetune import FinetuneConfig, finetune
from rankiqa.metrics import per_split_metrics, summarise, to_markdown
from rankiqa.score import score_paths
from rankiqa.seeding import stable_seed

CACHE_FLUSH_EVERY = 200  # images scored between two writes of the prediction cache (resumable)


def default_cache_dir() -> Path:
    """``$RANKIQA_CACHE`` or ``$XDG_CACHE_HOME/rankiqa/predictions`` (``~/.cache/...`` by default)."""
    if os.environ.get("RANKIQA_CACHE"):
        return Path(os.environ["RANKIQA_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rankiqa" / "predictions"


def weights_id(module) -> str:
    """A short content hash of a module's parameters and buffers (same weights -> same id)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class BenchmarkResult:
    """``per_split``: one row per (split, subset) with ``METRIC_NAMES``; ``table``: the summary
    (one row per subset: n_splits, and median/mean/std per metric); ``predictions``: every scored
    test image with its split; ``markdown``: the table as printed."""

    per_split: pd.DataFrame
    table: pd.DataFrame
    predictions: pd.DataFrame
    markdown: str


CACHE_COLUMNS = ("path", "size", "mtime_ns", "score")


def _file_stamp(path: str) -> tuple[str, int, int] | None:
    """(resolved path, size in bytes, modification time in ns) of an image file; None when it is missing."""
    try:
        resolved = Path(path).resolve()
        stat = resolved.stat()
    except OSError:
        return None
    return str(resolved), stat.st_size, stat.st_mtime_ns


def cache_lookup(paths, cached: dict[str, tuple]) -> tuple[list, list, list[int]]:
    """(file stamps, cached value or None per path, indices to compute) for a cache holding
    ``resolved path -> (size, mtime_ns, value)``; an entry counts only when size and mtime match."""
    stamps = [_file_stamp(path) for path in paths]
    hits: list = [None] * len(stamps)
    todo = []
    for index, stamp in enumerate(stamps):
        entry = cached.get(stamp[0]) if stamp else None
        if entry is not None and entry[:2] == stamp[1:]:
            hits[index] = entry[2]
        else:
            todo.append(index)
    return stamps, hits, todo


def cached_scores(module, frame: pd.DataFrame, cache_file: Path, patches: int, patch_size: int, seed: int,
                  device: str = "cpu", log=None) -> np.ndarray:
    """Scores of ``frame['path']``, read from ``cache_file`` where present; the rest are scored and
    added to the cache every ``CACHE_FLUSH_EVERY`` images (atomic writes), so a stopped run resumes.

    The cache holds one entry per resolved image path with its size and modification time; a file
    whose stamp changed is scored again, and an image that could not be scored (NaN) is never cached.
    Skipped images are reported through ``log`` (see ``rankiqa.score.score_paths``).
    """
    cached: dict[str, tuple[int, int, float]] = {}
    if cache_file.exists():
        table = pd.read_csv(cache_file)
        if tuple(table.columns) == CACHE_COLUMNS:
            cached = {path: (int(size), int(mtime), float(score)) for path, size, mtime, score in table.itertuples(index=False)}
    stamps, hits, todo = cache_lookup(frame["path"], cached)
    scores = np.array([np.nan if hit is None else hit for hit in hits], dtype=np.float64)
    paths = frame["path"].tolist()
    for start in range(0, len(todo), CACHE_FLUSH_EVERY):
        chunk = todo[start : start + CACHE_FLUSH_EVERY]
        desc = f"scoring {start + len(chunk)}/{len(todo)}"
        scores[chunk] = score_paths(module, [paths[index] for index in chunk], patches, patch_size, seed, device,
                                    desc=desc, log=log)
        for index in chunk:
            if stamps[index] is not None and np.isfinite(scores[index]):
                resolved, size, mtime = stamps[index]
                cached[resolved] = (size, mtime, float(scores[index]))
        rows = [(path, *entry) for path, entry in cached.items()]
        write_csv_atomic(pd.DataFrame(rows, columns=list(CACHE_COLUMNS)), cache_file)
    return scores


PROBES = ("none", "ridge", "finetune")
PROBE_TITLES = {"none": "zero-shot", "ridge": "ridge probe", "finetune": "fine-tuned"}


def resolve_probe(probe: str | None, finetune_models: bool = False) -> str:
    """The protocol of a run: ``probe`` (``none``, ``ridge`` or ``finetune``), or ``finetune`` when only the
    ``finetune_models`` alias is set, else ``none``; ``InvalidOption`` when the two contradict."""
    if probe is None:
        return "finetune" if finetune_models else "none"
    probe = probe.lower()
    check_choice("probe", probe, PROBES)
    if finetune_models and probe != "finetune":
        raise InvalidOption(f"finetune_models means probe finetune; it cannot be combined with probe {probe}",
                            params=("finetune_models", "probe"))
    return probe


def run_benchmark(databases: list[tuple[str, str | os.PathLike]], model: str, out_dir: str | os.PathLike, *,
                  finetune_models: bool = False, splits: int = 10, train_fraction: float = 0.8,
                  patches: int = 30, patch_size: int = 224, seed: int = 0,
                  finetune_config: FinetuneConfig | None = None,
                  cache_dir: str | os.PathLike | None = None, probe: str | None = None,
                  report: bool = False) -> BenchmarkResult:
    """Evaluate ``model`` (checkpoint path, ``"default"`` or backbone name) on ``databases``.

    ``probe``: ``"none"`` (zero-shot), ``"ridge"`` (frozen features + ridge regression, see
    ``rankiqa.probe``) or ``"finetune"``; ``finetune_models=True`` is the older spelling of
    ``probe="finetune"``. ``databases``: one ``(name, root)`` pair, or two for cross-database
    evaluation (ridge or finetune: trained on all of the first, tested on all of the second).
    Writes ``table.md``, ``table.csv``, ``per_split.csv``, ``predictions.csv``, ``scatter.png`` and
    ``warnings.txt`` to ``out_dir`` (and ``report.html`` with ``report``); returns them as a
    ``BenchmarkResult``.
    """
    from rankiqa.data import load_database
    from rankiqa.runlog import WarningLog
    from rankiqa.models import load_module

    probe = _check_arguments(databases, probe, finetune_models, splits)
    out_dir = Path(out_dir)
    frames = [load_database(name, root) for name, root in databases]
    config = replace(finetune_config or FinetuneConfig(), patch_size=patch_size, eval_patches=patches, seed=seed)
    import torch

    torch.manual_seed(stable_seed(seed, "init"))  # a backbone name: the random init fine-tuning starts from
    module = load_module(model)
    model_id = weights_id(module)
    log = WarningLog()
    cache_root = Path(cache_dir or default_cache_dir())
    alphas: dict[int, float] = {}
    with log.capture(RuntimeWarning):
        if probe == "none":
            parts = [_zero_shot(module, databases[0][0], frames[0], model_id, cache_root, patches, patch_size, seed,
                                resolve_device(config.device), log)]
        elif probe == "ridge":
            parts = _ridge_parts(module, databases, frames, model_id, cache_root, splits, train_fraction, seed,
                                 resolve_device(config.device), log, alphas)
        else:
            parts = _finetune_parts(model, databases, frames, model_id, out_dir, splits, train_fraction, seed,
                                    config, log)
        predictions = pd.concat(parts, ignore_index=True)
        _require_scores(predictions, " -> ".join(name for name, _ in databases))
        per_split = per_split_metrics(predictions)
    notes = _table_notes(probe, per_split, alphas, log)
    table = summarise(per_split)
    title = " -> ".join(name for name, _ in databases)
    mode = PROBE_TITLES[probe]
    markdown = to_markdown(table, f"{title}, {model}, {mode}, {predictions['split'].nunique()} split(s)", notes)
    result = BenchmarkResult(per_split, table, predictions, markdown)
    _write_outputs(out_dir, result, log, f"{title} ({mode})", report)
    return result


def _check_arguments(databases: list[tuple[str, str | os.PathLike]], probe: str | None, finetune_models: bool,
                     splits: int) -> str:
    """The probe ``run_benchmark`` runs (``resolve_probe``); ``InvalidOption`` for a database count the
    probe cannot use or fewer than one split."""
    probe = resolve_probe(probe, finetune_models)
    if len(databases) not in (1, 2):
        raise InvalidOption(f"databases: give one database, or two for cross-database evaluation (got "
                            f"{len(databases)})", params=("databases",))
    if len(databases) == 2 and probe == "none":
        raise InvalidOption("cross-database evaluation (two databases) trains on the first: add finetune_models "
                            "(or probe ridge)", params=("databases", "finetune_models", "probe"))
    if splits < 1:
        raise InvalidOption(f"splits must be at least 1, got {splits}", params=("splits",))
    return probe


def _table_notes(probe: str, per_split: pd.DataFrame, alphas: dict[int, float], log) -> list[str]:
    """The notes under the table; zero-shot runs get no raw RMSE and ridge runs an ``alpha`` column
    in ``per_split`` (changed in place)."""
    notes = []
    if probe == "none":
        per_split["RMSE"] = np.nan
        notes.append("Zero-shot scores are on the model's own scale, not the MOS scale: raw RMSE is not "
                     "applicable (–); RMSE_logistic maps them onto the MOS first.")
    if alphas:
        per_split["alpha"] = per_split["split"].map(alphas)
        values = ", ".join(f"{alphas[index]:.3g}" for index in sorted(alphas))
        notes.append(f"Ridge alpha per split (inner {INNER_CV_NOTE}): {values}.")
    if log:
        notes.append(f"{len(log)} warning(s), all in warnings.txt:")
        notes += log.summary()
    return notes


def _write_outputs(out_dir: Path, result: BenchmarkResult, log, scatter_title: str, report: bool) -> None:
    """predictions.csv, per_split.csv, table.csv, table.md, warnings.txt, scatter.png (and
    report.html with ``report``) in ``out_dir``."""
    write_csv_atomic(result.predictions, out_dir / "predictions.csv")
    write_csv_atomic(result.per_split, out_dir / "per_split.csv")
    write_csv_atomic(result.table, out_dir / "table.csv")
    write_text_atomic(out_dir / "table.md", result.markdown + "\n")
    write_text_atomic(out_dir / "warnings.txt", log.text())
    scatter_plot(result.predictions, out_dir / "scatter.png", scatter_title)
    if report:
        from rankiqa.report import write_benchmark_report

        write_benchmark_report(out_dir, result.table, result.markdown)


def _require_scores(predictions: pd.DataFrame, title: str) -> None:
    """``UserError`` when no test image got a finite prediction: there is no table to compute."""
    if not np.isfinite(predictions["pred"].to_numpy(np.float64)).any():
        raise UserError(f"{title}: none of the {len(predictions)} test image(s) could be scored (reasons above); "
                        "nothing to evaluate")


INNER_CV_NOTE = "cross-validation grouped by training reference, lowest mean squared error"
FRAME_COLUMNS = ["path", "reference", "distortion", "mos", "mos_raw"]


def _zero_shot(module, name: str, frame: pd.DataFrame, model_id: str, cache_root: Path, patches: int,
               patch_size: int, seed: int, device: str, log) -> pd.DataFrame:
    cache_file = cache_root / f"{model_id}__{name}__p{patches}_s{patch_size}_seed{seed}.csv"
    scores = cached_scores(module.to(device), frame, cache_file, patches, patch_size, seed, device, log=log)
    return frame[FRAME_COLUMNS].assign(score=scores, pred=scores, split=0)


def _splits(frame: pd.DataFrame, splits: int, train_fraction: float, seed: int):
    from rankiqa.data import make_splits

    try:
        return make_splits(frame, n=splits, train=train_fraction, seed=seed)
    except ValueError as exc:
        raise UserError(f"cannot split the database by content: {exc}; give images distinct values in the "
                        "'reference' column to split by image (then train and test share scenes)") from None


def _ridge_parts(module, databases, frames, model_id: str, cache_root: Path, splits: int, train_fraction: float,
                 seed: int, device: str, log, alphas: dict[int, float]) -> list[pd.DataFrame]:
    from rankiqa.probe import cached_features, probe_cache_name

    features = [cached_features(module.to(device), frame, cache_root / probe_cache_name(model_id, name), device, log)
                for (name, _), frame in zip(databases, frames)]
    if len(databases) == 2:
        jobs = [(frames[0], features[0], frames[1], features[1])]
    else:
        jobs = [(frames[0].iloc[split.train], features[0][split.train], frames[0].iloc[split.test],
                 features[0][split.test]) for split in _splits(frames[0], splits, train_fraction, seed)]
    parts = []
    for index, (train, train_x, test, test_x) in enumerate(jobs):
        pred, alphas[index] = _ridge_predict(train, train_x, test_x, stable_seed(seed, "ridge", index), log)
        parts.append(test[FRAME_COLUMNS].reset_index(drop=True).assign(score=pred, pred=pred, split=index))
    return parts


def _ridge_predict(train: pd.DataFrame, train_x: np.ndarray, test_x: np.ndarray, seed: int, log) -> tuple[np.ndarray, float]:
    """MOS predictions of the test rows (NaN where features are missing) and the chosen alpha."""
    from rankiqa.data.splits import content_groups
    from rankiqa.probe import fit_probe

    usable = np.all(np.isfinite(train_x), axis=1) if train_x.size else np.zeros(len(train), bool)
    if usable.sum() < 2:
        raise UserError(f"ridge probe: only {int(usable.sum())} training image(s) could be read (reasons in warnings.txt)")
    groups = content_groups(train.iloc[np.flatnonzero(usable)])
    if len(set(groups)) < 2:
        log("ridge probe: the training part holds one reference only, so alpha is fixed (no inner cross-validation)")
    probe = fit_probe(train_x[usable], train["mos"].to_numpy(np.float64)[usable], groups, seed=seed)
    pred = np.full(len(test_x), np.nan)
    found = np.all(np.isfinite(test_x), axis=1) if test_x.size else np.zeros(len(test_x), bool)
    pred[found] = probe.predict(test_x[found])
    return pred, probe.alpha


def _finetune_parts(model: str, databases, frames, model_id: str, out_dir: Path, splits: int, train_fraction: float,
                    seed: int, config: FinetuneConfig, log) -> list[pd.DataFrame]:
    if len(databases) == 2:
        run_dir = out_dir / "runs" / f"{model_id}__{databases[0][0]}_to_{databases[1][0]}"
        return [finetune(frames[0], frames[1], model, run_dir, config, log=log).predictions.assign(split=0)]
    name, frame = databases[0][0], frames[0]
    parts = []
    for index, split in enumerate(_splits(frame, splits, train_fraction, seed)):
        run_dir = out_dir / "runs" / f"{model_id}__{name}__split{index:02d}"
        result = finetune(frame.iloc[split.train], frame.iloc[split.test], model, run_dir, config, log=log)
        parts.append(result.predictions.assign(split=index))
    return parts


def scatter_plot(predictions: pd.DataFrame, path: Path, title: str) -> None:
    """Prediction vs MOS, coloured by distortion, with the logistic fitted on all points (PNG)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from rankiqa.metrics import fit_logistic

    valid = predictions[np.isfinite(predictions["pred"])]
    fig = Figure(figsize=(6, 5), dpi=100)  # an explicit Agg canvas: the caller's pyplot backend is untouched
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for name, part in valid.groupby("distortion", sort=True):
        ax.scatter(part["pred"], part["mos"], s=8, alpha=0.6, label=str(name))
    if len(valid) > 5 and np.ptp(valid["pred"]) > 0 and np.ptp(valid["mos"]) > 0:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            fit = fit_logistic(valid["pred"], valid["mos"])
        grid = np.linspace(valid["pred"].min(), valid["pred"].max(), 200)
        ax.plot(grid, fit(grid), color="black", linewidth=1.5,
                label="logistic fit" if fit.converged else "linear fit (logistic did not converge)")
    ax.set_xlabel("prediction")
    ax.set_ylabel("MOS (higher is better)")
    ax.set_title(title)
    if valid["distortion"].nunique() <= 12:
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
