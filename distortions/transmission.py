"""Transmission family: JPEG transmission errors (damaged runs of 16x16 MCUs after a lost bit-stream sync)."""
from __future__ import annotations

import numpy as np

from distortions._registry import register
from distortions._util import strictly_increasing_counts
from distortions.compression import jpeg

MCU = 16
BASE_QUALITY = 75
DAMAGE_EVENTS = (3, 6, 10, 16, 24)
MAX_RUN_MCUS = 6
MAX_SOURCE_SHIFT_MCUS = 3
DC_OFFSET_RANGE = (30.0, 90.0)


def damage_events(grid: tuple[int, int], count: int, rng: np.random.Generator) -> list[tuple[int, int, int, int, np.ndarray]]:
    """``count`` events (row, first column, run length, source shift, RGB offset), each starting on a fresh MCU.

    The list depends only on ``grid``, ``count`` and ``rng``: a level uses its first n entries.
    """
    rows, cols = grid
    damaged = np.zeros(grid, dtype=bool)
    events = []
    for _ in range(count):
        free = np.flatnonzero(~damaged)
        start = int(free[rng.integers(len(free))]) if len(free) else -1
        run = int(rng.integers(1, MAX_RUN_MCUS + 1))
        shift = int(rng.integers(1, MAX_SOURCE_SHIFT_MCUS + 1) * rng.choice([-1, 1]))
        offset = rng.uniform(*DC_OFFSET_RANGE, 3) * rng.choice([-1.0, 1.0], 3)
        if start < 0:
            continue
        row, col = divmod(start, cols)
        damaged[row, col : col + run] = True
        events.append((row, col, run, shift, offset))
    return events


@register(
    "jpeg_transmission_errors",
    family="transmission",
    levels=DAMAGE_EVENTS,
    parameter="damaged MCU runs (at 512x384)",
    description="JPEG (q=75) with runs of 16x16 blocks shifted and colour-cast, as after a lost sync; nested levels.",
    source="TID2013 #12 JPEG transmission errors (simulated in the pixel domain)",
)
def jpeg_transmission_errors(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    height, width = image.shape[:2]
    grid = (-(-height // MCU), -(-width // MCU))
    counts = strictly_increasing_counts(DAMAGE_EVENTS, image.shape)
    base = jpeg(image, BASE_QUALITY)
    out = base.copy()
    owned = np.zeros((height, width), dtype=bool)
    columns = np.arange(width)
    for row, col, run, shift, offset in damage_events(grid, counts[-1], rng)[: counts[level - 1]]:
        y0, y1 = row * MCU, min(height, (row + 1) * MCU)
        x0, x1 = col * MCU, min(width, (col + run) * MCU)
        source = base[y0:y1][:, (columns[x0:x1] + shift * MCU) % width].astype(np.float32) + offset.astype(np.float32)
        fresh = ~owned[y0:y1, x0:x1]
        out[y0:y1, x0:x1][fresh] = np.clip(np.rint(source), 0, 255).astype(np.uint8)[fresh]
        owned[y0:y1, x0:x1] = True
    return out
