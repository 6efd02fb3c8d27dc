"""The paper's evaluation table in one call: zero-shot or fine-tuned, per split, per distortion.

* Zero-shot (``finetune=False``): the model scores every image of the database once (mean of
  ``patches`` seeded crops); metrics are computed on the whole database.
* Fine-tuned: for each of ``splits`` content-disjoint 80/20 splits (``rankiqa.data.make_splits``,
  seeds derived from ``seed`` and the split index), ``rankiqa.finetune`` trains on the training part (model
  selection on references carved from it) and the held-out part is scored once.
* Cross-database (two databases): fine-tune on all of the first, test on all of the second.

Metrics (``rankiqa.metrics``): SRCC, KRCC, raw PLCC, PLCC and RMSE after the VQEG 5-parameter
logistic, overall (``ALL``) and per distortion type; summarised over splits by median and
mean ± std. Zero-shot predictions are cached per (weights, database, scoring protocol) under
``cache_dir``; fine-tuning runs are kept under ``out_dir/runs`` and reused when run again.
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
from rankiqa.errors import UserError
from rankiqa.finetune import FinetuneConfig, evaluate, finetune, write_csv_atomic
from rankiqa.metrics import METRIC_NAMES
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


def cached_scores(module, frame: pd.DataFrame, cache_file: Path, patches: int, patch_size: int, seed: int,
                  device: str = "cpu") -> np.ndarray:
    """Scores of ``frame['path']``, read from ``cache_file`` where present; the rest are scored and
    added to the cache every ``CACHE_FLUSH_EVERY`` images (atomic writes), so a stopped run resumes.

    The cache holds one entry per resolved image path with its size and modification time; a file
    whose stamp changed is scored again, and an image that could not be scored (NaN) is never cached.
    """
    cached: dict[str, tuple[int, int, float]] = {}
    if cache_file.exists():
        table = pd.read_csv(cache_file)
        if tuple(table.columns) == CACHE_COLUMNS:
            cached = {path: (int(size), int(mtime), float(score)) for path, size, mtime, score in table.itertuples(index=False)}
    stamps = [_file_stamp(path) for path in frame["path"]]
    scores = np.full(len(stamps), np.nan)
    todo = []
    for index, stamp in enumerate(stamps):
        entry = cached.get(stamp[0]) if stamp else None
        if entry is not None and entry[:2] == stamp[1:]:
            scores[index] = entry[2]
        else:
            todo.append(index)
    paths = frame["path"].tolist()
    for start in range(0, len(todo), CACHE_FLUSH_EVERY):
        chunk = todo[start : start + CACHE_FLUSH_EVERY]
        desc = f"scoring {start + len(chunk)}/{len(todo)}"
        scores[chunk] = score_paths(module, [paths[index] for index in chunk], patches, patch_size, seed, device, desc=desc)
        for index in chunk:
            if stamps[index] is not None and np.isfinite(scores[index]):
                resolved, size, mtime = stamps[index]
                cached[resolved] = (size, mtime, float(scores[index]))
        rows = [(path, *entry) for path, entry in cached.items()]
        write_csv_atomic(pd.DataFrame(rows, columns=list(CACHE_COLUMNS)), cache_file)
    return scores


def run_benchmark(databases: list[tuple[str, str | os.PathLike]], model: str, out_dir: str | os.PathLike, *,
                  finetune_models: bool = False, splits: int = 10, train_fraction: float = 0.8,
                  patches: int = 30, patch_size: int = 224, seed: int = 0,
                  finetune_config: FinetuneConfig | None = None,
                  cache_dir: str | os.PathLike | None = None, report: bool = False) -> BenchmarkResult:
    """Evaluate ``model`` (checkpoint path, ``"default"`` or backbone name) on ``databases``.

    ``databases``: one ``(name, root)`` pair, or two for cross-database evaluation (needs
    ``finetune_models``). Writes ``table.md``, ``table.csv``, ``per_split.csv``,
    ``predictions.csv`` and ``scatter.png`` to ``out_dir`` (and ``report.html`` with ``report``);
    returns them as a ``BenchmarkResult``.
    """
    from rankiqa.data import load_database, make_splits
    from rankiqa.score import load_module

    if len(databases) not in (1, 2):
        raise UserError(f"--database: give one database, or two for cross-database evaluation (got {len(databases)})")
    if len(databases) == 2 and not finetune_models:
        raise UserError("cross-database evaluation (two --database) trains on the first: add --finetune")
    if splits < 1:
        raise UserError(f"--splits must be at least 1, got {splits}")
    out_dir = Path(out_dir)
    frames = [load_database(name, root) for name, root in databases]
    config = replace(finetune_config or FinetuneConfig(), patch_size=patch_size, eval_patches=patches, seed=seed)
    import torch

    torch.manual_seed(stable_seed(seed, "init"))  # a backbone name: the random init fine-tuning starts from
    module = load_module(model)
    model_id = weights_id(module)
    parts: list[pd.DataFrame] = []
    if not finetune_models:
        name, frame = databases[0][0], frames[0]
        cache_file = Path(cache_dir or default_cache_dir()) / f"{model_id}__{name}__p{patches}_s{patch_size}_seed{seed}.csv"
        device = resolve_device(config.device)
        scores = cached_scores(module.to(device), frame, cache_file, patches, patch_size, seed, device)
        part = frame[["path", "reference", "distortion", "mos", "mos_raw"]].assign(score=scores, pred=scores)
        parts.append(part.assign(split=0))
    elif len(databases) == 2:
        run_dir = out_dir / "runs" / f"{model_id}__{databases[0][0]}_to_{databases[1][0]}"
        parts.append(finetune(frames[0], frames[1], model, run_dir, config).predictions.assign(split=0))
    else:
        name, frame = databases[0][0], frames[0]
        for index, split in enumerate(make_splits(frame, n=splits, train=train_fraction, seed=seed)):
            run_dir = out_dir / "runs" / f"{model_id}__{name}__split{index:02d}"
            result = finetune(frame.iloc[split.train], frame.iloc[split.test], model, run_dir, config)
            parts.append(result.predictions.assign(split=index))
    predictions = pd.concat(parts, ignore_index=True)
    _require_scores(predictions, " -> ".join(name for name, _ in databases))
    per_split = per_split_metrics(predictions)
    table = summarise(per_split)
    title = " -> ".join(name for name, _ in databases)
    mode = "fine-tuned" if finetune_models else "zero-shot"
    markdown = to_markdown(table, f"{title}, {model}, {mode}, {predictions['split'].nunique()} split(s)")
    write_csv_atomic(predictions, out_dir / "predictions.csv")
    write_csv_atomic(per_split, out_dir / "per_split.csv")
    write_csv_atomic(table, out_dir / "table.csv")
    write_text_atomic(out_dir / "table.md", markdown + "\n")
    scatter_plot(predictions, out_dir / "scatter.png", f"{title} ({mode})")
    if report:
        from rankiqa.report import write_benchmark_report

        write_benchmark_report(out_dir, table, markdown)
    return BenchmarkResult(per_split, table, predictions, markdown)


def _require_scores(predictions: pd.DataFrame, title: str) -> None:
    """``UserError`` when no test image got a finite prediction: there is no table to compute."""
    if not np.isfinite(predictions["pred"].to_numpy(np.float64)).any():
        raise UserError(f"{title}: none of the {len(predictions)} test image(s) could be scored (reasons above); "
                        "nothing to evaluate")


def per_split_metrics(predictions: pd.DataFrame) -> pd.DataFrame:
    """One row per (split, subset) of ``predictions`` (columns ``split``, ``pred``, ``mos``, ``distortion``)."""
    rows = []
    for split, part in predictions.groupby("split", sort=True):
        for subset, values in evaluate(part)["subsets"].items():
            rows.append({"split": int(split), "subset": subset, **values})
    return pd.DataFrame(rows)


def summarise(per_split: pd.DataFrame) -> pd.DataFrame:
    """One row per subset (``ALL`` first, then distortions): n_splits, mean images, and per metric
    ``<metric>_median``, ``<metric>_mean``, ``<metric>_std`` (population std; NaN values ignored)."""
    rows = []
    order = ["ALL"] + sorted(set(per_split["subset"]) - {"ALL"})
    for subset in order:
        part = per_split[per_split["subset"] == subset]
        row: dict[str, Any] = {"subset": subset, "n_splits": len(part), "n_images": float(part["n"].mean())}
        for metric in METRIC_NAMES:
            values = part[metric].to_numpy(np.float64)
            finite = values[np.isfinite(values)]
            row[f"{metric}_median"] = float(np.median(finite)) if finite.size else float("nan")
            row[f"{metric}_mean"] = float(finite.mean()) if finite.size else float("nan")
            row[f"{metric}_std"] = float(finite.std()) if finite.size else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def to_markdown(table: pd.DataFrame, title: str) -> str:
    """The summary as a markdown table: one row per subset, cells ``median (mean ± std)``
    (just the value with a single split)."""
    headers = ["subset", "images", *METRIC_NAMES]
    lines = [f"**{title}**", "", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in table.to_dict("records"):
        cells = [row["subset"], f"{row['n_images']:.0f}"]
        for metric in METRIC_NAMES:
            median, mean, std = (row[f"{metric}_{kind}"] for kind in ("median", "mean", "std"))
            if not np.isfinite(median):
                cells.append("–")
            elif row["n_splits"] > 1:
                cells.append(f"{median:.3f} ({mean:.3f} ± {std:.3f})")
            else:
                cells.append(f"{median:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    if (table["n_splits"] > 1).any():
        lines += ["", "Cells: median over splits (mean ± std). PLCC raw; PLCC_logistic and RMSE_logistic "
                      "after the VQEG 5-parameter logistic; RMSE in MOS units (lower is better)."]
    return "\n".join(lines)


def scatter_plot(predictions: pd.DataFrame, path: Path, title: str) -> None:
    """Prediction vs MOS, coloured by distortion, with the logistic fitted on all points (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rankiqa.metrics import fit_logistic

    valid = predictions[np.isfinite(predictions["pred"])]
    fig, ax = plt.subplots(figsize=(6, 5), dpi=100)
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
    plt.close(fig)
