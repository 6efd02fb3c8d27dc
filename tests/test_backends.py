"""Scoring backends: fp32 equal to torch, bf16/int8 rank like torch fp32, clear errors, deterministic int8.

References are computed here with torch fp32 from whatever the bundled default model is (never
hard-coded scores), so the tests hold for any weights of the same architecture.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rankiqa import backends
from rankiqa.demo import bundled_images, demo_distortions, score_ranked_sets
from rankiqa.errors import UserError
from rankiqa.metrics import srcc
from rankiqa.score import DEFAULT_WEIGHTS, Scorer, _seeded_patches, load_module

CSIQ = Path(__file__).resolve().parents[2] / "shared" / "data" / "samples" / "csiq"
SET_PATCHES = 3  # patches per image in the ranked-set comparison (the same crops for every backend)
APPROXIMATE = [("torch", "bf16"), ("onnxruntime", "int8"), ("openvino", "bf16"), ("openvino", "int8")]
FP32_TOLERANCE = 1e-4
MIN_SRCC = 0.999


def needs(backend: str, precision: str = "fp32") -> None:
    """Skip when the backend's optional packages are absent (CI installs them) or the CPU lacks bf16."""
    for module in backends.get_backend(backend).modules:
        pytest.importorskip(module)
    if backend == "openvino" and precision == "bf16":
        import openvino

        if "BF16" not in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
            pytest.skip("this CPU has no bf16 support in OpenVINO")


@pytest.fixture(scope="module", autouse=True)
def private_cache(tmp_path_factory):
    """Exported/quantised graphs go to a folder of this test module, shared by its tests."""
    old = os.environ.get("RANKIQA_CACHE")
    os.environ["RANKIQA_CACHE"] = str(tmp_path_factory.mktemp("backend-cache"))
    yield
    if old is None:
        del os.environ["RANKIQA_CACHE"]
    else:
        os.environ["RANKIQA_CACHE"] = old


@pytest.fixture(scope="module")
def default_module():
    if not DEFAULT_WEIGHTS.is_file():
        pytest.skip(f"{DEFAULT_WEIGHTS} is not bundled in this checkout")
    return load_module("default")


@pytest.fixture(scope="module")
def patches() -> np.ndarray:
    return np.concatenate([_seeded_patches(rgb, 2, 224, 5) for rgb in bundled_images().values()])


@pytest.fixture(scope="module")
def reference_sets(default_module):
    scorer = Scorer(default_module, patches=SET_PATCHES)
    return score_ranked_sets(scorer, bundled_images(), demo_distortions(), seed=0)


def distorted(result) -> np.ndarray:
    """Scores of the distorted images (levels 1..5 of every image x type), in a fixed order."""
    return np.array([result.scores[key][1:] for key in sorted(result.scores)]).ravel()


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_fp32_backends_agree_with_torch(backend, default_module, patches):
    needs(backend)
    expected = backends.build_forward(Scorer(default_module)._fast)(patches)
    got = backends.build_forward(Scorer(default_module)._fast, backend)(patches)
    assert got.dtype == np.float64 and got.shape == (len(patches),)
    np.testing.assert_allclose(got, expected, rtol=0, atol=FP32_TOLERANCE)
    scorer = Scorer(default_module, backend=backend, patches=4)
    image = bundled_images()["kodim23.png"]
    assert scorer.score(image) == pytest.approx(Scorer(default_module, patches=4).score(image), abs=FP32_TOLERANCE)


@pytest.mark.parametrize("backend, precision", APPROXIMATE)
def test_bf16_and_int8_rank_the_bundled_sets_like_torch_fp32(backend, precision, default_module, reference_sets):
    needs(backend, precision)
    scorer = Scorer(default_module, patches=SET_PATCHES, backend=backend, precision=precision)
    result = score_ranked_sets(scorer, bundled_images(), demo_distortions(), seed=0)
    got, expected = distorted(result), distorted(reference_sets)
    assert len(got) == len(bundled_images()) * 4 * 5
    assert srcc(got, expected) >= MIN_SRCC, f"SRCC {srcc(got, expected):.5f}, max |diff| {np.abs(got - expected).max():.3f}"


def csiq_series() -> dict[str, list[Path]]:
    if not CSIQ.is_dir():
        pytest.skip(f"CSIQ samples not found at {CSIQ} (../shared/data is absent)")
    return {kind: [CSIQ / f"1600.{kind}.{level}.png" for level in range(1, 6)] for kind in ("AWGN", "BLUR")}


@pytest.mark.parametrize("backend, precision", APPROXIMATE)
def test_bf16_and_int8_keep_the_csiq_series_ordered(backend, precision, default_module):
    series = csiq_series()
    needs(backend, precision)
    reference = Scorer(default_module, patches=10)
    approximate = Scorer(default_module, patches=10, backend=backend, precision=precision)
    for kind, paths in series.items():
        expected = np.array(reference.score([str(p) for p in paths]))
        got = np.array(approximate.score([str(p) for p in paths]))
        # CSIQ's DMOS grows with the level: quality, hence the score, must fall
        if np.all(np.diff(expected) < 0):
            assert np.all(np.diff(got) < 0), f"{kind}: {got} (torch fp32 {expected})"
        else:
            assert np.array_equal(np.argsort(got), np.argsort(expected)), f"{kind}: {got} vs {expected}"


