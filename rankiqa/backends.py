"""Scoring backends: the function a ``Scorer`` calls, ``forward(patches) -> scores``.

``patches`` is a uint8 (N, P, P, 3) RGB array, ``scores`` a float64 (N,) array, higher = better,
on the model's own scale. Each backend builds that function from the same quality model:

============  ===================  ==========================================================
backend       precisions           needs
============  ===================  ==========================================================
torch         fp32, bf16           nothing extra (bf16: autocast; fast with AVX512-BF16/AMX)
onnxruntime   fp32, int8           ``pip install "rankiqa[onnx]"``
openvino      fp32, bf16, int8     ``pip install "rankiqa[openvino]"``
============  ===================  ==========================================================

ONNX Runtime and OpenVINO run one ONNX graph exported from the model (uint8 NHWC patches in,
scores out; conversion to [0, 1] inside the graph). fp32 agrees with torch within float rounding
(tested within 1e-4); bf16 and int8 are approximations (tested: SRCC >= 0.999 against torch fp32
over the bundled images' ranked sets). int8 is static quantisation (QDQ, per-channel int8 weights,
uint8 activations, min/max ranges) calibrated on ``calibration_patches``: fixed crops of the
bundled images and of fixed distortions of them, so it is deterministic. The layers that compute
at 1/2 and 1/4 of the input resolution (``float_nodes``: EfficientNet-Lite0's stem, blocks 0-2 and
block 3's expansion, 23 % of its multiply-adds) stay in float: they carry the fine detail (noise, blur,
ringing) that quality depends on, and quantising them cost more ranking accuracy than all the
other layers together (docs/performance.md).

Exported and quantised graphs are cached in ``cache_dir()`` under a hash of everything they are
made from (weights, versions, recipe), so only the first use of a model pays for the export
(seconds) and the calibration (tens of seconds on 2 cores).
"""
from __future__ import annotations

import hashlib
import logging
import math
import os
import tempfile
import warnings
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable

import numpy as np

from rankiqa.errors import InvalidOption, UnknownName, UserError

PRECISIONS = ("fp32", "bf16", "int8")
ONNX_OPSET = 17
INPUT_NAME, OUTPUT_NAME = "patches", "scores"
INT8_RECIPE = "qdq-minmax-perchannel-float-stride4-v2"  # change when the calibration set or options change
FLOAT_STRIDE = 4  # int8: layers whose output is at 1/FLOAT_STRIDE of the input resolution or finer stay float
CALIBRATION_TYPES = (
    "gaussian_blur", "lens_blur", "motion_blur", "color_saturation_decrease", "jpeg", "jpeg2000",
    "white_noise", "impulse_noise", "denoise", "brighten", "darken", "pixelate", "contrast_decrease",
    "high_sharpen",
)
CALIBRATION_SEED = 1000

ForwardFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class BackendSpec:
    """A registered backend: ``build(module, precision, batch_size, patch_size, threads)`` returns
    the forward function; ``modules`` must be importable, else the user is told ``pip install``
    of ``extra``."""

    name: str
    precisions: tuple[str, ...]
    build: Callable[..., ForwardFn]
    description: str
    modules: tuple[str, ...] = ()
    extra: str | None = None


_BACKENDS: dict[str, BackendSpec] = {}


def register_backend(spec: BackendSpec) -> BackendSpec:
    """Add a backend to the table; a duplicate name is an error."""
    if spec.name in _BACKENDS:
        raise ValueError(f"backend {spec.name!r} is already registered")
    _BACKENDS[spec.name] = spec
    return spec


def list_backends() -> list[str]:
    """Registered backend names, in registration order (torch first)."""
    return list(_BACKENDS)


def get_backend(name: str) -> BackendSpec:
    """The spec of backend ``name``; ``UnknownName`` naming the known ones otherwise."""
    if name not in _BACKENDS:
        raise UnknownName(f"unknown backend {name!r}; choose one of: {', '.join(_BACKENDS)}")
    return _BACKENDS[name]


def check_backend(name: str, precision: str = "fp32") -> BackendSpec:
    """The spec of ``name`` after checking ``precision`` and that its packages are installed;
    ``UserError`` with one line (naming the ``pip install`` command for a missing extra) otherwise."""
    import importlib.util

    spec = get_backend(name)
    if precision not in PRECISIONS:
        raise UnknownName(f"unknown precision {precision!r}; choose one of: {', '.join(PRECISIONS)}")
    if precision not in spec.precisions:
        raise InvalidOption(f"backend {name!r} has no {precision} precision (it has {', '.join(spec.precisions)})",
                            params=("backend",))
    missing = [module for module in spec.modules if importlib.util.find_spec(module) is None]
    if missing:
        raise UserError(f"backend {name!r} needs {', '.join(missing)}: pip install \"rankiqa[{spec.extra}]\"")
    return spec


