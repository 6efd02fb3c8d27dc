"""rankiqa: learn image quality from rankings (RankIQA, ICCV 2017) — generate, train, fine-tune, score."""
from __future__ import annotations

__version__ = "0.1.0"


def load_model(name_or_checkpoint="default", **options):
    """A ``rankiqa.score.Scorer`` for ``"default"``, a checkpoint path or a backbone name.

    ``.score(x)`` returns the RAW score (the model's own units, higher = better; a float for one
    image, a list for a list); ``.score(x, scale="mos")`` returns the calibrated score on KADID-10k's
    1-5 MOS scale for models that have one (``.calibration`` is not None; the default model does),
    and ``.to_mos(raw)`` converts raw scores. ``.module`` is the ``torch.nn.Module``. Options are
    the scorer's fields (patches, patch_size, aggregate, batch_size, seed, device); see
    ``rankiqa.score.load_model``.
    """
    from rankiqa.score import load_model as _load_model

    return _load_model(name_or_checkpoint, **options)


def metric(name: str = "default", device=None, scale: str = "raw", **options):
    """A ``torch.nn.Module`` scoring (N, 3, H, W) tensors in [0, 1], differentiably, higher = better
    (``lower_better = False``); see ``rankiqa.torch_metric.metric`` and docs/metric.md."""
    from rankiqa.torch_metric import metric as _metric

    return _metric(name, device=device, scale=scale, **options)