# EfficientNet-Lite0 (rankiqa.models; Tan & Le 2019, table 1): a stride-2 stem, then blocks whose depthwise
# convolutions have strides 1, 2, 2, 2, 1, 2, 1 in the first block of each stage (blocks 0 | 1-2 | 3-4 | 5-7 |
# 8-10 | 11-14 | 15), 1 in the others.
# At 1/4 of the input resolution or finer: the stem (1/2), block 0 (1/2), block 1 (its expansion at 1/2,
# its depthwise to 1/4), block 2 (1/4) and block 3's expansion (1/4; its depthwise goes to 1/8).
LITE0_FLOAT_CONVS = [
    "/model/features/stem/stem.0/Conv",
    *(f"/model/features/blocks/blocks.0/{part}/{part}.0/Conv" for part in ("depthwise", "project")),
    *(f"/model/features/blocks/blocks.{i}/{part}/{part}.0/Conv" for i in (1, 2) for part in ("expand", "depthwise", "project")),
    "/model/features/blocks/blocks.3/expand/expand.0/Conv",
]


def test_float_nodes_are_those_at_a_quarter_of_the_resolution_or_finer(tmp_path):
    needs("onnxruntime")
    import onnx
    import torch
    from torch import nn

    net = nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, 1, 1), nn.Conv2d(4, 4, 3, 2, 1),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 1))
    backends.export_uint8_onnx(net.eval(), tmp_path / "toy.onnx")
    names = [name for name in backends.float_nodes(onnx.load(str(tmp_path / "toy.onnx"))) if name.startswith("/model/")]
    # strides 2, 2, 4 (MaxPool), 4, then 8 (the last Conv) and global pooling: the first four stay float
    assert names == ["/model/model.0/Conv", "/model/model.1/Relu", "/model/model.2/MaxPool", "/model/model.3/Conv"]
    assert backends.float_nodes(onnx.load(str(tmp_path / "toy.onnx")), max_stride=1) == ["/Transpose", "/Cast", "/Div"]

    torch.manual_seed(0)
    lite0 = Scorer(load_module("efficientnet_lite0"))._fast
    backends.export_uint8_onnx(lite0, tmp_path / "lite0.onnx")
    graph = onnx.load(str(tmp_path / "lite0.onnx"))
    convs = {node.name for node in graph.graph.node if node.op_type == "Conv"}
    assert [name for name in backends.float_nodes(graph) if name in convs] == LITE0_FLOAT_CONVS


def test_int8_graph_quantises_every_convolution_but_the_float_ones(default_module):
    needs("onnxruntime")
    import onnx

    graph = onnx.load(str(backends.int8_onnx_path(Scorer(default_module)._fast))).graph
    producer = {output: node.op_type for node in graph.node for output in node.output}
    convs = [node for node in graph.node if node.op_type == "Conv"]
    quantised = [node.name for node in convs if producer.get(node.input[0]) == producer.get(node.input[1]) == "DequantizeLinear"]
    untouched = [node.name for node in convs if node.input[1] in {init.name for init in graph.initializer}]
    assert untouched == LITE0_FLOAT_CONVS
    assert len(quantised) == len(convs) - len(LITE0_FLOAT_CONVS) == 39


def test_int8_calibration_is_deterministic(tmp_path):
    needs("onnxruntime")
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    module = Scorer(load_module("tiny"))._fast
    source = tmp_path / "tiny.onnx"
    backends.export_uint8_onnx(module, source)
    backends.quantize_int8(source, tmp_path / "a.onnx", patch_size=64)
    backends.quantize_int8(source, tmp_path / "b.onnx", patch_size=64)
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()
    assert b"QuantizeLinear" in (tmp_path / "a.onnx").read_bytes()  # something was quantised
    np.testing.assert_array_equal(backends.calibration_patches(64), backends.calibration_patches(64))


def test_graphs_are_exported_once_per_model_and_cached():
    needs("onnxruntime")
    import torch

    torch.manual_seed(0)
    module = Scorer(load_module("tiny"), patch_size=64)._fast
    first = backends.onnx_path(module)
    stamp = first.stat().st_mtime_ns
    assert backends.onnx_path(module) == first and first.stat().st_mtime_ns == stamp
    assert first.parent == backends.cache_dir()
    with torch.no_grad():
        module.features[0].bias.add_(1.0)
    assert backends.onnx_path(module) != first  # other weights, another graph


def test_unknown_backend_precision_and_missing_extra_are_one_line_errors(monkeypatch):
    with pytest.raises(UserError, match="unknown backend 'tensorrt'; choose one of: torch, onnxruntime, openvino"):
        backends.check_backend("tensorrt")
    with pytest.raises(UserError, match="backend 'torch' has no int8 precision"):
        backends.check_backend("torch", "int8")
    with pytest.raises(UserError, match="unknown precision 'fp8'"):
        backends.check_backend("openvino", "fp8")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a))
    with pytest.raises(UserError) as info:
        backends.check_backend("openvino", "bf16")
    assert str(info.value) == "backend 'openvino' needs openvino: pip install \"rankiqa[openvino]\""


def test_cli_names_the_extra_to_install(monkeypatch, tmp_path, capsys):
    from rankiqa.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    image = tmp_path / "a.png"
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(image)
    with pytest.raises(SystemExit) as exit_info:
        main(["score", str(image), "--model", "tiny", "--backend", "onnxruntime"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "Error: backend 'onnxruntime' needs onnxruntime: pip install \"rankiqa[onnx]\"\n"


def test_non_torch_backends_refuse_a_gpu_device():
    with pytest.raises(ValueError, match="needs backend 'torch'"):
        Scorer(load_module("tiny"), backend="onnxruntime", device="cuda")


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_fp32_backend_scores_barely_depend_on_the_batch_size(backend, default_module, patches):
    needs(backend)
    module = Scorer(default_module)._fast
    one = backends.build_forward(module, backend, batch_size=1)(patches)
    many = backends.build_forward(module, backend, batch_size=len(patches))(patches)
    np.testing.assert_allclose(one, many, rtol=0, atol=1e-5)
