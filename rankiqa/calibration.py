"""A human quality scale for ranked distortions and for model scores.

Two pieces, both on KADID-10k's MOS scale (1 = bad .. 5 = imperceptible degradation, higher is
better):

* **Targets**: ``rankiqa/assets/calibration_kadid10k.csv`` maps each registered (distortion, level)
  to the mean MOS that KADID-10k's raters gave images made with the same parameters (built by
  ``tools/build_calibration.py``; rows without a matching KADID cell have no target). Level 0 is the
  pristine photo; its target is the MOS of KADID images that were identical to their reference.
* **Output scale**: a monotone 4-parameter logistic fitted from a model's raw scores to the targets
  (``fit_scale``), stored in the checkpoint, applied by ``to_mos``.

>>> table = load_targets()
>>> round(table[("jpeg", 5)].mos, 2), table[("jpeg", 5)].source
(1.35, 'KADID-10k')
>>> ("denoise", 1) in table
False
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rankiqa.errors import UserError

TARGETS_FILE = Path(__file__).resolve().parent / "assets" / "calibration_kadid10k.csv"
TARGET_SETS = {"kadid": TARGETS_FILE}
"""Names accepted by ``rankiqa train --targets``."""
MOS_SCALE = "KADID-10k MOS, 1 (bad) to 5 (imperceptible), higher is better"
MOS_RANGE = (1.0, 5.0)
PRISTINE = "pristine"
REQUIRED_COLUMNS = ("distortion", "level", "mos", "mos_std", "images", "source")


@dataclass(frozen=True)
class Target:
    """Human target of one (distortion, level): mean MOS (1-5, higher is better), its standard
    deviation over the database's photos, how many images it averages, and the database."""

    mos: float
    mos_std: float
    images: int
    source: str


def load_targets(path: str | Path | None = None) -> dict[tuple[str, int], Target]:
    """The targets of a calibration CSV as ``{(distortion, level): Target}``; rows without a target
    are left out (level 0 is keyed ``("pristine", 0)``). A malformed file is a ``UserError`` naming
    the file, line and reason: never a silent zero."""
    path = Path(path) if path is not None else TARGETS_FILE
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or ())]
            if missing:
                raise UserError(f"{path}: not a calibration table (missing column(s) {', '.join(missing)})")
            table: dict[tuple[str, int], Target] = {}
            for line, row in enumerate(reader, start=2):
                if not (row["mos"] or "").strip():
                    continue
                table[(row["distortion"], _int(row["level"], path, line))] = _target(row, path, line)
    except OSError as exc:
        raise UserError(f"{path}: cannot read the calibration table ({exc.strerror or exc})") from None
    if (PRISTINE, 0) not in table:
        raise UserError(f"{path}: the calibration table has no pristine row (distortion 'pristine', level 0)")
    return table


def _int(text: str, path: Path, line: int) -> int:
    try:
        return int(text)
    except ValueError:
        raise UserError(f"{path}:{line}: level {text!r} is not an integer") from None


def _target(row: dict[str, str], path: Path, line: int) -> Target:
    try:
        target = Target(float(row["mos"]), float(row["mos_std"]), int(row["images"]), row["source"])
    except (TypeError, ValueError):
        raise UserError(f"{path}:{line}: cannot read mos/mos_std/images {row['mos']!r}/{row['mos_std']!r}/"
                        f"{row['images']!r}") from None
    if not (MOS_RANGE[0] <= target.mos <= MOS_RANGE[1]) or not math.isfinite(target.mos_std) or target.mos_std < 0 \
            or target.images < 1:
        raise UserError(f"{path}:{line}: target {target} is outside the 1-5 MOS scale or has no images")
    return target


