"""rankiqa: learn image quality from rankings (RankIQA, ICCV 2017) — generate, train, fine-tune, score."""
from __future__ import annotations

__version__ = "0.1.0"


def load_model(name_or_checkpoint="default", **options):
    """A scorer with ``.score(x)`` (higher = better) and ``.module``; see ``rankiqa.score.load_model``."""
    from rankiqa.score import load_model as _load_model

    return _load_model(name_or_checkpoint, **options)
