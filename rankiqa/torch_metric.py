"""A torch-native no-reference quality metric: batched tensors in, differentiable scores out.

    >>> import rankiqa, torch
    >>> iqa = rankiqa.metric()                      # the bundled default model, eval mode, frozen
    >>> iqa(torch.rand(2, 3, 64, 64)).shape         # (N, 3, H, W) in [0, 1], H, W >= 32
    torch.Size([2])
    >>> iqa.lower_better
    False

Scale. ``scale="raw"``: the model's own score (higher = better, unbounded; adjacent distortion
levels of one photo differ by about 1 unit), the same scale as ``rankiqa score``. ``scale="calibrated"``:
the raw score passed through the checkpoint's monotone calibration map to a human scale (see the model
card); a model without a calibration map raises ``UserError``. The map is built from torch ops, so it is
differentiable inside its range; outside the calibrated range it is flat (as ``numpy.interp``), so the
gradient there is zero: use the raw scale for losses.

Protocol, and how it differs from ``rankiqa score``. ``rankiqa score`` averages the model over 30
*random* 224 px crops at native resolution (positions seeded by the image size). Random positions
inside autograd would make a loss noisy, so the metric is deterministic:

* ``mode="whole"`` (default): the whole image in one forward pass. The backbone ends in global
  average pooling, so this is close to averaging the model over every crop position at once.
* ``mode="grid"``: the mean over a fixed regular grid of ``patch_size`` crops covering the image
  (``rankiqa.patches.grid_positions``, the heat-map grid), a function of the image size only.

In both modes an image whose short side is below ``patch_size`` is first upscaled (bicubic, aspect
kept, clamped to [0, 1]) so that its short side equals ``patch_size``, as ``rankiqa score`` does.
Scores therefore differ in value from ``rankiqa score`` but agree in rank (tested: SRCC >= 0.95 on the
bundled ranked sets). The model always runs in eval mode (BatchNorm uses its running statistics, no
dropout), even inside a module put in training mode, and its parameters do not require gradients;
gradients flow to the input only.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from rankiqa.errors import InvalidOption, UserError, check_choice

SCALES = ("raw", "calibrated")
MODES = ("whole", "grid")
MIN_INPUT_SIDE = 32
MOS_RANGE = (1.0, 5.0)  # KADID-10k's MOS scale, as rankiqa.calibration clips it


def calibration_map(calibration: dict[str, Any]) -> Callable[[torch.Tensor], torch.Tensor]:
    """A differentiable torch function raw score -> calibrated score, from a checkpoint's map.

    Accepted forms: ``{"kind": "logistic4", "params": [low, high, centre, width]}`` (what
    ``rankiqa train --targets`` stores; clipped to the 1-5 MOS range like ``rankiqa.calibration.to_mos``);
    monotone knots ``{"raw": [...], "mos": [...]}`` (or ``"x"``/``"y"``), linear
    between knots and flat outside them like ``numpy.interp``; or the VQEG logistic
    ``{"kind": "logistic5", "params": [b1, b2, b3, b4, b5]}`` of ``rankiqa.metrics.logistic5``.
    """
    if not isinstance(calibration, dict):
        raise UserError(f"calibration map must be a dict, got {type(calibration).__name__}")
    if calibration.get("kind") == "logistic4":  # rankiqa.calibration.fit_scale's map, clipped like to_mos
        low, high, centre, width = (float(v) for v in calibration["params"])
        return lambda s: (low + (high - low) * torch.sigmoid((s - centre) / width)).clamp(*MOS_RANGE)
    if calibration.get("kind") == "logistic5":
        b1, b2, b3, b4, b5 = (float(v) for v in calibration["params"])
        return lambda s: b1 * (0.5 - torch.sigmoid(-b2 * (s - b3))) + b4 * s + b5
    for x_key, y_key in (("raw", "mos"), ("x", "y")):
        if x_key in calibration and y_key in calibration:
            xs = torch.as_tensor(calibration[x_key], dtype=torch.float64)
            ys = torch.as_tensor(calibration[y_key], dtype=torch.float64)
            if xs.ndim != 1 or xs.shape != ys.shape or len(xs) < 2 or not bool((xs[1:] > xs[:-1]).all()):
                raise UserError("calibration map: knots must be two equal-length lists, raw values strictly increasing")
            return lambda s: _interp(s, xs.to(s.device, s.dtype), ys.to(s.device, s.dtype))
    raise UserError(f"calibration map of an unknown form (keys: {', '.join(sorted(calibration))}); "
                    "expected knots {'raw': [...], 'mos': [...]} or {'kind': 'logistic5', 'params': [...]}")


def _interp(s: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """``numpy.interp(s, xs, ys)`` in torch ops (differentiable in ``s`` between the knots)."""
    clamped = s.clamp(xs[0], xs[-1])
    upper = torch.searchsorted(xs, clamped.detach().contiguous(), right=True).clamp(1, len(xs) - 1)
    x0, x1, y0, y1 = xs[upper - 1], xs[upper], ys[upper - 1], ys[upper]
    return y0 + (clamped - x0) / (x1 - x0) * (y1 - y0)


class QualityMetric(nn.Module):
    """No-reference image quality as an ``nn.Module``: (N, 3, H, W) float in [0, 1] -> (N,) scores.

    Higher is better (``lower_better = False``); use ``-metric(x).mean()`` as a loss term.
    ``scale``: "raw" or "calibrated" (needs ``calibration``, a map as ``calibration_map`` reads);
    ``mode``: "whole" (one forward pass over the whole image) or "grid" (mean over a fixed grid of
    ``patch_size`` crops); smaller images are upscaled to a short side of ``patch_size`` pixels.
    Inputs on another device than the metric are moved there; scores come back on the input's device.
    """

    lower_better = False

    def __init__(self, model: nn.Module, scale: str = "raw", calibration: dict | None = None,
                 mode: str = "whole", patch_size: int = 224):
        super().__init__()
        scale = "calibrated" if scale == "mos" else scale  # the name rankiqa.Scorer.score uses
        check_choice("scale", scale, SCALES)
        check_choice("mode", mode, MODES)
        if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size < MIN_INPUT_SIDE:
            raise InvalidOption(f"patch_size must be an int >= {MIN_INPUT_SIDE}, got {patch_size!r}", params=("patch_size",))
        if scale == "calibrated" and calibration is None:
            raise UserError("scale='calibrated': this model has no calibrated scale (its checkpoint carries "
                            "no calibration map); use scale='raw'")
        self.model = model.eval().requires_grad_(False)
        self.scale, self.mode, self.patch_size = scale, mode, patch_size
        self.calibration = calibration
        self._calibrate = calibration_map(calibration) if scale == "calibrated" else None

    def train(self, mode: bool = True) -> QualityMetric:
        """Sets the flag like any module, but the model stays in eval mode (frozen BatchNorm, no dropout)."""
        super().train(mode)
        self.model.eval()
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float RGB in [0, 1], H, W >= 32 -> (N,) scores, higher = better."""
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"images must be a (N, 3, H, W) tensor, got {shape}")
        if not images.is_floating_point():
            raise ValueError(f"images must be float in [0, 1], got dtype {images.dtype}")
        if min(images.shape[2:]) < MIN_INPUT_SIDE:
            raise ValueError(f"images must be at least {MIN_INPUT_SIDE} px on each side, got {tuple(images.shape[2:])}")
        weight = next(self.model.parameters(), None)
        x = images if weight is None else images.to(weight.device, weight.dtype)
        x = self._fit(x)
        if self.mode == "whole":
            scores = self.model(x)
        else:
            scores = self._grid_mean(x)
        if self._calibrate is not None:
            scores = self._calibrate(scores)
        return scores.to(images.device)

    def _fit(self, x: torch.Tensor) -> torch.Tensor:
        """Upscale so that the short side is ``patch_size`` (as ``rankiqa.imageio.fit_to_patch``)."""
        height, width = x.shape[2:]
        short = min(height, width)
        if short >= self.patch_size:
            return x
        scale = self.patch_size / short
        size = (max(self.patch_size, round(height * scale)), max(self.patch_size, round(width * scale)))
        return F.interpolate(x, size=size, mode="bicubic", align_corners=False).clamp(0, 1)

    def _grid_mean(self, x: torch.Tensor) -> torch.Tensor:
        from rankiqa.patches import grid_positions

        size = self.patch_size
        positions = grid_positions(tuple(x.shape[2:]), size)
        crops = torch.stack([x[:, :, r:r + size, c:c + size] for r, c in positions.tolist()], dim=1)
        return self.model(crops.flatten(0, 1)).view(len(x), len(positions)).mean(dim=1)

    def extra_repr(self) -> str:
        return f"scale={self.scale!r}, mode={self.mode!r}, patch_size={self.patch_size}, lower_better=False"


def metric(name: str = "default", device: str | torch.device | None = None, scale: str = "raw",
           mode: str = "whole", patch_size: int = 224) -> QualityMetric:
    """A ``QualityMetric`` for ``name`` ("default", a checkpoint path or a backbone name, as
    ``rankiqa.load_model``), on ``device`` (None: "cuda" when available, else "cpu").

    ``scale="calibrated"`` raises ``UserError`` when the model carries no calibration map.
    """
    from rankiqa.models import load_module

    module = load_module(name)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    calibration = getattr(module, "calibration", None)
    if scale in ("calibrated", "mos") and calibration is None:
        raise UserError(f"model {str(name)!r} has no calibrated scale (its checkpoint carries no calibration map); "
                        "use scale='raw'")
    return QualityMetric(module, scale=scale, calibration=calibration, mode=mode,
                         patch_size=patch_size).to(device)
