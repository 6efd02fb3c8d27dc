"""Reading and writing images with clear one-line errors; writes are atomic (temp file + rename)."""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from rankiqa.atomic import atomic_path
from rankiqa.errors import UserError


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as uint8 (H, W, 3) RGB with ``load_pristine``'s conversions (EXIF
    orientation, alpha on white, 16-bit scaled, gray/CMYK/palette to RGB), any size from 1 px.

    Raises ``UnusableImage`` (a ``UserError``) naming the file and the reason when it is missing or
    not a readable image.
    """
    return load_pristine(path, min_side=1).image


def write_image(path: str | os.PathLike, image: np.ndarray, **save_options) -> None:
    """Write a uint8 RGB array atomically: to a temporary file in the same folder, then rename."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fmt = Image.registered_extensions().get(path.suffix.lower())
        Image.fromarray(image).save(tmp, format=fmt, **save_options)


def fit_to_patch(image: np.ndarray, patch_size: int) -> np.ndarray:
    """A uint8 image unchanged when both sides are >= ``patch_size`` pixels, else upscaled (bicubic,
    aspect kept) so that its short side equals ``patch_size``; used wherever patches are cropped."""
    height, width = image.shape[:2]
    short = min(height, width)
    if short >= patch_size:
        return image
    scale = patch_size / short
    size = (max(patch_size, round(width * scale)), max(patch_size, round(height * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BICUBIC))


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm", ".pnm")
"""File name suffixes (lower case) taken as images when a folder is listed."""
MIN_PRISTINE_SIDE = 64
DEFAULT_MAX_PIXELS = 100_000_000
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


class UnusableImage(UserError):
    """An image file that cannot be used; ``path`` names it and ``reason`` says why (one line).

    Picklable, and constructible from one message (``reason`` then equals it), as torch's
    DataLoader does when it re-raises an exception from a worker process.
    """

    def __init__(self, path: str | os.PathLike, reason: str | None = None) -> None:
        super().__init__(str(path) if reason is None else f"{path}: {reason}")
        self.path = str(path)
        self.reason = str(path) if reason is None else reason

    def __reduce__(self):
        return self.__class__, (self.path, self.reason)


@dataclass(frozen=True)
class Pristine:
    """A decoded pristine photo: uint8 (H, W, 3) RGB ``image`` and the conversions applied (``notes``)."""

    image: np.ndarray
    notes: tuple[str, ...]


def load_pristine(
    path: str | os.PathLike,
    *,
    min_side: int = MIN_PRISTINE_SIDE,
    max_side: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Pristine:
    """Decode a photo for use as a pristine reference, robust to the odd files found in real folders.

    Honours EXIF orientation; converts gray, 16-bit (scaled to 8-bit), CMYK, palette and alpha
    (composited on white) images to 8-bit RGB; uses the first frame of an animated file; refuses
    files whose declared size exceeds ``max_pixels`` before decoding them (decompression bombs);
    downscales (Lanczos) so the long side is at most ``max_side`` pixels. Every colour, depth or
    frame conversion is named in ``notes``. Raises ``UnusableImage`` (with a one-line ``reason``)
    for a missing, empty, truncated or non-image file, or an image whose short side is below
    ``min_side`` pixels (64 by default; scoring passes its own minimum).
    """
    path = Path(path)
    if not path.exists():
        raise UnusableImage(path, "file not found")
    if path.is_dir():
        raise UnusableImage(path, "is a folder, expected an image file")
    if path.stat().st_size == 0:
        raise UnusableImage(path, "empty file (0 bytes)")
    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                width, height = im.size
                if width * height > max_pixels:
                    raise UnusableImage(
                        path, f"decompression bomb refused: {width}x{height} exceeds {max_pixels} pixels"
                    )
                frames = getattr(im, "n_frames", 1)
                if frames > 1:
                    notes.append(f"animated ({frames} frames): first frame used")
                sixteen_bit = im.mode.startswith("I;16") or any(";16" in str(tile[3]) for tile in im.tile)
                im.load()
                im = ImageOps.exif_transpose(im)
                rgb = pil_to_rgb(im, notes)
    except UnusableImage:
        raise
    except UnidentifiedImageError:
        raise UnusableImage(path, "not an image (unrecognised format)") from None
    except Image.DecompressionBombError as exc:
        raise UnusableImage(path, f"decompression bomb refused ({exc})") from None
    except Exception as exc:  # decoders raise many types on corrupt data; any of them means "skip"
        raise UnusableImage(path, f"truncated or corrupt image ({exc.__class__.__name__}: {exc})") from None
    if sixteen_bit:
        notes.append("16-bit converted to 8-bit")
    _check_min_side(path, rgb, min_side, "")
    if max_side is not None and max(rgb.shape[:2]) > max_side:
        rgb = _downscale(rgb, max_side)
        _check_min_side(path, rgb, min_side, f" after downscaling to max side {max_side}")
    return Pristine(np.ascontiguousarray(rgb), tuple(notes))


def header_problem(
    path: str | os.PathLike, *, min_side: int = MIN_PRISTINE_SIDE, max_pixels: int = DEFAULT_MAX_PIXELS
) -> str | None:
    """Why ``path`` cannot be used, judged from its header only (no pixels decoded), or None when it
    looks usable: missing, not an image, more than ``max_pixels`` pixels, or a side below ``min_side``.

    A cheap screen for large batches; ``load_pristine`` still refuses a file truncated after its header.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                width, height = im.size
    except FileNotFoundError:
        return "file not found"
    except Exception as exc:  # any decoder error on an untrusted file means "leave it out"
        return f"not a readable image ({exc.__class__.__name__})"
    if width * height > max_pixels:
        return f"decompression bomb refused: {width}x{height} exceeds {max_pixels} pixels"
    if min(width, height) < min_side:
        return f"too small: {width}x{height} (short side below {min_side} px)"
    return None


def pil_to_rgb(im: Image.Image, notes: list[str] | None = None) -> np.ndarray:
    """A uint8 (H, W, 3) RGB array from a Pillow image of any mode: 16-bit scaled to 8-bit, alpha
    composited on white, gray/CMYK/palette converted; appends to ``notes`` what was converted."""
    notes = [] if notes is None else notes
    mode = im.mode
    if mode.startswith("I;16") or mode == "I":
        values = np.asarray(im).astype(np.float64)
        gray = values if mode == "I" and values.max(initial=0) <= 255 else values / 257.0
        gray = np.clip(np.rint(gray), 0, 255).astype(np.uint8)
        notes.append("grayscale converted to RGB")
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode in _ALPHA_MODES or (mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        notes.append("alpha channel composited on white")
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    if mode in ("L", "1"):
        notes.append("grayscale converted to RGB")
    elif mode == "CMYK":
        notes.append("CMYK converted to RGB")
    elif mode not in ("RGB", "P"):
        notes.append(f"{mode} converted to RGB")
    return np.asarray(im.convert("RGB"))


def _check_min_side(path: Path, rgb: np.ndarray, min_side: int, context: str) -> None:
    height, width = rgb.shape[:2]
    if min(height, width) < min_side:
        raise UnusableImage(path, f"too small: {width}x{height}{context} (short side below {min_side} px)")


def _downscale(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """Resize (Lanczos) so that the long side equals ``max_side`` pixels."""
    height, width = rgb.shape[:2]
    scale = max_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))
