"""Frozen-feature ridge probe: closed-form ridge against scikit-learn, grouped inner CV, features,
the benchmark's ridge protocol (one feature pass for all splits) and its quiet warnings."""
import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from iqa_fixtures import build_noise_database
from rankiqa import metrics, probe
from rankiqa.benchmark import run_benchmark
from rankiqa.cli import cli, main
from rankiqa.finetune import FinetuneConfig
from rankiqa.models import create_model

SCORING = dict(patches=3, patch_size=32)


@pytest.fixture
def regression():
    """80 rows, 30 features (two constant), 10 groups; the target is linear in 3 features plus noise."""
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (80, 30)) * rng.uniform(0.1, 10, 30) + rng.normal(0, 5, 30)
    x[:, 7] = 3.0
    x[:, 11] = 0.0
    y = 2 * x[:, 0] - 0.5 * x[:, 1] + 0.1 * x[:, 2] + rng.normal(0, 0.5, 80)
    groups = np.repeat([f"ref{i}" for i in range(10)], 8)
    return x, y, groups


def floored_scaler():
    """scikit-learn's StandardScaler with the probe's floor: scale_ >= SCALE_FLOOR x median column std
    (constant columns keep scikit-learn's 1)."""
    from sklearn.preprocessing import StandardScaler

    class FlooredScaler(StandardScaler):
        def fit(self, x, y=None):
            super().fit(x)
            std = np.sqrt(self.var_)
            self.scale_ = np.maximum(std, probe.SCALE_FLOOR * np.median(std))
            self.scale_[std == 0] = 1.0
            return self

    return FlooredScaler()


def test_fixed_alpha_ridge_matches_scikit_learn(regression):
    sklearn = pytest.importorskip("sklearn")
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y, _ = regression
    x[:, 5] = x[:, 5] * 1e-4 + 7.0  # one column varies far less than the others: floored
    for alpha in (1e-3, 1.0, 300.0):
        ours = probe.fit_ridge(x[:60], y[:60], alpha)
        theirs = make_pipeline(floored_scaler(), Ridge(alpha=alpha)).fit(x[:60], y[:60])
        np.testing.assert_allclose(ours.predict(x[60:]), theirs.predict(x[60:]), rtol=1e-8, atol=1e-8)
        weights, bias = ours.raw_weights()
        np.testing.assert_allclose(x[60:] @ weights + bias, ours.predict(x[60:]), rtol=1e-9, atol=1e-9)
    mean, scale = probe.standardise(x[:60])
    plain = StandardScaler().fit(x[:60])
    unfloored = np.sqrt(plain.var_) >= probe.SCALE_FLOOR * np.median(np.sqrt(plain.var_))
    assert 20 < unfloored.sum() < 30  # every column but the shrunk one (and the constant ones' 1) as scikit-learn
    np.testing.assert_allclose(scale[unfloored], plain.scale_[unfloored], rtol=1e-12)
    np.testing.assert_allclose(mean, plain.mean_, rtol=1e-12)
    assert sklearn.__version__


def test_a_column_that_barely_varies_in_training_cannot_throw_predictions_off_the_scale():
    """Five training images (as a tiny split), 40 features; feature 0 is nearly constant in training
    and ordinary in the test image. Plain standardisation turns it into a z-score of 10^4."""
    rng = np.random.default_rng(2)
    x = rng.normal(0, 1, (6, 40))
    y = x[:, 1] + 0.1 * rng.normal(0, 1, 6)
    x[:5, 0] = 1e-4 * rng.normal(0, 1, 5)
    x[5, 0] = 1.0
    fitted = probe.fit_ridge(x[:5], y[:5], alpha=1.0)
    span = y[:5].max() - y[:5].min()
    assert y[:5].min() - span < fitted.predict(x[5:])[0] < y[:5].max() + span
    assert fitted.scale[0] == pytest.approx(probe.SCALE_FLOOR * np.median(x[:5].std(0)))


