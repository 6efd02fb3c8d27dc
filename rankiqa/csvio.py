"""CSV files as rankiqa writes them: a header line, ``\\n`` line ends, UTF-8, written atomically.

Every CSV rankiqa writes (manifests, skipped lists, training metrics, predictions, benchmark
tables, score lists) goes through this module: rows of dicts with ``csv_text`` /
``write_rows_atomic``, pandas DataFrames with ``write_csv_atomic``.
"""
from __future__ import annotations

import csv
import io
import os
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from rankiqa.atomic import write_text_atomic

if TYPE_CHECKING:
    import pandas as pd


def csv_text(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    """The header and one line per row (values by ``str``, quoted where CSV needs it), each ending
    in ``\\n``. A key outside ``columns`` is an error (``ValueError``); a missing one is written empty."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_rows_atomic(path: str | os.PathLike, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> None:
    """Write ``csv_text(columns, rows)`` to ``path`` atomically."""
    write_text_atomic(path, csv_text(columns, rows))


def write_csv_atomic(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a DataFrame as CSV (no index; pandas' number formatting, NaN empty) to ``path`` atomically."""
    write_text_atomic(path, frame.to_csv(index=False, lineterminator="\n"))
