"""rankiqa: learn image quality from rankings (RankIQA, ICCV 2017) — generate, train, fine-tune, score."""
from __future__ import annotations

__version__ = "0.1.0"


def load_model(name_or_checkpoint="default", **options):
    """A scorer with ``.score(x)`` (higher = better) and ``.module``; see ``rankiqa.score.load_model``."""
    from rankiqa.score import load_model as _load_model

    return _load_model(name_or_checkpoint, **options)


def metric(name: str = "default", device=None, scale: str = "raw", **options):
    """A ``torch.nn.Module`` scoring (N, 3, H, W) tensors in [0, 1], differentiably, higher = better
    (``lower_better = False``); see ``rankiqa.torch_metric.metric`` and docs/metric.md."""
    from rankiqa.torch_metric import metric as _metric

    return _metric(name, device=device, scale=scale, **options)
