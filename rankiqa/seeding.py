"""Stable seeds: derived from values with BLAKE2b, identical across runs, processes and machines
(unlike Python's salted ``hash()``). Every seed in rankiqa is derived here."""
from __future__ import annotations

import hashlib
from typing import Any


def stable_seed(*parts: Any) -> int:
    """A seed in [0, 2**63) from ``parts`` (each turned into text, joined), e.g.
    ``stable_seed(seed, reference, distortion)`` or ``stable_seed(seed, "crop", epoch, index)``."""
    text = "\x1f".join(str(part) for part in parts)
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1
