"""IQA agreement metrics between predicted scores and human opinion scores (plain functions).

Direction convention: ``mos`` is higher-is-better (``rankiqa.data`` loaders convert DMOS), and a
good predictor gives positive SRCC/KRCC/PLCC close to 1; RMSE is in MOS units, lower is better.

* ``srcc``, ``krcc`` (tau-b, ties handled), ``plcc`` (raw Pearson) and ``rmse`` (raw, for
  predictions already on the MOS scale) need no fitting.
* ``plcc_logistic`` / ``rmse_logistic`` first map predictions onto the MOS scale with the VQEG
  monotone logistic (FR-TV Phase II, 2003; Sheikh et al. 2006), then compare the mapped values to
  the MOS. ``fit_logistic`` does the fit; see it for the fixed initial values and the fallback.
* Metric tables (pandas DataFrames of predictions in, plain values out): ``evaluate`` (overall and
  per distortion), ``per_split_metrics`` (one row per split and subset), ``summarise`` (median,
  mean and std over splits) and ``to_markdown`` (the table ``rankiqa benchmark`` prints).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
from scipy import optimize, stats

if TYPE_CHECKING:
    import pandas as pd

LOGISTIC_PARAMS = (4, 5)
MAX_FUNCTION_EVALS = 2000


def logistic5(x: np.ndarray, b1: float, b2: float, b3: float, b4: float, b5: float) -> np.ndarray:
    """VQEG 5-parameter logistic: ``b1 * (1/2 - 1/(1 + exp(b2 (x - b3)))) + b4 x + b5``."""
    return b1 * (0.5 - 1.0 / (1.0 + np.exp(np.clip(b2 * (x - b3), -500, 500)))) + b4 * x + b5


def logistic4(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    """4-parameter logistic: ``(b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2`` (b1, b2 = asymptotes)."""
    return (b1 - b2) / (1.0 + np.exp(np.clip(-(x - b3) / np.abs(b4), -500, 500))) + b2


@dataclass(frozen=True)
class LogisticFit:
    """A fitted mapping from predictions to the MOS scale.

    ``params``: fitted parameters (5 or 4 values; for the linear fallback ``(slope, intercept)``).
    ``converged``: False when the logistic fit failed and the linear fallback was used.
    """

    n_params: int
    params: tuple[float, ...]
    converged: bool

    def __call__(self, pred: np.ndarray) -> np.ndarray:
        """Map predictions (any scale) onto the MOS scale."""
        pred = np.asarray(pred, dtype=np.float64)
        if not self.converged:
            return self.params[0] * pred + self.params[1]
        function = logistic5 if self.n_params == 5 else logistic4
        return function(pred, *self.params)


def _validate(pred, mos, *, min_length: int = 3) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64).ravel()
    mos = np.asarray(mos, dtype=np.float64).ravel()
    if pred.shape != mos.shape:
        raise ValueError(f"pred and mos differ in length: {pred.size} vs {mos.size}")
    if pred.size < min_length:
        raise ValueError(f"need at least {min_length} scores, got {pred.size}")
    for name, values in (("pred", pred), ("mos", mos)):
        if not np.all(np.isfinite(values)):
            raise ValueError(f"{name} contains {int(np.sum(~np.isfinite(values)))} NaN or infinite values")
        if np.ptp(values) == 0:
            raise ValueError(f"{name} is constant ({values[0]:g} for all {values.size} items): correlation is undefined")
    return pred, mos


def srcc(pred, mos) -> float:
    """Spearman rank correlation in [-1, 1] (ties get average ranks); 1 = same order as MOS."""
    pred, mos = _validate(pred, mos)
    return float(stats.spearmanr(pred, mos).statistic)


def krcc(pred, mos) -> float:
    """Kendall tau-b rank correlation in [-1, 1] (tie-corrected); 1 = same order as MOS."""
    pred, mos = _validate(pred, mos)
    return float(stats.kendalltau(pred, mos).statistic)


def plcc(pred, mos) -> float:
    """Pearson linear correlation in [-1, 1] on the raw predictions (no mapping)."""
    pred, mos = _validate(pred, mos)
    return float(stats.pearsonr(pred, mos).statistic)


def rmse(pred, mos) -> float:
    """Root mean squared error of the raw predictions, in MOS units (lower is better): meaningful only
    when ``pred`` is on the MOS scale (a fine-tuned or probed model), unlike ``rmse_logistic``."""
    pred, mos = _validate(pred, mos)
    return float(np.sqrt(np.mean((pred - mos) ** 2)))


def _initial_params(pred: np.ndarray, mos: np.ndarray, n_params: int) -> list[float]:
    """Fixed, data-derived starting point (documented in ``fit_logistic``)."""
    direction = 1.0 if stats.pearsonr(pred, mos).statistic >= 0 else -1.0
    if n_params == 5:
        return [direction * np.ptp(mos), 1.0 / np.std(pred), float(np.mean(pred)), 0.0, float(np.mean(mos))]
    high, low = (mos.max(), mos.min()) if direction > 0 else (mos.min(), mos.max())
    return [float(high), float(low), float(np.mean(pred)), float(np.std(pred))]


def fit_logistic(pred, mos, n_params: int = 5) -> LogisticFit:
    """Fit the monotone logistic mapping predictions onto MOS by least squares.

    Initial values (fixed, so results are reproducible):
      5 parameters: ``b1 = ±(max(mos) - min(mos))`` (sign of the raw Pearson correlation),
      ``b2 = 1/std(pred)``, ``b3 = mean(pred)``, ``b4 = 0``, ``b5 = mean(mos)``;
      4 parameters: ``b1, b2 = max(mos), min(mos)`` (swapped when the correlation is negative),
      ``b3 = mean(pred)``, ``b4 = std(pred)``.
    Solver: ``scipy.optimize.curve_fit`` (Levenberg-Marquardt), at most 2000 function evaluations.
    Fallback: if the fit raises, gives non-finite values or fits worse than a straight line,
    a least-squares straight line is used instead, ``converged=False`` and a ``RuntimeWarning``
    is issued (PLCC after a linear map equals the raw PLCC).
    """
    if n_params not in LOGISTIC_PARAMS:
        raise ValueError(f"n_params must be 4 or 5, got {n_params}")
    pred, mos = _validate(pred, mos, min_length=n_params + 1)
    slope, intercept = np.polyfit(pred, mos, 1)
    linear = LogisticFit(n_params, (float(slope), float(intercept)), converged=False)
    function: Callable = logistic5 if n_params == 5 else logistic4
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optimize.OptimizeWarning)
            params, _ = optimize.curve_fit(function, pred, mos, p0=_initial_params(pred, mos, n_params),
                                           maxfev=MAX_FUNCTION_EVALS)
    except (RuntimeError, ValueError, FloatingPointError) as exc:
        warnings.warn(f"logistic fit did not converge ({exc}); using a linear mapping", RuntimeWarning, stacklevel=2)
        return linear
    fit = LogisticFit(n_params, tuple(float(p) for p in params), converged=True)
    mapped = fit(pred)
    if not np.all(np.isfinite(mapped)) or np.sum((mapped - mos) ** 2) > np.sum((linear(pred) - mos) ** 2) * (1 + 1e-9):
        warnings.warn("logistic fit is worse than a straight line; using a linear mapping", RuntimeWarning, stacklevel=2)
        return linear
    return fit


def _signed_plcc(pred: np.ndarray, mapped: np.ndarray, mos: np.ndarray) -> float:
    """PLCC of the mapped scores, negated when the mapping decreases with ``pred`` (a backwards model)."""
    if np.ptp(mapped) == 0:
        return float("nan")
    direction = 1.0 if stats.pearsonr(pred, mapped).statistic >= 0 else -1.0
    return direction * float(stats.pearsonr(mapped, mos).statistic)


def plcc_logistic(pred, mos, n_params: int = 5) -> float:
    """Pearson correlation in [-1, 1] between logistic-mapped predictions and MOS (VQEG protocol).

    Signed like the raw correlation: when the fitted mapping decreases with ``pred`` (the model
    ranks backwards, since ``mos`` is higher-is-better) the value is negated. NaN if the mapping
    collapses to a constant.
    """
    pred, mos = _validate(pred, mos, min_length=n_params + 1)
    return _signed_plcc(pred, fit_logistic(pred, mos, n_params)(pred), mos)


def rmse_logistic(pred, mos, n_params: int = 5) -> float:
    """Root mean squared error, in MOS units (lower is better), after the logistic mapping."""
    pred, mos = _validate(pred, mos, min_length=n_params + 1)
    mapped = fit_logistic(pred, mos, n_params)(pred)
    return float(np.sqrt(np.mean((mapped - mos) ** 2)))


METRIC_NAMES = ("SRCC", "KRCC", "PLCC", "PLCC_logistic", "RMSE", "RMSE_logistic")


def all_metrics(pred, mos, n_params: int = 5) -> dict[str, float]:
    """Every metric of ``METRIC_NAMES`` (one logistic fit shared by PLCC_logistic and RMSE_logistic).

    With fewer than ``n_params + 1`` scores the two logistic metrics are NaN (too few to fit).
    """
    pred, mos = _validate(pred, mos)
    values = {"SRCC": srcc(pred, mos), "KRCC": krcc(pred, mos), "PLCC": plcc(pred, mos),
              "PLCC_logistic": float("nan"), "RMSE": rmse(pred, mos), "RMSE_logistic": float("nan")}
    if pred.size > n_params:
        mapped = fit_logistic(pred, mos, n_params)(pred)
        values["RMSE_logistic"] = float(np.sqrt(np.mean((mapped - mos) ** 2)))
        values["PLCC_logistic"] = _signed_plcc(pred, mapped, mos)
    return values


# --------------------------------------------------------------------------------------------
# metric tables: per subset (overall and per distortion), per split, summarised over splits


def evaluate(predictions: pd.DataFrame, column: str = "pred") -> dict[str, Any]:
    """Metrics of ``predictions[column]`` against ``mos``, overall (``"ALL"``) and per distortion.

    Returns ``{"n_missing": ..., "subsets": {name: {"n": ..., SRCC, KRCC, PLCC, PLCC_logistic,
    RMSE_logistic}}}``. Images without a score (NaN) are left out and counted in ``n_missing``; a
    subset too small or constant for a metric gets NaN for it (see ``rankiqa.metrics.all_metrics``).
    """
    valid = predictions[np.isfinite(predictions[column].to_numpy(np.float64))]
    subsets = [("ALL", valid)]
    if valid["distortion"].nunique() > 1:
        subsets += [(str(name), part) for name, part in valid.groupby("distortion", sort=True)]
    table: dict[str, Any] = {}
    for name, part in subsets:
        try:
            values = all_metrics(part[column].to_numpy(np.float64), part["mos"].to_numpy(np.float64))
        except ValueError:
            values = {metric: float("nan") for metric in METRIC_NAMES}
        table[name] = {"n": int(len(part)), **values}
    return {"n_missing": int(len(predictions) - len(valid)), "subsets": table}


def per_split_metrics(predictions: pd.DataFrame) -> pd.DataFrame:
    """One row per (split, subset) of ``predictions`` (columns ``split``, ``pred``, ``mos``, ``distortion``)."""
    import pandas as pd

    rows = []
    for split, part in predictions.groupby("split", sort=True):
        for subset, values in evaluate(part)["subsets"].items():
            rows.append({"split": int(split), "subset": subset, **values})
    return pd.DataFrame(rows)


def summarise(per_split: pd.DataFrame) -> pd.DataFrame:
    """One row per subset (``ALL`` first, then distortions): n_splits, mean images, and per metric
    ``<metric>_median``, ``<metric>_mean``, ``<metric>_std`` (population std; NaN values ignored)."""
    import pandas as pd

    rows = []
    order = ["ALL"] + sorted(set(per_split["subset"]) - {"ALL"})
    for subset in order:
        part = per_split[per_split["subset"] == subset]
        row: dict[str, Any] = {"subset": subset, "n_splits": len(part), "n_images": float(part["n"].mean())}
        for metric in METRIC_NAMES:
            values = part[metric].to_numpy(np.float64) if metric in part else np.full(len(part), np.nan)
            finite = values[np.isfinite(values)]
            row[f"{metric}_median"] = float(np.median(finite)) if finite.size else float("nan")
            row[f"{metric}_mean"] = float(finite.mean()) if finite.size else float("nan")
            row[f"{metric}_std"] = float(finite.std()) if finite.size else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def to_markdown(table: pd.DataFrame, title: str, notes: list[str] | None = None) -> str:
    """The summary as a markdown table: one row per subset, cells ``median (mean ± std)``
    (just the value with a single split), then the ``notes`` lines (warnings, protocol remarks)."""
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
        lines += ["", "Cells: median over splits (mean ± std). PLCC and RMSE raw; PLCC_logistic and RMSE_logistic "
                      "after the VQEG 5-parameter logistic; RMSE in MOS units (lower is better)."]
    for note in notes or []:
        lines += [note] if note.startswith("- ") else ["", note]  # paragraphs; "- " lines continue a list
    return "\n".join(lines)
