"""Metric tables (rankiqa.metrics): per distortion, per split, summarised over splits, as markdown."""
import numpy as np
import pandas as pd
import pytest

from rankiqa.metrics import evaluate, per_split_metrics, summarise, to_markdown


def test_evaluate_per_distortion_and_missing():
    frame = pd.DataFrame({"pred": [1, 2, 3, 4, np.nan, 1, 3, 2], "mos": [1, 2, 3, 4, 5, 1, 2, 3],
                          "distortion": list("aaaaabbb")})
    result = evaluate(frame)
    assert result["n_missing"] == 1
    assert result["subsets"]["a"]["SRCC"] == pytest.approx(1.0) and result["subsets"]["a"]["n"] == 4
    assert result["subsets"]["b"]["SRCC"] == pytest.approx(0.5)
    assert np.isnan(result["subsets"]["b"]["PLCC_logistic"])
    assert result["subsets"]["ALL"]["n"] == 7


def test_summary_and_markdown_by_hand():
    per_split = pd.DataFrame({"split": [0, 1, 2], "subset": "ALL", "n": 10, "SRCC": [0.9, 0.8, 0.4],
                              "KRCC": 0.5, "PLCC": 0.6, "PLCC_logistic": [0.7, np.nan, 0.9], "RMSE_logistic": 1.0})
    row = summarise(per_split).iloc[0]
    assert row["SRCC_median"] == pytest.approx(0.8) and row["SRCC_mean"] == pytest.approx(0.7)
    assert row["SRCC_std"] == pytest.approx(np.std([0.9, 0.8, 0.4]))
    assert row["PLCC_logistic_mean"] == pytest.approx(0.8)  # NaN ignored
    text = to_markdown(summarise(per_split), "t")
    assert "| ALL | 10 | 0.800 (0.700 ± 0.216) |" in text


def test_one_distortion_gives_only_the_overall_subset_and_subsets_are_sorted():
    one = pd.DataFrame({"pred": [1.0, 2.0, 3.0], "mos": [1.0, 2.0, 3.0], "distortion": "a"})
    assert list(evaluate(one)["subsets"]) == ["ALL"]  # a per-distortion row would repeat ALL
    shuffled = pd.DataFrame({"pred": [1.0, 2.0, 3.0, 1.0, 2.0, 3.0], "mos": [1.0, 2.0, 3.0, 3.0, 2.0, 1.0],
                             "distortion": list("bbbaaa")})
    result = evaluate(shuffled)["subsets"]
    assert list(result) == ["ALL", "a", "b"]
    assert result["a"]["SRCC"] == pytest.approx(-1.0) and result["b"]["SRCC"] == pytest.approx(1.0)


def test_per_split_rows_come_in_split_order_with_their_own_metrics():
    # split 1 listed first: pred 1,2,3 against mos 3,2,1 (SRCC -1); split 0: against 1,2,3 (SRCC +1)
    predictions = pd.DataFrame({"split": [1, 1, 1, 0, 0, 0], "pred": [1.0, 2.0, 3.0] * 2,
                                "mos": [3.0, 2.0, 1.0, 1.0, 2.0, 3.0], "distortion": "a"})
    rows = per_split_metrics(predictions)
    assert rows[["split", "subset", "n"]].values.tolist() == [[0, "ALL", 3], [1, "ALL", 3]]
    assert rows["SRCC"].tolist() == pytest.approx([1.0, -1.0])


@pytest.mark.parametrize("srcc, cell, footnote", [
    ([0.9], "| 0.900 |", False),                         # one split: the value alone, no footnote
    ([0.9, 0.7], "| 0.800 (0.800 ± 0.100) |", True),     # two: median (mean ± population std)
])
def test_markdown_cells_by_number_of_splits(srcc, cell, footnote):
    per_split = pd.DataFrame({"split": range(len(srcc)), "subset": "ALL", "n": 10, "SRCC": srcc})
    text = to_markdown(summarise(per_split), "t", notes=["A paragraph.", "- a list item"])
    assert f"| ALL | 10 {cell}" in text and "| – |" in text  # metrics absent from per_split: a dash
    assert ("Cells: median over splits" in text) is footnote
    assert text.endswith("\n\nA paragraph.\n- a list item")