def build_forward(
    module, backend: str = "torch", precision: str = "fp32", batch_size: int = 32, patch_size: int = 224,
    threads: int | None = None,
) -> ForwardFn:
    """``forward(patches uint8 (N, P, P, 3)) -> float64 (N,) scores`` of ``module`` (eval mode)
    on ``backend`` at ``precision``, ``batch_size`` patches per run, ``threads`` CPU threads
    (None: torch's thread count, i.e. OMP_NUM_THREADS or the cores)."""
    spec = check_backend(backend, precision)
    if threads is None:
        import torch

        threads = torch.get_num_threads()
    return spec.build(module, precision, batch_size, patch_size, threads)


# --------------------------------------------------------------------------------------------
# torch


def _build_torch(module, precision: str, batch_size: int, patch_size: int, threads: int) -> ForwardFn:
    from rankiqa.models import forward_patches

    if precision == "bf16":
        module = _bf16_body(module)
    return partial(forward_patches, module, batch_size=batch_size)


def _bf16_body(module):
    """``module`` run under bf16 autocast; for a ``QualityModel`` only its backbone, so the score
    head sums the features in fp32 (scores stay fine-grained, not rounded to bf16's 8 bits)."""
    import torch
    from torch import nn

    class Bf16(nn.Module):
        def __init__(self, model: nn.Module):
            super().__init__()
            self.model = model

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            split = hasattr(self.model, "extract_features") and hasattr(self.model, "head")
            with torch.autocast(images.device.type, dtype=torch.bfloat16):
                out = self.model.extract_features(images) if split else self.model(images)
            return self.model.head(out.float()).squeeze(1) if split else out.float()

    return Bf16(module).eval()


# --------------------------------------------------------------------------------------------
# the ONNX graph shared by ONNX Runtime and OpenVINO


