"""rankiqa.metrics against scipy.stats, hand-computed cases and a known logistic."""
import warnings

import numpy as np
import pytest
from scipy import stats

from rankiqa import metrics


@pytest.fixture
def seeded_pair(rng):
    mos = rng.uniform(0, 100, 200)
    pred = 0.03 * mos + rng.normal(0, 0.6, mos.size)
    return pred, mos


def test_rank_and_linear_correlations_match_scipy(seeded_pair):
    pred, mos = seeded_pair
    assert metrics.srcc(pred, mos) == pytest.approx(stats.spearmanr(pred, mos).statistic, abs=1e-12)
    assert metrics.krcc(pred, mos) == pytest.approx(stats.kendalltau(pred, mos).statistic, abs=1e-12)
    assert metrics.plcc(pred, mos) == pytest.approx(stats.pearsonr(pred, mos).statistic, abs=1e-12)


def test_many_ties_match_scipy(rng):
    mos = rng.integers(1, 6, 300).astype(float)
    pred = np.round(mos + rng.normal(0, 1.5, mos.size))
    assert len(np.unique(pred)) < 15
    assert metrics.srcc(pred, mos) == pytest.approx(stats.spearmanr(pred, mos).statistic, abs=1e-12)
    assert metrics.krcc(pred, mos) == pytest.approx(stats.kendalltau(pred, mos, variant="b").statistic, abs=1e-12)


def test_hand_computed_cases():
    # One swapped pair out of 3: tau = (2 - 1) / 3; rho = 1 - 6 * (1 + 1) / (3 * 8).
    assert metrics.krcc([1, 3, 2], [1, 2, 3]) == pytest.approx(1 / 3)
    assert metrics.srcc([1, 3, 2], [1, 2, 3]) == pytest.approx(0.5)
    assert metrics.plcc([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert metrics.srcc([3, 2, 1], [1, 2, 3]) == pytest.approx(-1.0)


def test_logistic_fit_recovers_a_known_logistic(rng):
    x = rng.uniform(-3, 3, 400)
    truth = (4.0, 2.0, 0.5, 0.1, 3.0)
    mos = metrics.logistic5(x, *truth) + rng.normal(0, 0.02, x.size)
    fit = metrics.fit_logistic(x, mos)
    assert fit.converged
    np.testing.assert_allclose(fit.params, truth, rtol=0.05, atol=0.02)
    assert metrics.plcc_logistic(x, mos) > 0.999 > metrics.plcc(x, mos)
    assert metrics.rmse_logistic(x, mos) == pytest.approx(0.02, rel=0.2)


def test_four_parameter_fit_and_decreasing_relation(rng):
    x = rng.uniform(0, 10, 300)
    mos = metrics.logistic4(x, 1.0, 5.0, 5.0, 1.2) + rng.normal(0, 0.03, x.size)  # decreasing in x
    fit = metrics.fit_logistic(x, mos, n_params=4)
    assert fit.converged
    np.testing.assert_allclose(fit.params[:3], (1.0, 5.0, 5.0), atol=0.1)
    assert metrics.rmse_logistic(x, mos, n_params=4) == pytest.approx(0.03, rel=0.2)
    assert metrics.plcc_logistic(x, mos, n_params=4) < -0.99  # decreasing in x: negative, like raw PLCC


def test_logistic_mapping_is_never_worse_than_linear(seeded_pair):
    pred, mos = seeded_pair
    linear_rmse = np.sqrt(np.mean((np.polyval(np.polyfit(pred, mos, 1), pred) - mos) ** 2))
    assert metrics.rmse_logistic(pred, mos) <= linear_rmse + 1e-9
    assert abs(metrics.plcc_logistic(pred, mos)) >= abs(metrics.plcc(pred, mos)) - 1e-3


def test_fallback_is_linear_and_warns(monkeypatch, seeded_pair):
    pred, mos = seeded_pair

    def failing_fit(*args, **kwargs):
        raise RuntimeError("Optimal parameters not found")

    monkeypatch.setattr(metrics.optimize, "curve_fit", failing_fit)
    with pytest.warns(RuntimeWarning, match="linear mapping"):
        fit = metrics.fit_logistic(pred, mos)
    assert not fit.converged
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert metrics.plcc_logistic(pred, mos) == pytest.approx(metrics.plcc(pred, mos), abs=1e-12)


def test_all_metrics_agree_with_single_functions(seeded_pair):
    pred, mos = seeded_pair
    table = metrics.all_metrics(pred, mos)
    assert list(table) == list(metrics.METRIC_NAMES)
    assert table["PLCC_logistic"] == pytest.approx(metrics.plcc_logistic(pred, mos), abs=1e-12)
    assert table["RMSE_logistic"] == pytest.approx(metrics.rmse_logistic(pred, mos), abs=1e-12)
    assert table["SRCC"] == metrics.srcc(pred, mos)


@pytest.mark.parametrize("pred, mos, message", [
    ([1, 1, 1, 1], [1, 2, 3, 4], "pred is constant"),
    ([1, 2, 3, 4], [2, 2, 2, 2], "mos is constant"),
    ([1, np.nan, 3, 4], [1, 2, 3, 4], "NaN"),
    ([1, 2, 3], [1, 2, 3, 4], "differ in length"),
    ([1, 2], [1, 2], "at least 3"),
])
def test_bad_inputs_raise_clear_errors(pred, mos, message):
    for function in (metrics.srcc, metrics.krcc, metrics.plcc):
        with pytest.raises(ValueError, match=message):
            function(pred, mos)


def test_logistic_needs_enough_points_and_valid_n_params():
    with pytest.raises(ValueError, match="at least 6"):
        metrics.plcc_logistic([1, 2, 3, 4, 5], [1, 2, 3, 4, 5])
    with pytest.raises(ValueError, match="4 or 5"):
        metrics.fit_logistic(np.arange(10), np.arange(10), n_params=3)


def test_logistic_plcc_keeps_the_sign_of_a_backwards_model(seeded_pair):
    pred, mos = seeded_pair
    assert metrics.plcc_logistic(-pred, mos) == pytest.approx(-metrics.plcc_logistic(pred, mos), abs=1e-6)
    assert metrics.plcc_logistic(-pred, mos) < 0


def test_all_metrics_on_few_items_leaves_logistic_nan():
    table = metrics.all_metrics([1, 3, 2, 4], [1, 2, 3, 4])
    assert table["SRCC"] == pytest.approx(0.8)
    assert np.isnan(table["PLCC_logistic"]) and np.isnan(table["RMSE_logistic"])


def test_raw_rmse_by_hand_and_in_all_metrics():
    pred, mos = [1.0, 2.0, 4.0, 3.0], [1.5, 2.0, 3.0, 3.0]
    assert metrics.rmse(pred, mos) == pytest.approx(np.sqrt((0.25 + 0 + 1 + 0) / 4))
    assert metrics.all_metrics(pred, mos)["RMSE"] == pytest.approx(metrics.rmse(pred, mos))
