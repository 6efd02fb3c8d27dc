"""rankiqa.csvio: the one CSV writer, checked against hand-written file contents."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rankiqa.csvio import csv_text, write_csv_atomic, write_rows_atomic


def test_rows_are_written_with_a_header_newline_ends_and_csv_quoting(tmp_path):
    rows = [{"path": "a,b.png", "reason": 'said "no"'}, {"path": "c.png"}]
    # a comma or a quote is quoted (quotes doubled); a missing key is empty; every line ends in \n
    expected = 'path,reason\n"a,b.png","said ""no"""\nc.png,\n'
    assert csv_text(["path", "reason"], rows) == expected
    write_rows_atomic(tmp_path / "out.csv", ["path", "reason"], rows)
    assert (tmp_path / "out.csv").read_bytes() == expected.encode("utf-8")


def test_a_key_outside_the_columns_is_an_error():
    with pytest.raises(ValueError, match="extra"):
        csv_text(["path"], [{"path": "a.png", "extra": 1}])


def test_frames_are_written_without_index_and_nan_empty(tmp_path):
    frame = pd.DataFrame({"path": ["é.png", "b.png"], "score": [0.5, np.nan], "n": [1, 2]})
    write_csv_atomic(frame, tmp_path / "frame.csv")
    assert (tmp_path / "frame.csv").read_bytes() == "path,score,n\né.png,0.5,1\nb.png,,2\n".encode("utf-8")
