"""Metric tables (rankiqa.metrics): per distortion, per split, summarised over splits, as markdown."""
import numpy as np
import pandas as pd
import pytest

from rankiqa.metrics import evaluate, summarise, to_markdown


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
