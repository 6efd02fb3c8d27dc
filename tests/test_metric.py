"""The torch-native metric: shapes, gradients, eval mode, grid crops, calibration, agreement, hub, doc example."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

import distortions
import rankiqa
from rankiqa.checkpoint import save_checkpoint
from rankiqa.errors import UserError
from rankiqa.metrics import logistic5
from rankiqa.models import create_model
from rankiqa.score import DEFAULT_WEIGHTS
from rankiqa.torch_metric import QualityMetric, calibration_map

REPO = Path(__file__).resolve().parents[1]
needs_default = pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason=f"default weights not bundled ({DEFAULT_WEIGHTS})")


@pytest.fixture
def tiny() -> nn.Module:
    torch.manual_seed(0)
    return create_model("tiny")


class BatchNormNet(nn.Module):
    """Conv -> BatchNorm -> pooled linear score: train-mode BatchNorm would mix the batch."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(4, 1)

    def forward(self, x):
        return self.head(self.body(x)).squeeze(1)


def test_output_shape_direction_and_input_gradients(tiny):
    iqa = QualityMetric(tiny, patch_size=32)
    x = torch.rand(3, 3, 40, 56, requires_grad=True)
    scores = iqa(x)
    assert scores.shape == (3,) and iqa.lower_better is False
    scores.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in iqa.parameters())


def test_whole_mode_is_the_model_on_the_whole_image(tiny):
    x = torch.rand(2, 3, 48, 64)
    with torch.no_grad():
        np.testing.assert_allclose(QualityMetric(tiny, patch_size=32)(x), tiny(x), rtol=1e-6)


def test_grid_mode_is_the_mean_over_a_hand_listed_grid(tiny):
    x = torch.rand(2, 3, 64, 96)
    # 64 x 96 with 32 px crops: rows 0, 32 and columns 0, 32, 64 (edge to edge, no gaps)
    corners = [(0, 0), (0, 32), (0, 64), (32, 0), (32, 32), (32, 64)]
    with torch.no_grad():
        expected = torch.stack([tiny(x[:, :, r:r + 32, c:c + 32]) for r, c in corners]).mean(0)
        np.testing.assert_allclose(QualityMetric(tiny, mode="grid", patch_size=32)(x), expected, rtol=1e-5)


def test_small_images_are_upscaled_to_the_patch_size_keeping_the_aspect(tiny):
    x = torch.rand(1, 3, 40, 50)
    upscaled = torch.nn.functional.interpolate(x, size=(64, 80), mode="bicubic", align_corners=False).clamp(0, 1)
    with torch.no_grad():
        assert QualityMetric(tiny, patch_size=64)(x).item() == pytest.approx(tiny(upscaled).item(), rel=1e-6)


def test_batchnorm_stays_in_eval_mode_and_a_score_ignores_its_batch():
    torch.manual_seed(0)
    net = BatchNormNet()
    with torch.no_grad():
        net.body[1].running_mean.uniform_(-0.2, 0.2)
    stats = net.body[1].running_mean.clone()
    iqa = QualityMetric(net, patch_size=32)
    iqa.train()  # a parent module switching to training mode must not unfreeze BatchNorm
    assert iqa.training and not net.training
    first = torch.rand(1, 3, 32, 32, requires_grad=True)
    alone = iqa(first)
    together = iqa(torch.cat([first, torch.rand(4, 3, 32, 32)]))
    together.sum().backward()
    assert together[0].item() == pytest.approx(alone.item(), abs=1e-6)
    assert torch.equal(net.body[1].running_mean, stats)
    assert first.grad is not None and torch.isfinite(first.grad).all()