def target_matrix(distortion_names: Sequence[str], table: dict[tuple[str, int], Target],
                  levels: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """(mos, std) float arrays of shape (types, 1 + levels): column 0 is the pristine target,
    column k level k; NaN where a (distortion, level) has no target."""
    mos = np.full((len(distortion_names), levels + 1), np.nan)
    std = np.full_like(mos, np.nan)
    pristine = table[(PRISTINE, 0)]
    mos[:, 0], std[:, 0] = pristine.mos, pristine.mos_std
    for row, name in enumerate(distortion_names):
        for level in range(1, levels + 1):
            target = table.get((name, level))
            if target is not None:
                mos[row, level], std[row, level] = target.mos, target.mos_std
    return mos, std


def coverage(distortion_names: Sequence[str], table: dict[tuple[str, int], Target]) -> list[str]:
    """The names among ``distortion_names`` that have no target at any level (for a warning)."""
    return [name for name in distortion_names if not any((name, level) in table for level in range(1, 6))]


# ------------------------------------------------------------------------------------------------
# the output scale: raw model score -> MOS


def logistic4(raw: np.ndarray, low: float, high: float, centre: float, width: float) -> np.ndarray:
    """``low + (high - low) / (1 + exp(-(raw - centre) / width))``: increasing when width > 0."""
    z = np.clip(-(np.asarray(raw, dtype=np.float64) - centre) / width, -60, 60)
    return low + (high - low) / (1.0 + np.exp(z))


def fit_scale(raw: np.ndarray, mos: np.ndarray) -> dict[str, Any]:
    """Fit the monotone logistic from raw scores to MOS targets; returns the dict stored in a
    checkpoint under ``"calibration"`` (plain floats and strings only).

    The fit starts from fixed values (range of the targets, median and spread of the scores), so it
    is deterministic; ``width`` is kept positive, so the map is increasing (higher raw = better).
    """
    from scipy.optimize import curve_fit

    raw, mos = np.asarray(raw, dtype=np.float64), np.asarray(mos, dtype=np.float64)
    keep = np.isfinite(raw) & np.isfinite(mos)
    raw, mos = raw[keep], mos[keep]
    if len(raw) < 8 or np.ptp(raw) == 0:
        raise UserError(f"cannot fit a calibrated scale from {len(raw)} scored image(s) with a target")
    start = [float(mos.min()), float(mos.max()), float(np.median(raw)), float(max(raw.std(), 1e-3)) / 2]
    bounds = ([MOS_RANGE[0] - 1, MOS_RANGE[0], -np.inf, 1e-6], [MOS_RANGE[1], MOS_RANGE[1] + 1, np.inf, np.inf])
    params, _ = curve_fit(logistic4, raw, mos, p0=start, bounds=bounds, maxfev=20000)
    fitted = logistic4(raw, *params)
    return {
        "scale": MOS_SCALE,
        "kind": "logistic4",
        "params": [float(p) for p in params],
        "fit_images": int(len(raw)),
        "fit_rmse": float(np.sqrt(np.mean((fitted - mos) ** 2))),
    }


def to_mos(raw: np.ndarray | float, calibration: dict[str, Any]) -> np.ndarray | float:
    """Raw score(s) -> MOS on ``calibration["scale"]``, clipped to 1..5; a monotone map, so the order
    of images is unchanged. ``UserError`` for a calibration this version cannot read."""
    if not isinstance(calibration, dict) or calibration.get("kind") != "logistic4" \
            or len(calibration.get("params", ())) != 4:
        raise UserError(f"unknown calibration {calibration!r}: expected kind 'logistic4' with 4 params")
    mos = np.clip(logistic4(np.asarray(raw, dtype=np.float64), *calibration["params"]), *MOS_RANGE)
    return float(mos) if np.ndim(raw) == 0 else mos


def mapping_markdown(path: str | Path | None = None) -> str:
    """The calibration table as markdown, one row per type: its source cells, the MOS of levels 1-5
    ('-' = no target) and, for levels without a target, why (for ``docs/calibration.md``)."""
    path = Path(path) if path is not None else TARGETS_FILE
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    lines = ["| type | KADID-10k type: levels used | MOS L1-L5 | no target because |", "|---|---|---|---|"]
    for name in dict.fromkeys(row["distortion"] for row in rows):
        own = [row for row in rows if row["distortion"] == name]
        if name == PRISTINE:
            lines.append(f"| pristine (level 0) | {own[0]['source_level']} | {float(own[0]['mos']):.2f} | |")
            continue
        used = [f"L{row['level']}=K{row['source_level']}" for row in own if row["mos"]]
        source_type = next((row["source_type"] for row in own if row["mos"]), "")
        source = f"{source_type}: {', '.join(used)}" if used else "-"
        mos = " ".join(f"{float(row['mos']):.2f}" if row["mos"] else "-" for row in own)
        notes = "; ".join(dict.fromkeys(row["note"] for row in own if row["note"]))
        lines.append(f"| {name} | {source} | {mos} | {notes} |")
    return "\n".join(lines)
