"""Contact sheets: one row per distortion type, columns pristine + levels 1..5."""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from distortions._registry import NUM_LEVELS, apply_levels, as_rgb_uint8, get
from distortions.errors import InvalidArgument

LABEL_HEIGHT = 18
NAME_WIDTH = 200
PARAMETER_CHARS = 38


def _put_text(canvas: np.ndarray, text: str, origin: tuple[int, int], scale: float = 0.45) -> None:
    cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)


def level_captions(names: Sequence[str]) -> dict[tuple[str, int], str]:
    """Captions showing each level's parameter value, e.g. {("gaussian_blur", 1): "0.5"}."""
    return {
        (name, level): (f"{value:g}" if isinstance(value, float) else str(value))
        for name in names
        for level, value in enumerate(get(name).levels, start=1)
    }


def contact_sheet(
    image: np.ndarray,
    names: Sequence[str],
    seed: int = 0,
    tile: int = 160,
    captions: dict[tuple[str, int], str] | None = None,
) -> np.ndarray:
    """A uint8 RGB sheet: rows are ``names``, columns are the pristine image and levels 1..5.

    ``tile`` is the long side of each thumbnail in pixels; ``captions`` optionally maps
    (name, level) to a text drawn under that tile (level 0 is the pristine column); by default
    each level shows its parameter value.
    """
    if isinstance(tile, bool) or not isinstance(tile, int) or tile < 1:
        raise InvalidArgument(f"tile must be a positive number of pixels, got {tile!r}")
    rgb = as_rgb_uint8(image)
    captions = level_captions(names) if captions is None else captions
    height, width = rgb.shape[:2]
    scale = tile / max(height, width)
    tw, th = max(1, round(width * scale)), max(1, round(height * scale))
    cell_h = th + LABEL_HEIGHT
    sheet = np.full((LABEL_HEIGHT + cell_h * len(names), NAME_WIDTH + (tw + 4) * (NUM_LEVELS + 1), 3), 255, np.uint8)
    for column, title in enumerate(["pristine", *[f"level {k}" for k in range(1, NUM_LEVELS + 1)]]):
        _put_text(sheet, title, (NAME_WIDTH + column * (tw + 4) + 4, LABEL_HEIGHT - 5))
    for row, name in enumerate(names):
        top = LABEL_HEIGHT + row * cell_h
        _put_text(sheet, name, (4, top + th // 2))
        _put_text(sheet, get(name).parameter[:PARAMETER_CHARS], (4, top + th // 2 + 16), 0.35)
        for column, img in enumerate([rgb, *apply_levels(rgb, name, seed=seed)]):
            left = NAME_WIDTH + column * (tw + 4)
            sheet[top : top + th, left : left + tw] = cv2.resize(img, (tw, th), interpolation=cv2.INTER_AREA)
            caption = captions.get((name, column))
            if caption:
                _put_text(sheet, caption, (left + 2, top + th + LABEL_HEIGHT - 5), 0.4)
    return sheet