@pytest.mark.parametrize("bad, message", [
    (torch.rand(1, 3, 31, 64), "at least 32"),
    (torch.rand(3, 64, 64), "(N, 3, H, W)"),
    (torch.rand(1, 4, 64, 64), "(N, 3, H, W)"),
    (torch.zeros(1, 3, 64, 64, dtype=torch.uint8), "float"),
])
def test_bad_inputs_raise_one_clear_error(tiny, bad, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        QualityMetric(tiny, patch_size=32)(bad)


def test_bad_options_raise_user_errors(tiny):
    for options, message in [({"scale": "percent"}, "scale must be"), ({"mode": "random"}, "mode must be"),
                             ({"patch_size": 8}, "patch_size"), ({"scale": "calibrated"}, "no calibrated scale")]:
        with pytest.raises(UserError, match=message):
            QualityMetric(tiny, **options)


def test_knot_calibration_matches_numpy_interp_and_is_differentiable_inside():
    knots = {"raw": [-2.0, 0.0, 1.0, 4.0], "mos": [1.0, 2.0, 4.0, 4.5]}
    raw = torch.tensor([-5.0, -1.0, 0.5, 2.5, 9.0], dtype=torch.float64, requires_grad=True)
    mapped = calibration_map(knots)(raw)
    np.testing.assert_allclose(mapped.detach(), np.interp(raw.detach(), knots["raw"], knots["mos"]), rtol=1e-12)
    mapped.sum().backward()
    np.testing.assert_allclose(raw.grad, [0.0, 0.5, 2.0, 0.5 / 3, 0.0], rtol=1e-12)


def test_logistic_calibration_matches_the_numpy_logistic():
    params = [3.0, 1.5, 0.2, 0.1, 2.5]
    raw = np.linspace(-4, 4, 9)
    mapped = calibration_map({"kind": "logistic5", "params": params})(torch.tensor(raw))
    np.testing.assert_allclose(mapped, logistic5(raw, *params), rtol=1e-10)


def test_logistic4_calibration_matches_the_clipped_numpy_logistic():
    low, high, centre, width = 0.5, 5.5, 1.0, 2.0
    raw = np.linspace(-12, 12, 13)
    expected = np.clip(low + (high - low) / (1 + np.exp(-(raw - centre) / width)), 1, 5)
    mapped = calibration_map({"kind": "logistic4", "params": [low, high, centre, width], "scale": "kadid"})(torch.tensor(raw))
    np.testing.assert_allclose(mapped, expected, rtol=1e-10)


def test_unknown_calibration_forms_are_refused():
    for bad in [{"a": 1}, {"raw": [0, 0], "mos": [1, 2]}, {"raw": [0, 1, 2], "mos": [1, 2]}, [1, 2]]:
        with pytest.raises(UserError, match="calibration map"):
            calibration_map(bad)


def test_calibrated_scale_applies_the_map_to_raw_scores(tiny):
    knots = {"raw": [-10.0, 10.0], "mos": [1.0, 5.0]}
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        raw = QualityMetric(tiny, patch_size=32)(x)
        calibrated = QualityMetric(tiny, scale="calibrated", calibration=knots, patch_size=32)(x)
    np.testing.assert_allclose(calibrated, np.interp(raw, knots["raw"], knots["mos"]), rtol=1e-6)


def test_a_checkpoint_without_calibration_has_no_calibrated_scale(tmp_path, tiny):
    path = tmp_path / "tiny.pt"
    save_checkpoint(path, {"model_config": tiny.config, "model_state": tiny.state_dict()})
    iqa = rankiqa.metric(str(path), device="cpu")
    assert isinstance(iqa, QualityMetric) and iqa.scale == "raw"
    with pytest.raises(UserError, match="no calibrated scale"):
        rankiqa.metric(str(path), device="cpu", scale="calibrated")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_inputs_on_another_device_are_moved_and_scores_come_back(tiny):
    iqa = QualityMetric(tiny, patch_size=32).to("cuda")
    x = torch.rand(2, 3, 40, 40, requires_grad=True)
    scores = iqa(x)
    assert scores.device == x.device
    scores.sum().backward()
    assert torch.isfinite(x.grad).all()
    np.testing.assert_allclose(scores.detach(), iqa(x.cuda()).detach().cpu(), rtol=1e-4)


@needs_default
@pytest.mark.slow
def test_metric_ranks_the_bundled_ranked_sets_like_rankiqa_score():
    from rankiqa.demo import bundled_images, demo_distortions
    from rankiqa.score import load_model

    scorer = load_model("default", patches=5)  # rankiqa demo's protocol
    metrics = {mode: rankiqa.metric(device="cpu", mode=mode) for mode in ("whole", "grid")}
    reference, ours = [], {mode: [] for mode in metrics}
    for rgb in bundled_images().values():
        versions = [rgb] + [level for name in demo_distortions() for level in distortions.apply_levels(rgb, name, seed=0)]
        reference += scorer.score(versions)
        batch = torch.from_numpy(np.stack(versions)).permute(0, 3, 1, 2).float() / 255
        with torch.no_grad():
            for mode, iqa in metrics.items():
                ours[mode] += iqa(batch).tolist()
    assert len(reference) == 6 * (1 + 4 * 5)
    for mode, scores in ours.items():
        assert spearmanr(reference, scores)[0] >= 0.95, mode


@needs_default
def test_torch_hub_local_load_returns_the_same_metric():
    hub = torch.hub.load(str(REPO), "rankiqa", source="local", device="cpu")
    direct = rankiqa.metric(device="cpu")
    assert type(hub) is type(direct) and hub.lower_better is False
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        np.testing.assert_array_equal(hub(x), direct(x))


@needs_default
def test_the_documented_loss_example_raises_the_score_of_a_blurred_image():
    text = (REPO / "docs" / "metric.md").read_text(encoding="utf-8")
    example = next(block for block in re.findall(r"```python\n(.*?)```", text, re.S) if "optimizer.step()" in block)
    namespace: dict = {}
    exec(compile(example, "docs/metric.md", "exec"), namespace)
    assert namespace["grad_is_finite"]
    assert namespace["after"] > namespace["before"]
