"""Reading and writing images with clear one-line errors; writes are atomic (temp file + rename)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from rankiqa.errors import UserError


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as uint8 (H, W, 3) RGB, honouring EXIF orientation.

    Raises ``UserError`` naming the file and the reason when it is missing or not a readable image.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: file not found")
    if path.is_dir():
        raise UserError(f"{path}: is a folder, expected an image file")
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            return np.asarray(im.convert("RGB"))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise UserError(f"{path}: not a readable image ({exc.__class__.__name__}: {exc})") from None


def write_image(path: str | os.PathLike, image: np.ndarray, **save_options) -> None:
    """Write a uint8 RGB array atomically: to a temporary file in the same folder, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix + ".tmp")
    os.close(fd)
    try:
        fmt = Image.registered_extensions().get(path.suffix.lower())
        Image.fromarray(image).save(tmp, format=fmt, **save_options)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
