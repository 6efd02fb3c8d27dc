"""Scoring behaviour with realistic models that have BatchNorm: efficientnet_lite0 untrained as a
quality model (ImageNet backbone with its real BatchNorm statistics, random score head: what
``--model efficientnet_lite0:pretrained`` gives) and the bundled default model. (A randomly
initialised efficientnet_lite0 in eval mode gives the same score, to 1e-9, for every image, so it
cannot show a dependence on anything.)

A score must not depend on the batch size, the order of the inputs, or the other images scored
with it; that holds only if the model runs in eval mode (in train mode BatchNorm normalises with
the statistics of the current batch, and the default model scores one image about 3.25 at batch 64
but 0.64 at batch 1). The tiny model has no BatchNorm, so it cannot catch that bug.

Tolerance: the same patches through the same weights differ only by float32 rounding in kernels
that OpenCV/oneDNN may pick per batch size: each of the ~60 layers adds a relative error of a few
float32 epsilons (6e-8) times sqrt(fan-in <= 1152) ~ 2e-6, so about 1e-4 relative to the scale of
the activations; the score scale is set by the per-patch scores, hence ``SCALE_TOLERANCE``.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from PIL import Image

import rankiqa
from rankiqa.models import create_model
from rankiqa.score import Scorer, _seeded_patches

SCALE_TOLERANCE = 1e-4


def _image(seed: int, height: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    smooth = np.kron(rng.integers(0, 256, (height // 16 + 1, width // 16 + 1, 3)), np.ones((16, 16, 1)))[:height, :width]
    return np.clip(smooth + rng.normal(0, rng.uniform(2, 40), smooth.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def lite0() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("efficientnet_lite0", pretrained=True).eval()


@pytest.fixture(scope="module")
def default_module() -> torch.nn.Module:
    return rankiqa.load_model("default").module


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for seed, (height, width) in enumerate([(70, 90), (96, 64), (80, 80), (64, 120)]):
        paths.append(folder / f"p{seed}.png")
        Image.fromarray(_image(seed, height, width)).save(paths[-1])
    return paths


CASES = {"efficientnet_lite0": ("lite0", 64), "default": ("default_module", 224)}


def _scores(module, paths, patch_size, batch_size, patches=3):
    scorer = Scorer(module, patches=patches, patch_size=patch_size, batch_size=batch_size, seed=0)
    return np.array([result.score for result in scorer.score_many(paths)])


def _reference_scores(module, paths, patch_size, patches=3):
    """Hand reference: each image's seeded patches through the module in eval mode, one at a time."""
    module = module.eval()
    scores = []
    for path in paths:
        crops = _seeded_patches(np.asarray(Image.open(path).convert("RGB")), patches, patch_size, 0)
        with torch.no_grad():
            per_patch = [module(torch.from_numpy(c).permute(2, 0, 1)[None].float() / 255).item() for c in crops]
        scores.append(np.mean(per_patch))
    return np.array(scores)


def _tolerance(scores: np.ndarray) -> float:
    return SCALE_TOLERANCE * max(1.0, float(np.abs(scores).max()))


@pytest.mark.parametrize("case", sorted(CASES))
def test_scores_do_not_depend_on_batch_size_order_or_neighbours(case, photos, request):
    fixture, patch_size = CASES[case]
    module = request.getfixturevalue(fixture)
    reference = _reference_scores(module, photos, patch_size)
    assert np.ptp(reference) > 100 * _tolerance(reference)  # the images really score differently
    for batch_size in (1, 5, 64):
        np.testing.assert_allclose(_scores(module, photos, patch_size, batch_size), reference, rtol=0, atol=_tolerance(reference))
    reversed_order = _scores(module, photos[::-1], patch_size, 64)[::-1]
    np.testing.assert_allclose(reversed_order, reference, rtol=0, atol=_tolerance(reference))
    for index, path in enumerate(photos):
        alone = _scores(module, [path], patch_size, 64)
        assert alone[0] == pytest.approx(reference[index], abs=_tolerance(reference))


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_module_handed_over_in_train_mode_is_scored_in_eval_mode(case, photos, request):
    fixture, patch_size = CASES[case]
    module = request.getfixturevalue(fixture)
    reference = _reference_scores(module, photos, patch_size)
    with torch.no_grad():  # control, on a copy: in train mode the same patches really score differently
        crops = np.concatenate([_seeded_patches(np.asarray(Image.open(p).convert("RGB")), 3, patch_size, 0) for p in photos])
        batch = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255
        train_mode = copy.deepcopy(module).train()(batch).reshape(len(photos), 3).mean(dim=1).numpy()
    assert np.abs(train_mode - reference).max() > 100 * _tolerance(reference)
    module.train()
    try:
        scores = _scores(module, photos, patch_size, 64)
    finally:
        module.eval()
    np.testing.assert_allclose(scores, reference, rtol=0, atol=_tolerance(reference))
    # BatchNorm statistics were not updated by scoring (no forward pass in train mode)
    after = _reference_scores(module, photos, patch_size)
    np.testing.assert_array_equal(after, reference)
