"""Data: ranked distortion sets for training, IQA database loaders, content-disjoint splits.

Names are imported lazily from their submodules so ``import rankiqa.data`` stays cheap.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "RankedSets": "rankiqa.data.ranked",
    "split_references": "rankiqa.data.ranked",
    "load_database": "rankiqa.data.databases",
    "list_databases": "rankiqa.data.databases",
    "make_splits": "rankiqa.data.splits",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'rankiqa.data' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