def cache_dir() -> Path:
    """Where exported and quantised graphs are kept: $RANKIQA_CACHE, else
    $XDG_CACHE_HOME/rankiqa, else ~/.cache/rankiqa."""
    if os.environ.get("RANKIQA_CACHE"):
        return Path(os.environ["RANKIQA_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rankiqa"


def _cached(name: str, make: Callable[[str], None]) -> Path:
    """Path of cache entry ``name``, made with ``make(tmp_path)`` (then moved in atomically) when
    absent; an unwritable cache falls back to a private temporary folder for this process."""
    from rankiqa.atomic import atomic_path

    target = cache_dir() / name
    if target.is_file():
        return target
    try:
        with atomic_path(target) as tmp:
            make(tmp)
        return target
    except OSError:
        fallback = Path(tempfile.mkdtemp(prefix="rankiqa-")) / name
        make(str(fallback))
        return fallback


def model_digest(module) -> str:
    """A sha256 hex digest of a module's class, config and parameters/buffers (names, dtypes,
    shapes, bytes): equal digests mean the same model."""
    import torch

    digest = hashlib.sha256(f"{type(module).__qualname__}|{getattr(module, 'config', None)!r}|{torch.__version__}".encode())
    for name, value in module.state_dict().items():
        tensor = value.detach().cpu().reshape(-1)
        digest.update(f"|{name}|{tensor.dtype}|{tuple(value.shape)}|".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def onnx_path(module) -> Path:
    """The fp32 ONNX graph of ``module`` (uint8 NHWC ``patches`` -> ``scores``; batch, height and
    width free), exported once per model and cached."""
    return _cached(f"{model_digest(module)[:32]}-fp32.onnx", partial(export_uint8_onnx, module))


def export_uint8_onnx(module, out: str | os.PathLike) -> None:
    """Write ``module`` as ONNX taking uint8 (N, H, W, 3) RGB patches, dividing by 255 inside."""
    import torch
    from torch import nn

    class Uint8Input(nn.Module):
        """uint8 (N, H, W, 3) -> the model on float (N, 3, H, W) in [0, 1], as ``forward_patches`` feeds it."""

        def __init__(self, model: nn.Module):
            super().__init__()
            self.model = model

        def forward(self, patches: torch.Tensor) -> torch.Tensor:
            return self.model(patches.permute(0, 3, 1, 2).float() / 255).reshape(-1)

    wrapper = Uint8Input(module).eval()
    example = torch.zeros(2, 64, 64, 3, dtype=torch.uint8)
    axes = {INPUT_NAME: {0: "batch", 1: "height", 2: "width"}, OUTPUT_NAME: {0: "batch"}}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapper, (example,), str(out), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes=axes, opset_version=ONNX_OPSET, dynamo=False)


def calibration_patches(patch_size: int = 224) -> np.ndarray:
    """uint8 (N, P, P, 3) crops for int8 calibration, the same on every run: one seeded crop of
    each bundled image and of each ``CALIBRATION_TYPES`` distortion of it (level cycling 1..5)."""
    import distortions
    from rankiqa.demo import bundled_images
    from rankiqa.patches import seeded_patches

    crops = []
    for i, rgb in enumerate(bundled_images().values()):
        crops.append(seeded_patches(rgb, 1, patch_size, CALIBRATION_SEED))
        for j, name in enumerate(CALIBRATION_TYPES):
            distorted = distortions.apply(rgb, name, 1 + (i + j) % 5, seed=CALIBRATION_SEED + j)
            crops.append(seeded_patches(distorted, 1, patch_size, CALIBRATION_SEED + j))
    return np.concatenate(crops)


def float_nodes(onnx_model, max_stride: int = FLOAT_STRIDE) -> list[str]:
    """Nodes left in float by int8 quantisation: those whose output is at 1/``max_stride`` of the
    input resolution or finer (the stride multiplies along the graph at every strided Conv or
    pooling; global pooling and what follows it count as coarsest). Constants are not listed."""
    stride = {tensor.name: 1 for tensor in onnx_model.graph.input}
    names = []
    for node in onnx_model.graph.node:
        inputs = [stride[name] for name in node.input if name in stride]
        if not inputs:
            continue
        out = max(inputs)
        if node.op_type.startswith("Global"):
            out = math.inf
        elif node.op_type in ("Conv", "MaxPool", "AveragePool"):
            out *= max(next((attribute.ints for attribute in node.attribute if attribute.name == "strides"), [1]))
        stride.update((name, out) for name in node.output)
        if out <= max_stride:
            names.append(node.name)
    return names


def int8_onnx_path(module, patch_size: int = 224) -> Path:
    """The int8 (QDQ) ONNX graph of ``module``, calibrated on ``calibration_patches(patch_size)``, cached."""
    import onnxruntime

    source = onnx_path(module)
    key = hashlib.sha256(source.read_bytes() + f"|{INT8_RECIPE}|{patch_size}|{onnxruntime.__version__}".encode())
    return _cached(f"{key.hexdigest()[:32]}-int8.onnx", partial(quantize_int8, source, patch_size=patch_size))


def quantize_int8(source: str | os.PathLike, out: str | os.PathLike, patch_size: int = 224) -> None:
    """Static int8 quantisation of the fp32 graph ``source`` into ``out`` (see the module docstring)."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

    patches = calibration_patches(patch_size)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{INPUT_NAME: patches[i : i + 16]} for i in range(0, len(patches), 16)])

        def get_next(self):
            return next(self.batches, None)

    logging.disable(logging.WARNING)  # the quantiser logs advice ("consider pre-processing") on the root logger
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_static(
                str(source), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                nodes_to_exclude=float_nodes(onnx.load(str(source))),
            )
    finally:
        logging.disable(logging.NOTSET)


def _graph(module, precision: str, patch_size: int) -> Path:
    return int8_onnx_path(module, patch_size) if precision == "int8" else onnx_path(module)


def _batched(run: Callable[[np.ndarray], Any], batch_size: int) -> ForwardFn:
    def forward(patches: np.ndarray) -> np.ndarray:
        patches = np.ascontiguousarray(patches, dtype=np.uint8)
        out = [np.asarray(run(patches[i : i + batch_size])).reshape(-1) for i in range(0, len(patches), batch_size)]
        return np.concatenate(out).astype(np.float64) if out else np.zeros(0)

    return forward


# --------------------------------------------------------------------------------------------
# ONNX Runtime


def _build_onnxruntime(module, precision: str, batch_size: int, patch_size: int, threads: int) -> ForwardFn:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # idle pool threads sleep instead of spinning: on a shared or small machine spinning steals the
    # cores that the decode threads of the overlapped pipeline need
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(_graph(module, precision, patch_size)), options, providers=["CPUExecutionProvider"])
    return _batched(lambda batch: session.run(None, {INPUT_NAME: batch})[0], batch_size)


# --------------------------------------------------------------------------------------------
# OpenVINO


def _build_openvino(module, precision: str, batch_size: int, patch_size: int, threads: int) -> ForwardFn:
    import openvino as ov

    core = ov.Core()
    if precision == "bf16" and "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        raise UserError("openvino bf16: this CPU has no bf16 support (needs AVX512-BF16 or AMX); use precision fp32 or "
                        "int8", params=("precision",))
    model = core.read_model(str(_graph(module, precision, patch_size)))
    model.reshape({INPUT_NAME: ov.PartialShape([-1, patch_size, patch_size, 3])})
    config = {
        "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",  # int8: float parts stay f32
        "INFERENCE_NUM_THREADS": threads,
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": 1,
    }
    compiled = core.compile_model(model, "CPU", config)
    request = compiled.create_infer_request()
    return _batched(lambda batch: request.infer({0: batch})[0], batch_size)


register_backend(BackendSpec("torch", ("fp32", "bf16"), _build_torch, "PyTorch eager (BN folded, channels-last)"))
register_backend(BackendSpec("onnxruntime", ("fp32", "int8"), _build_onnxruntime, "ONNX Runtime, CPU execution provider",
                             modules=("onnx", "onnxruntime"), extra="onnx"))
register_backend(BackendSpec("openvino", ("fp32", "bf16", "int8"), _build_openvino, "OpenVINO, CPU plugin",
                             modules=("openvino", "onnx", "onnxruntime"), extra="openvino"))
