"""The run folder's tables and plot: ``metrics.csv``, ``val_per_type.csv``, ``curves.png``."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

from rankiqa.atomic import atomic_path
from rankiqa.csvio import write_rows_atomic
from rankiqa.errors import UserError

CURVES_EVERY_S = 60.0  # redraw curves.png at checkpoints at most this often (matplotlib costs ~1 s)
METRIC_COLUMNS = ("step", "epoch", "loss", "lr", "sets_per_s", "val_srcc", "val_pair_accuracy", "val_target_srcc")


def write_csv(path: Path, columns: Sequence[str], rows: list[dict[str, Any]]) -> None:
    """Write ``rows`` (dicts; None -> empty cell, other keys ignored) atomically as CSV."""
    with write_errors_name(path):
        write_rows_atomic(path, columns, ({k: ("" if row.get(k) is None else row[k]) for k in columns} for row in rows))


@contextmanager
def write_errors_name(path: Path) -> Iterator[None]:
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
    with write_errors_name(path), atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
