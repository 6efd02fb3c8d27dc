"""The PNG plots draw on an explicit Agg canvas: they never switch the caller's matplotlib backend."""
import sys

import matplotlib
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from rankiqa.benchmark import scatter_plot
from rankiqa.train import plot_curves


@pytest.fixture
def no_backend_switch(monkeypatch):
    """Fail on ``matplotlib.use`` and on importing pyplot (which would pick a backend)."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"matplotlib.use{args} called by library code")

    monkeypatch.setattr(matplotlib, "use", refuse)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)  # `import matplotlib.pyplot` -> ImportError


def test_plot_curves_writes_a_png_without_touching_the_backend(tmp_path, no_backend_switch):
    metrics = [{"step": 1, "loss": 0.9}, {"step": 2, "loss": 0.5, "val_srcc": 0.7, "val_pair_accuracy": 0.8,
                                          "val_target_srcc": 0.6}]
    plot_curves(metrics, tmp_path / "curves.png")
    with Image.open(tmp_path / "curves.png") as image:
        assert (image.format, image.size) == ("PNG", (1000, 360))  # 10 x 3.6 inches at 100 dpi


def test_scatter_plot_writes_a_png_without_touching_the_backend(tmp_path, no_backend_switch):
    rng = np.random.default_rng(0)
    pred = rng.normal(size=40)
    predictions = pd.DataFrame({"pred": pred, "mos": 3 + pred + rng.normal(scale=0.1, size=40),
                                "distortion": ["blur", "noise"] * 20})
    scatter_plot(predictions, tmp_path / "scatter.png", "title")
    with Image.open(tmp_path / "scatter.png") as image:
        assert (image.format, image.size) == ("PNG", (600, 500))  # 6 x 5 inches at 100 dpi
