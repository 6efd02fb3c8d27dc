"""rankiqa: learn image quality from rankings (RankIQA, ICCV 2017) — generate, train, fine-tune, score."""
from __future__ import annotations

__version__ = "0.1.0"


def load_scorer(name_or_checkpoint="default", **options):
    """A ``rankiqa.score.Scorer`` (not a ``torch.nn.Module``) for ``"default"`` (the bundled model),
    a checkpoint path or a backbone name (untrained; ``"NAME:pretrained"`` for ImageNet weights).

    ``.score(x)`` returns the RAW score (the model's own units, higher = better): a ``float`` for
    one image (a path, a PIL image or a uint8 array), a ``list[float]`` in the same order for a list
    or tuple of them. ``.score(x, scale="mos")`` returns the calibrated score on KADID-10k's 1-5 MOS
    scale for models that have one (``.calibration`` is not None; the default model does), and
    ``.to_mos(raw)`` converts raw scores. ``.score_many(items)`` yields one ``ImageScore`` per item
    (score, spread, per-patch scores, or the error). ``.module`` is the ``torch.nn.Module``: float
    (N, 3, H, W) in [0, 1] -> (N,) scores. Options are the scorer's fields (patches, patch_size,
    aggregate, batch_size, seed, device, backend, precision, decode_workers); see
    ``rankiqa.score.load_scorer``.
    """
    from rankiqa.score import load_scorer as _load_scorer

    return _load_scorer(name_or_checkpoint, **options)


load_model = load_scorer
"""The original name of ``load_scorer`` (it returns a ``Scorer``, not a ``torch.nn.Module``)."""


def metric(name: str = "default", device=None, scale: str = "raw", **options):
    """A ``torch.nn.Module`` scoring (N, 3, H, W) tensors in [0, 1], differentiably, higher = better
    (``lower_better = False``); see ``rankiqa.torch_metric.metric`` and docs/metric.md."""
    from rankiqa.torch_metric import metric as _metric

    return _metric(name, device=device, scale=scale, **options)
