"""rankiqa.metrics against scipy.stats, hand-computed cases and a known logistic."""
import dataclasses
import warnings

import numpy as np
import pytest
from scipy import optimize, stats

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
    assert metrics.krcc([1, 3, 2], [1, 2, 3]) == pytest.approx(1 / 3, abs=1e-15)
    assert metrics.srcc([1, 3, 2], [1, 2, 3]) == pytest.approx(0.5, abs=1e-15)
    assert metrics.plcc([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0, abs=1e-15)
    assert metrics.srcc([3, 2, 1], [1, 2, 3]) == pytest.approx(-1.0, abs=1e-15)


def test_hand_computed_five_items_three_discordant_pairs():
    pred, mos = [3, 1, 2, 5, 4], [1, 2, 3, 4, 5]
    # pairs (i<j) discordant: (1,2) 3>1, (1,3) 3>2, (4,5) 5>4; the other 7 of 10 concordant:
    # tau = (7 - 3) / 10
    assert metrics.krcc(pred, mos) == pytest.approx(0.4, abs=1e-15)
    # rank differences d = (2, -1, -1, 1, -1), sum d^2 = 8: rho = 1 - 6 * 8 / (5 * (25 - 1)) = 0.6
    assert metrics.srcc(pred, mos) == pytest.approx(0.6, abs=1e-15)
    # the values are their own ranks, so Pearson equals Spearman here
    assert metrics.plcc(pred, mos) == pytest.approx(0.6, abs=1e-15)
    # a positive affine map of pred changes none of the three; a negation flips every sign
    assert metrics.plcc([10 + 2 * p for p in pred], mos) == pytest.approx(0.6, abs=1e-15)
    assert metrics.krcc([-p for p in pred], mos) == pytest.approx(-0.4, abs=1e-15)


def test_hand_computed_case_with_a_tie():
    pred, mos = [1, 2, 2, 4], [1, 3, 2, 4]
    # PLCC: deviations from the means (2.25, 2.5): pred (-1.25, -0.25, -0.25, 1.75), mos (-1.5, 0.5, -0.5, 1.5);
    # sum of products 4.5, sums of squares 4.75 and 5: r = 4.5 / sqrt(4.75 * 5)
    assert metrics.plcc(pred, mos) == pytest.approx(4.5 / np.sqrt(23.75), abs=1e-15)
    # SRCC: average ranks pred (1, 2.5, 2.5, 4), mos (1, 3, 2, 4); deviations from 2.5:
    # (-1.5, 0, 0, 1.5) and (-1.5, 0.5, -0.5, 1.5): 4.5 / sqrt(4.5 * 5) = 3 / sqrt(10)
    assert metrics.srcc(pred, mos) == pytest.approx(3 / np.sqrt(10), abs=1e-15)
    # tau-b: 5 concordant, 0 discordant, 1 pair tied in pred only (items 2, 3), none in mos:
    # (5 - 0) / sqrt((6 - 1) * (6 - 0))
    assert metrics.krcc(pred, mos) == pytest.approx(5 / np.sqrt(30), abs=1e-15)


def vqeg_logistic(x, b1, b2, b3, b4, b5):
    """VQEG FR-TV Phase II (2003) 5-parameter logistic, written out independently of rankiqa:
    Q(x) = b1 * (1/2 - 1 / (1 + exp(b2 * (x - b3)))) + b4 * x + b5."""
    return b1 * (0.5 - 1.0 / (1.0 + np.exp(b2 * (x - b3)))) + b4 * x + b5


def four_parameter_logistic(x, b1, b2, b3, b4):
    """Q(x) = (b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2: b1, b2 the upper and lower asymptotes."""
    return (b1 - b2) / (1.0 + np.exp(-(x - b3) / abs(b4))) + b2


def test_logistic_formulas_equal_the_hand_written_ones(rng):
    x = rng.uniform(20, 80, 50)  # not centred on zero: (x - b3) and (x + b3) differ a lot here
    for params in [(4.0, 0.15, 50.0, 0.01, 3.0), (-2.0, 0.4, 35.0, -0.02, 60.0)]:
        np.testing.assert_allclose(metrics.logistic5(x, *params), vqeg_logistic(x, *params), rtol=1e-13, atol=1e-13)
    for params in [(5.0, 1.0, 48.0, 6.0), (1.0, 5.0, 60.0, -3.0)]:
        np.testing.assert_allclose(metrics.logistic4(x, *params), four_parameter_logistic(x, *params), rtol=1e-13, atol=1e-13)


def test_logistic_fit_recovers_a_known_logistic(rng):
    # Predictions on a scale like a model's raw output (20..80, centre 50), MOS on 1..5 plus noise.
    x = rng.uniform(20, 80, 400)
    truth = (4.0, 0.15, 50.0, 0.01, 3.0)
    noise_sd = 0.02
    mos = vqeg_logistic(x, *truth) + rng.normal(0, noise_sd, x.size)
    fit = metrics.fit_logistic(x, mos)
    assert fit.converged
    # Independent least-squares fit of the hand-written formula from the true parameters: both must
    # reach the same minimum (agreement limited by the solvers' relative tolerance, 1.49e-8).
    independent, covariance = optimize.curve_fit(vqeg_logistic, x, mos, p0=truth)
    np.testing.assert_allclose(fit(x), vqeg_logistic(x, *independent), rtol=0, atol=1e-6)
    # The truth lies within 5 standard errors of the fitted parameters (standard errors from the fit).
    assert np.all(np.abs(np.array(fit.params) - truth) <= 5 * np.sqrt(np.diag(covariance)))
    # The residual RMSE estimates the noise sd: relative standard error 1/sqrt(2 (n - 5)) = 3.6 %, 5 SE = 18 %
    assert metrics.rmse_logistic(x, mos) == pytest.approx(noise_sd, rel=5 / np.sqrt(2 * (x.size - 5)))
    mapped = vqeg_logistic(x, *independent)
    assert metrics.plcc_logistic(x, mos) == pytest.approx(stats.pearsonr(mapped, mos).statistic, abs=1e-9)
    assert metrics.plcc_logistic(x, mos) > metrics.plcc(x, mos)


def test_four_parameter_fit_and_decreasing_relation(rng):
    x = rng.uniform(0, 10, 300)
    truth = (1.0, 5.0, 5.0, 1.2)
    mos = four_parameter_logistic(x, *truth) + rng.normal(0, 0.03, x.size)  # decreasing in x
    fit = metrics.fit_logistic(x, mos, n_params=4)
    assert fit.converged
    independent, covariance = optimize.curve_fit(four_parameter_logistic, x, mos, p0=truth)
    np.testing.assert_allclose(fit(x), four_parameter_logistic(x, *independent), rtol=0, atol=1e-6)
    assert np.all(np.abs(np.abs(fit.params) - truth) <= 5 * np.sqrt(np.diag(covariance)))
    assert metrics.rmse_logistic(x, mos, n_params=4) == pytest.approx(0.03, rel=5 / np.sqrt(2 * (x.size - 4)))
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
    with pytest.warns(RuntimeWarning, match="did not converge.*linear mapping") as record:
        fit = metrics.fit_logistic(pred, mos)
    assert record[0].filename == __file__  # the warning points at the caller (stacklevel 2)
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


def test_fit_starts_from_the_documented_initial_values_and_evaluation_budget(monkeypatch, rng):
    x = rng.uniform(20, 80, 60)
    mos = vqeg_logistic(x, 4.0, 0.15, 50.0, 0.01, 3.0) + rng.normal(0, 0.05, x.size)
    calls = []
    real = optimize.curve_fit

    def recording(function, xdata, ydata, p0=None, **kwargs):
        calls.append((np.array(p0, dtype=float), kwargs))
        return real(function, xdata, ydata, p0=p0, **kwargs)

    monkeypatch.setattr(metrics.optimize, "curve_fit", recording)
    # fit_logistic's docstring: b1 = +-(max - min of mos), b2 = 1/std(pred), b3 = mean(pred), b4 = 0, b5 = mean(mos)
    for sign in (1, -1):
        metrics.fit_logistic(sign * x, mos)
        p0, kwargs = calls.pop()
        expected = [sign * (mos.max() - mos.min()), 1 / np.std(x), sign * np.mean(x), 0.0, np.mean(mos)]
        np.testing.assert_allclose(p0, expected, rtol=1e-12, atol=1e-12)
        assert kwargs["maxfev"] == 2000
    # 4 parameters: b1, b2 = max, min of mos (swapped for a negative correlation), b3 = mean, b4 = std of pred
    metrics.fit_logistic(x, mos, n_params=4)
    np.testing.assert_allclose(calls.pop()[0], [mos.max(), mos.min(), np.mean(x), np.std(x)], rtol=1e-12)
    metrics.fit_logistic(-x, mos, n_params=4)
    np.testing.assert_allclose(calls.pop()[0], [mos.min(), mos.max(), -np.mean(x), np.std(x)], rtol=1e-12)


def test_a_logistic_fit_worse_than_the_line_falls_back(monkeypatch, rng):
    pred = rng.uniform(0, 10, 50)
    mos = 0.5 * pred + 1 + rng.normal(0, 1.0, pred.size)
    slope, intercept = np.polyfit(pred, mos, 1)
    linear_sse = np.sum((slope * pred + intercept - mos) ** 2)
    # a "logistic" that is the line shifted down by delta: SSE = linear SSE + n delta^2 = 1.5 x linear SSE
    # (its residuals sum to -n delta < 0: only a SUM OF SQUARES shows it is worse)
    delta = np.sqrt(0.5 * linear_sse / pred.size)
    monkeypatch.setattr(metrics.optimize, "curve_fit",
                        lambda *args, **kwargs: (np.array([0.0, 1.0, 0.0, slope, intercept - delta]), None))
    with pytest.warns(RuntimeWarning, match="worse than a straight line") as record:
        fit = metrics.fit_logistic(pred, mos)
    assert record[0].filename == __file__  # the warning points at the caller (stacklevel 2)
    assert not fit.converged and fit.params == pytest.approx((slope, intercept), rel=1e-12)
    # non-finite mapped values (here from an infinite slope) also fall back, although their SSE is NaN
    monkeypatch.setattr(metrics.optimize, "curve_fit",
                        lambda *args, **kwargs: (np.array([0.0, 1.0, 0.0, np.inf, 0.0]), None))
    with pytest.warns(RuntimeWarning, match="worse than a straight line"):
        assert not metrics.fit_logistic(pred, mos).converged
    # exactly as good as the line: the logistic is kept
    monkeypatch.setattr(metrics.optimize, "curve_fit",
                        lambda *args, **kwargs: (np.array([0.0, 1.0, 0.0, slope, intercept]), None))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert metrics.fit_logistic(pred, mos).converged


def test_a_collapsed_mapping_gives_nan(monkeypatch):
    constant = metrics.LogisticFit(5, (0.0, 2.0), converged=False)  # linear map with slope 0
    monkeypatch.setattr(metrics, "fit_logistic", lambda *args, **kwargs: constant)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NaN by the guard, not by scipy warning about a constant input
        assert np.isnan(metrics.plcc_logistic([1, 2, 3, 4, 5, 6], [1, 3, 2, 5, 4, 6]))


def test_all_metrics_needs_n_params_plus_one_items_for_the_logistic():
    five = metrics.all_metrics([1, 3, 2, 5, 4], [1, 2, 3, 4, 5])  # 5 items, 5 parameters: no fit
    assert five["KRCC"] == pytest.approx(0.6, abs=1e-15)  # 8 concordant, 2 discordant of 10
    assert np.isnan(five["PLCC_logistic"]) and np.isnan(five["RMSE_logistic"])
    four = metrics.all_metrics([1, 3, 2, 5, 4], [1, 2, 3, 4, 5], n_params=4)  # 5 items, 4 parameters: fitted
    assert np.isfinite(four["PLCC_logistic"]) and np.isfinite(four["RMSE_logistic"])


def test_raw_rmse_by_hand_and_in_all_metrics():
    pred, mos = [1.0, 2.0, 4.0, 3.0], [1.5, 2.0, 3.0, 3.0]
    assert metrics.rmse(pred, mos) == pytest.approx(np.sqrt((0.25 + 0 + 1 + 0) / 4))
    assert metrics.all_metrics(pred, mos)["RMSE"] == pytest.approx(metrics.rmse(pred, mos))


@pytest.mark.parametrize("n_params", [4, 5])
def test_logistic_fits_from_n_params_plus_one_scores(n_params):
    # n_params + 1 scores leave one degree of freedom: the fit runs; n_params scores would be an
    # exact interpolation (no degree of freedom) and are refused, by every logistic function
    pred = np.array([1.0, 3.0, 2.0, 5.0, 4.0, 6.0])[: n_params + 1]
    mos = np.arange(1.0, n_params + 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a fallback to the line is fine here
        assert isinstance(metrics.fit_logistic(pred, mos, n_params), metrics.LogisticFit)
        assert -1 <= metrics.plcc_logistic(pred, mos, n_params) <= 1
        assert metrics.rmse_logistic(pred, mos, n_params) >= 0
    for function in (metrics.fit_logistic, metrics.plcc_logistic, metrics.rmse_logistic):
        with pytest.raises(ValueError, match=f"at least {n_params + 1} scores, got {n_params}"):
            function(pred[:n_params], mos[:n_params], n_params)


def test_a_fit_is_an_immutable_value(seeded_pair):
    fit = metrics.fit_logistic(*seeded_pair)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fit.params = (1.0, 0.0)  # type: ignore[misc]
    assert fit == metrics.fit_logistic(*seeded_pair) and hash(fit) == hash(metrics.fit_logistic(*seeded_pair))
