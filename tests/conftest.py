"""Shared fixtures: seeded synthetic images and the optional shared data folder."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def small_image(rng) -> np.ndarray:
    """A 64x48 uint8 RGB image with smooth structure and texture."""
    yy, xx = np.mgrid[0:48, 0:64].astype(np.float32)
    base = np.stack([128 + 80 * np.sin(xx / 7), 128 + 80 * np.cos(yy / 5), (xx + yy) * 2], axis=2)
    noise = rng.normal(0, 10, base.shape)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


@pytest.fixture
def shared_data() -> Path:
    """The project's shared development data; tests using it skip with a reason when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder not found at {SHARED_DATA} (development data, not shipped)")
    return SHARED_DATA


@pytest.fixture
def tiny_module():
    """The seeded untrained ``tiny`` backbone model, in eval mode."""
    import torch

    from rankiqa.models import create_model

    torch.manual_seed(0)
    return create_model("tiny").eval()


@pytest.fixture
def tiny_checkpoint(tmp_path, tiny_module) -> Path:
    """``tiny_module`` saved as a rankiqa checkpoint (``tmp_path/tiny.pt``)."""
    from rankiqa.checkpoint import save_checkpoint

    path = tmp_path / "tiny.pt"
    save_checkpoint(path, {"model_config": tiny_module.config, "model_state": tiny_module.state_dict()})
    return path


DROP_FILE_CAPABILITIES = ("setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--")


@pytest.fixture(scope="session")
def unprivileged():
    """A function turning a command into one that file permissions apply to: unchanged for a normal
    user; for root, prefixed with ``setpriv`` dropping CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH
    (the test skips, with the reason, where that is impossible)."""
    import os
    import shutil
    import subprocess

    if os.geteuid() != 0:
        return lambda command: list(command)
    if shutil.which("setpriv") is None:
        pytest.skip("running as root and setpriv is missing: file permissions cannot be enforced")
    probe = subprocess.run([*DROP_FILE_CAPABILITIES, "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"running as root and setpriv cannot drop the file capabilities: {probe.stderr.strip()}")
    return lambda command: [*DROP_FILE_CAPABILITIES, *command]