def test_alpha_chosen_like_a_grouped_grid_search(regression):
    pytest.importorskip("sklearn")
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline

    x, y, groups = regression
    x = x + np.random.default_rng(1).normal(0, 20, (80, 30))  # noisy features: a middle alpha wins
    alphas = probe.ALPHAS[::4]  # 11 of the 41 values: the same search, faster
    fitted = probe.fit_probe(x, y, groups, alphas=alphas, seed=3)
    folds = probe.group_folds(groups, probe.INNER_FOLDS, seed=3)
    search = GridSearchCV(make_pipeline(floored_scaler(), Ridge()), {"ridge__alpha": list(alphas)},
                          cv=folds, scoring="neg_mean_squared_error").fit(x, y)
    assert fitted.alpha == pytest.approx(search.best_params_["ridge__alpha"])
    np.testing.assert_allclose(fitted.cv_mse, -search.cv_results_["mean_test_score"], rtol=1e-7)
    assert alphas[0] < fitted.alpha < alphas[-1]


def test_group_folds_keep_each_group_on_one_side():
    groups = np.array(["a"] * 3 + ["b"] * 2 + ["c"] * 4 + ["d"] + ["e"] * 2 + ["f"] * 3)
    folds = probe.group_folds(groups, 4, seed=0)
    assert len(folds) == 4
    seen = np.concatenate([val for _, val in folds])
    assert sorted(seen) == list(range(len(groups)))  # every row validated exactly once
    for train, val in folds:
        assert not set(groups[train]) & set(groups[val])
    assert len(probe.group_folds(groups[:5], 5, seed=0)) == 2  # at most one fold per group


def test_probe_fits_a_linear_target_and_falls_back_with_one_group(regression):
    x, y, groups = regression
    fitted = probe.fit_probe(x[:64], y[:64], groups[:64])
    assert metrics.rmse(fitted.predict(x[64:]), y[64:]) < 0.25 * y.std()
    single = probe.fit_probe(x[:8], y[:8], groups[:8])
    assert single.alpha == probe.FALLBACK_ALPHA and single.cv_mse == ()


