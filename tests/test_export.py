"""Export: TorchScript and ONNX outputs equal the PyTorch model; stripped checkpoints reload."""
from __future__ import annotations

import numpy as np
import onnxruntime
import pytest
import torch
from click.testing import CliRunner

from rankiqa.checkpoint import load_checkpoint, save_checkpoint
from rankiqa.cli import cli
from rankiqa.export import export_model, strip_checkpoint
from rankiqa.models import create_model, model_from_checkpoint

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")


def _trained_like(backbone: str) -> torch.nn.Module:
    """A model whose BatchNorm statistics are not the identity (as after training)."""
    torch.manual_seed(0)
    model = create_model(backbone)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.fixture
def run_checkpoint(tmp_path):
    model = _trained_like("tiny")
    path = tmp_path / "run" / "best.pt"
    save_checkpoint(path, {"model_config": model.config, "model_state": model.state_dict(), "step": 7, "optimizer_state": {}})
    return path


def _inputs(batch: int, size: int) -> torch.Tensor:
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(batch + size))


def _float32_tolerance(expected: np.ndarray) -> float:
    """Another runtime reorders float32 sums: each layer adds a relative error of about sqrt(fan-in)
    float32 epsilons (fan-in <= 1152 here: 34 x 6e-8 = 2e-6); independent errors of up to ~60 layers add in
    quadrature, sqrt(60) x 2e-6 = 1.6e-5: within 2e-5 of the output scale."""
    return 2e-5 * max(1.0, float(np.abs(expected).max()))


def _check_exports(model: torch.nn.Module, tmp_path, patch_size: int, sizes: list[tuple[int, int]]) -> None:
    export_model(model, "torchscript", tmp_path / "m.ts", patch_size=patch_size)
    export_model(model, "onnx", tmp_path / "m.onnx", patch_size=patch_size)
    _check_exported_files(model, tmp_path / "m.ts", tmp_path / "m.onnx", sizes)


def _check_exported_files(model: torch.nn.Module, torchscript, onnx, sizes: list[tuple[int, int]]) -> None:
    """The TorchScript and ONNX files compute what ``model`` computes, batch sizes and sides ``sizes``."""
    script = torch.jit.load(str(torchscript))
    session = onnxruntime.InferenceSession(str(onnx))
    for batch, size in sizes:
        x = _inputs(batch, size)
        with torch.no_grad():
            expected = model(x).numpy()
            from_script = script(x).numpy()
        from_onnx = session.run(["scores"], {"images": x.numpy()})[0]
        assert from_onnx.shape == expected.shape == (batch,)
        np.testing.assert_allclose(from_script, expected, atol=_float32_tolerance(expected), rtol=0)
        np.testing.assert_allclose(from_onnx, expected, atol=_float32_tolerance(expected), rtol=0)


def test_torchscript_and_onnx_match_pytorch_tiny(tmp_path):
    _check_exports(_trained_like("tiny"), tmp_path, 32, [(2, 32), (5, 32), (1, 48)])


@pytest.mark.slow
def test_torchscript_and_onnx_match_pytorch_efficientnet_lite0(tmp_path):
    _check_exports(_trained_like("efficientnet_lite0"), tmp_path, 224, [(3, 224)])


@pytest.mark.parametrize("half", [True, False])
def test_strip_keeps_only_config_and_weights(tmp_path, run_checkpoint, half):
    out = strip_checkpoint(run_checkpoint, tmp_path / "default.pt", half=half)
    payload = load_checkpoint(out)
    assert sorted(payload) == ["model_config", "model_state"]
    dtype = torch.float16 if half else torch.float32
    assert all(t.dtype == dtype for t in payload["model_state"].values() if t.is_floating_point())
    original = model_from_checkpoint(run_checkpoint)
    if half:  # the reference for float16 storage: the original weights rounded to float16 and back
        original.load_state_dict({k: v.half().float() if v.is_floating_point() else v for k, v in original.state_dict().items()})
    stripped = model_from_checkpoint(out)
    x = _inputs(4, 32)
    with torch.no_grad():
        torch.testing.assert_close(stripped(x), original(x), atol=0.0, rtol=0.0)
    assert out.stat().st_size < run_checkpoint.stat().st_size


def test_cli_exports_each_format(tmp_path, run_checkpoint):
    runner = CliRunner()
    for fmt, name in [("torchscript", "m.ts"), ("onnx", "m.onnx"), ("weights", "w.pt")]:
        result = runner.invoke(cli, ["export", "--weights", str(run_checkpoint), "--format", fmt, "--out", str(tmp_path / name), "--patch-size", "32"])
        assert result.exit_code == 0, result.output
    # what the CLI wrote computes what the checkpoint's torch model computes
    model = model_from_checkpoint(run_checkpoint).eval()
    _check_exported_files(model, tmp_path / "m.ts", tmp_path / "m.onnx", [(3, 32), (1, 48)])
    weights = model_from_checkpoint(tmp_path / "w.pt").eval()
    with torch.no_grad():  # float16 storage: equal to the original with weights rounded to float16
        model.load_state_dict({k: v.half().float() if v.is_floating_point() else v for k, v in model.state_dict().items()})
        torch.testing.assert_close(weights(_inputs(2, 32)), model(_inputs(2, 32)), rtol=0, atol=0)
    result = runner.invoke(cli, ["export", "--model", "tiny", "--format", "weights", "--out", str(tmp_path / "t.pt")])
    assert result.exit_code == 0, result.output
    assert load_checkpoint(tmp_path / "t.pt")["model_config"] == {"backbone": "tiny"}


def test_onnx_without_the_onnx_package_names_the_extra(tmp_path, monkeypatch, capsys):
    import sys

    from rankiqa.cli import main
    from rankiqa.errors import UserError

    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now raises ImportError
    with pytest.raises(UserError, match=r"needs the onnx package: pip install 'rankiqa\[onnx\]'"):
        export_model(create_model("tiny"), "onnx", tmp_path / "m.onnx")
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--model", "tiny", "--format", "onnx", "--out", str(tmp_path / "m.onnx")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err
    assert err.strip().splitlines() == ["Error: --format onnx needs the onnx package: pip install 'rankiqa[onnx]' "
                                        "(or pip install onnx onnxruntime)"]
    assert not (tmp_path / "m.onnx").exists()


def test_the_onnx_extra_is_declared():
    import configparser
    from pathlib import Path

    config = configparser.ConfigParser()
    config.read(Path(__file__).resolve().parents[1] / "setup.cfg")
    extra = config["options.extras_require"]["onnx"].split()
    assert [requirement.split(">=")[0] for requirement in extra] == ["onnx", "onnxruntime"]


@pytest.mark.parametrize("size", [0, -3, 31])
def test_patch_size_below_32_is_refused(tmp_path, capsys, size):
    from rankiqa.cli import main
    from rankiqa.errors import UserError

    with pytest.raises(UserError, match=rf"^patch_size must be an integer >= 32.*got {size}"):
        export_model(create_model("tiny"), "torchscript", tmp_path / "m.pt", patch_size=size)
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--model", "tiny", "--format", "torchscript", "--out", str(tmp_path / "m.pt"),
              "--patch-size", str(size)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err and "--patch-size" in err
    assert not (tmp_path / "m.pt").exists()
