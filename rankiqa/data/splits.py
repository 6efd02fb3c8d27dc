"""Content-disjoint train/test splits of an IQA database (no reference content on both sides).

Images are grouped by their ``reference`` column; images without a reference (authentic
databases) form a group of their own, keyed by ``path``. Groups, not images, are drawn, so a
pristine scene never appears in both parts (the protocol of RankIQA and most IQA papers: 80 %
of the references for training, 20 % for testing, repeated over 10 random seeds).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from rankiqa.errors import InvalidOption
from rankiqa.seeding import stable_seed


@dataclass(frozen=True)
class Split:
    """Row positions (``df.iloc``) of the training and test images of one split."""

    train: np.ndarray
    test: np.ndarray


def content_groups(df: pd.DataFrame) -> np.ndarray:
    """One group key per row: the reference path, or the image path when there is no reference."""
    references = df["reference"].fillna("").astype(str).to_numpy()
    return np.where(references == "", df["path"].astype(str).to_numpy(), references)


def holdout(df: pd.DataFrame, fraction: float, seed: int) -> Split:
    """Hold out ``fraction`` of the content groups (at least one, never all) as ``test``.

    The number of held-out groups is ``n_groups - floor((1 - fraction) * n_groups)`` (LIVE: 29
    references -> 23 train / 6 test; TID2013: 25 -> 20 / 5), chosen by ``numpy.random.default_rng(seed)``.
    """
    if not 0 < fraction < 1:
        raise InvalidOption(f"fraction must be between 0 and 1 (exclusive), got {fraction}", params=("fraction",))
    groups = content_groups(df)
    unique = np.unique(groups)
    if unique.size < 2:
        raise InvalidOption(f"need at least 2 reference contents to split, found {unique.size}")
    n_keep = int(np.clip(np.floor((1 - fraction) * unique.size + 1e-9), 1, unique.size - 1))
    order = np.random.default_rng(seed).permutation(unique.size)
    test_mask = np.isin(groups, unique[order[n_keep:]])
    return Split(train=np.flatnonzero(~test_mask), test=np.flatnonzero(test_mask))


def make_splits(df: pd.DataFrame, n: int = 10, train: float = 0.8, seed: int = 0) -> list[Split]:
    """``n`` random content-disjoint splits with ``train`` of the references (by count) for training.

    Split ``i`` uses seed ``stable_seed(seed, "split", i)``, so adding splits never changes the earlier ones.
    """
    if n < 1:
        raise InvalidOption(f"n (number of splits) must be at least 1, got {n}", params=("n",))
    if not 0 < train < 1:
        raise InvalidOption(f"train must be between 0 and 1 (exclusive), got {train}", params=("train",))
    return [holdout(df, 1 - train, stable_seed(seed, "split", index)) for index in range(n)]