def test_image_features_are_whole_image_full_and_half_scale(small_image):
    model = create_model("tiny").eval()
    features = probe.image_features(model, small_image)
    assert features.shape == (2 * model.feature_dim,)
    full = torch.from_numpy(small_image).permute(2, 0, 1)[None].float() / 255
    half = np.floor(small_image.reshape(24, 2, 32, 2, 3).astype(np.float64).mean(axis=(1, 3)) + 0.5) / 255  # 2x2 box
    with torch.no_grad():
        expected_full = model.extract_features(full)[0].double().numpy()
        expected_half = model.extract_features(torch.from_numpy(half).permute(2, 0, 1)[None].float())[0].double().numpy()
    np.testing.assert_allclose(features[: model.feature_dim], expected_full, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(features[model.feature_dim :], expected_half, rtol=1e-3, atol=1e-4)


@pytest.fixture
def noise_csv(tmp_path):
    return build_noise_database(tmp_path / "db", n_references=8, levels=4)


def test_ridge_benchmark_costs_one_feature_pass_for_all_splits(noise_csv, tmp_path, monkeypatch):
    calls = []
    original = probe.image_features

    def counting(module, image):
        calls.append(image.shape)
        return original(module, image)

    monkeypatch.setattr(probe, "image_features", counting)
    result = run_benchmark([("csv", noise_csv)], "tiny", tmp_path / "out", probe="ridge", splits=3,
                           cache_dir=tmp_path / "cache", **SCORING)
    assert len(calls) == 32  # 8 references x 4 levels, once, for 3 splits
    assert sorted(result.predictions["split"].unique()) == [0, 1, 2]
    assert "ridge probe, 3 split(s)" in result.markdown and "Ridge alpha per split" in result.markdown
    per_split = pd.read_csv(tmp_path / "out" / "per_split.csv")
    assert per_split["alpha"].notna().all()
    mos = result.predictions["mos"]
    assert result.predictions["pred"].between(mos.min() - mos.std(), mos.max() + mos.std()).all()  # MOS scale
    table = result.table.set_index("subset")
    assert np.isfinite(table.loc["ALL", "RMSE_median"])
    calls.clear()
    again = run_benchmark([("csv", noise_csv)], "tiny", tmp_path / "again", probe="ridge", splits=3,
                          cache_dir=tmp_path / "cache", **SCORING)
    assert calls == []  # every feature read from the cache
    pd.testing.assert_frame_equal(again.predictions, result.predictions)


def test_skips_and_logistic_fallbacks_are_listed_once_under_the_table(noise_csv, tmp_path, monkeypatch, capfd):
    frame = pd.read_csv(noise_csv)
    broken = noise_csv.parent / frame["path"].iloc[5]
    broken.write_bytes(b"not an image")
    from scipy import optimize

    def failing_fit(*args, **kwargs):
        raise RuntimeError("Optimal parameters not found")

    monkeypatch.setattr(optimize, "curve_fit", failing_fit)
    result = CliRunner().invoke(cli, ["benchmark", "--database", "csv", "--root", str(noise_csv), "--model", "tiny",
                                      "--probe", "ridge", "--splits", "2", "--patches", "3", "--patch-size", "32",
                                      "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    captured = capfd.readouterr()
    assert "RuntimeWarning" not in result.output + captured.err + captured.out
    warnings_txt = (tmp_path / "out" / "warnings.txt").read_text().splitlines()
    skip = [line for line in warnings_txt if line.startswith(f"skipped {broken}")]
    assert len(skip) == 1 and "not an image" in skip[0]
    fallback = [line for line in warnings_txt if line.startswith("logistic fit did not converge")]
    assert len(fallback) == 1 and "times)" in fallback[0]  # one line with a count, not one per fit
    table_end = result.output.index("| ALL |")
    notes = result.output[table_end:]
    assert "warning(s), all in warnings.txt" in notes and f"skipped {broken}" in notes


def test_one_reference_cannot_be_split_by_content_but_image_keys_can(tmp_path):
    csv_path = build_noise_database(tmp_path / "db", n_references=1, levels=5)
    with pytest.raises(SystemExit) as exc:
        main(["benchmark", "--database", "csv", "--root", str(csv_path), "--model", "tiny", "--probe", "ridge",
              "--patches", "3", "--patch-size", "32", "--out", str(tmp_path / "o"), "--cache", str(tmp_path / "c")])
    assert exc.value.code == 2
    frame = pd.read_csv(csv_path)
    frame.assign(reference=frame["path"]).to_csv(tmp_path / "db" / "by_image.csv", index=False)
    result = run_benchmark([("csv", tmp_path / "db" / "by_image.csv")], "tiny", tmp_path / "o", probe="ridge",
                           splits=2, train_fraction=0.6, cache_dir=tmp_path / "c", **SCORING)
    assert (result.predictions.groupby("split").size() == 2).all()


@pytest.mark.parametrize("args, message", [
    (["--probe", "ridge", "--finetune"], "cannot be combined with --probe ridge"),
    (["--probe", "lasso"], "Invalid value for '--probe'"),
])
def test_probe_option_errors(args, message, noise_csv, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["benchmark", "--database", "csv", "--root", str(noise_csv), "--model", "tiny", *args,
              "--out", str(tmp_path / "o")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_finetune_protocol_collects_skips_instead_of_printing_them(noise_csv, tmp_path, capfd):
    broken = noise_csv.parent / pd.read_csv(noise_csv)["path"].iloc[0]
    broken.write_bytes(b"not an image")
    result = run_benchmark([("csv", noise_csv)], "tiny", tmp_path / "out", probe="finetune", splits=1,
                           finetune_config=FinetuneConfig(epochs=1, batch_size=8, workers=0, device="cpu"), **SCORING)
    assert "fine-tuned, 1 split(s)" in result.markdown
    assert f"skipped {broken}" in (tmp_path / "out" / "warnings.txt").read_text()
    assert "skipped" not in capfd.readouterr().err
