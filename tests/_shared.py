"""Helpers the test modules import (``conftest.py`` holds the fixtures and is never imported):
seeded synthetic photos, the file tree of an output folder, and the shared development data.

Tests that need the project's shared development data (``../shared/data``, not shipped) get it
ONLY through ``require_shared`` (or the ``shared_data`` fixture, which calls it). Without the folder
they skip with a reason, except when ``RANKIQA_REQUIRE_SHARED=1`` (set by ``.ci/run``): then
``conftest.pytest_runtest_makereport`` turns that skip into a failure.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
REQUIRE_SHARED_ENV = "RANKIQA_REQUIRE_SHARED"
SHARED_SKIP_PREFIX = "needs the shared development data:"


def require_shared(*parts: str) -> Path:
    """``SHARED_DATA / parts``; skips the calling test (a failure under ``RANKIQA_REQUIRE_SHARED=1``)
    when it does not exist."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{SHARED_SKIP_PREFIX} {path} not found (not shipped; {REQUIRE_SHARED_ENV}=1 makes this a failure)")
    return path


def photo(seed: int, height: int = 80, width: int = 96) -> np.ndarray:
    """A seeded uint8 (height, width, 3) RGB 'photo': smooth structure (waves whose period depends
    on ``seed``) plus Gaussian texture (sigma 12)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([128 + 90 * np.sin(xx / (5 + seed)), 128 + 90 * np.cos(yy / 6), (xx + yy + 20 * seed) % 256], 2)
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def noise(seed: int, height: int, width: int) -> np.ndarray:
    """A seeded uint8 (height, width, 3) RGB image of uniform noise (no structure at all)."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def make_photos(folder: Path, count: int, size: tuple[int, int] = (96, 80)) -> list[str]:
    """``count`` PNG photos (``size`` = (width, height)) in ``folder``, every third in ``sub/``;
    their sorted relative names."""
    names = [f"sub/p{i:02d}.png" if i % 3 == 0 else f"p{i:02d}.png" for i in range(count)]
    for i, name in enumerate(names):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(photo(i, height=size[1], width=size[0])).save(folder / name)
    return sorted(names)


def tree(folder: Path) -> dict[str, bytes]:
    """Every output file under ``folder`` (relative posix path -> bytes); the OUT_DIR lock files, which
    hold the pid of the last run (``rankiqa.folderlock``), are not output and are left out."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.startswith(".lock")}
