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
def tiny_checkpoint(tmp_path) -> Path:
    """A checkpoint of the seeded untrained ``tiny`` model (for fast CLI and report tests)."""
    import torch

    from rankiqa.checkpoint import save_checkpoint
    from rankiqa.models import create_model

    torch.manual_seed(0)
    model = create_model("tiny")
    path = tmp_path / "tiny.pt"
    save_checkpoint(path, {"model_config": model.config, "model_state": model.state_dict()})
    return path
