"""Export a quality model: TorchScript, ONNX, or a stripped checkpoint (model config + weights only).

Every export maps float (N, 3, H, W) RGB in [0, 1] to (N,) scores, higher = better, exactly like
the PyTorch module (normalisation included); the batch size N is free in all formats, and so are
H and W in ONNX.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import torch

from rankiqa.atomic import atomic_path
from rankiqa.errors import InvalidOption, UserError, check_choice
from rankiqa.imageio import MIN_SIDE

ONNX_OPSET = 17
MIN_PATCH_SIZE = MIN_SIDE  # 32: smaller examples break backbones that downsample 32x
ONNX_EXTRA = "onnx"


def require_onnx() -> None:
    """``UserError`` naming the ``onnx`` extra when the ``onnx`` package (needed to write ONNX) is missing."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise UserError(f"fmt onnx needs the onnx package: pip install 'rankiqa[{ONNX_EXTRA}]' "
                        "(or pip install onnx onnxruntime)", params=("fmt",)) from None


def strip_checkpoint(source: str | os.PathLike | dict[str, Any], out: str | os.PathLike, half: bool = True) -> Path:
    """Write a checkpoint holding only ``model_config``, ``model_state`` (float tensors in fp16
    when ``half``) and the calibrated output scale if the model has one, loadable with ``rankiqa.models.model_from_checkpoint`` and ``weights_only=True``.

    ``source`` is a training checkpoint path (e.g. a run's ``best.pt``) or a loaded payload.
    """
    from rankiqa.checkpoint import save_checkpoint
    from rankiqa.models import model_from_checkpoint

    model = model_from_checkpoint(source)  # errors name the file when ``source`` is a path
    state = {
        key: (value.half() if half and value.is_floating_point() else value).clone()
        for key, value in model.state_dict().items()
    }
    stripped = {"model_config": dict(model.config), "model_state": state}
    if model.calibration is not None:
        stripped["calibration"] = model.calibration
    save_checkpoint(out, stripped)
    return Path(out)


def export_model(module: torch.nn.Module, fmt: str, out: str | os.PathLike, patch_size: int = 224) -> Path:
    """Write ``module`` (put in eval mode) as ``torchscript`` (traced) or ``onnx`` (opset 17) to ``out``.

    The trace uses a (2, 3, patch_size, patch_size) example (``patch_size`` >= 32 pixels); outputs match
    the module within float rounding. ``onnx`` needs the ``onnx`` package (extra ``rankiqa[onnx]``);
    ``UserError`` when it is missing. Use ``strip_checkpoint`` for the ``weights`` format.
    """
    check_choice("fmt", fmt, ("torchscript", "onnx"))
    if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size < MIN_PATCH_SIZE:
        raise InvalidOption(f"patch_size must be an integer >= {MIN_PATCH_SIZE} (the smallest image side "
                            f"rankiqa scores), got {patch_size!r}", params=("patch_size",))
    if fmt == "onnx":
        require_onnx()
    module = module.eval()
    example = torch.rand(2, 3, patch_size, patch_size, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        if fmt == "torchscript":
            traced = torch.jit.trace(module, example)
            with atomic_path(out) as tmp:
                torch.jit.save(traced, tmp)
            return Path(out)
        axes = {"images": {0: "batch", 2: "height", 3: "width"}, "scores": {0: "batch"}}
        with atomic_path(out) as tmp:
            torch.onnx.export(module, (example,), tmp, input_names=["images"], output_names=["scores"],
                              dynamic_axes=axes, opset_version=ONNX_OPSET, dynamo=False)
        return Path(out)
