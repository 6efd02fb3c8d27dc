"""Shared fixtures: seeded synthetic images, the tiny model and its checkpoint, the optional shared
data folder. Test modules never import this file: the helpers they import live in ``_shared.py``.

A skip raised by ``_shared.require_shared`` (the shared development data is missing) becomes a
failure under ``RANKIQA_REQUIRE_SHARED=1`` (set by ``.ci/run``), through the hook below, so CI can
never go green while silently losing the tests that read real label files.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from _shared import REPO, REQUIRE_SHARED_ENV, SHARED_SKIP_PREFIX, require_shared

pytest_plugins = ["pytester"]  # tests/test_conftest.py checks the hook below in a child pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under ``RANKIQA_REQUIRE_SHARED=1`` a skip raised by ``require_shared`` is reported as a failure."""
    outcome = yield
    report = outcome.get_result()
    if not report.skipped or os.environ.get(REQUIRE_SHARED_ENV) != "1" or call.excinfo is None:
        return
    reason = str(call.excinfo.value)
    if SHARED_SKIP_PREFIX in reason:
        report.outcome = "failed"
        report.longrepr = f"{REQUIRE_SHARED_ENV}=1 but the test could not run: {reason}"


@pytest.fixture
def killing_launcher() -> list[str]:
    """The command that runs ``rankiqa`` in a child process with a SIGKILL armed at a chosen point
    (``tests/_killing_launcher.py``); append the fault, its count and the rankiqa arguments."""
    return [sys.executable, str(REPO / "tests" / "_killing_launcher.py")]


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
    """The project's shared development data folder (see ``require_shared``)."""
    return require_shared()


def _tiny_model():
    import torch

    from rankiqa.models import create_model

    torch.manual_seed(0)
    return create_model("tiny").eval()


@pytest.fixture
def tiny_module():
    """The seeded untrained ``tiny`` backbone model, in eval mode."""
    return _tiny_model()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """``tiny_module``'s model saved once per session as a rankiqa checkpoint (``.../tiny.pt``);
    read-only: copy it before changing it."""
    from rankiqa.checkpoint import save_checkpoint

    model = _tiny_model()
    path = tmp_path_factory.mktemp("tiny") / "tiny.pt"
    save_checkpoint(path, {"model_config": model.config, "model_state": model.state_dict()})
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
