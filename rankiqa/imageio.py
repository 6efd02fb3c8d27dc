"""Reading and writing images with clear one-line errors; writes are atomic (temp file + rename).

Every image rankiqa scores, crops or trains on is decoded here, one way down: a file with
``load_pristine`` (``read_for_scoring``, ``read_rgb``), a PIL image with ``decode_pil``, then
``as_rgb`` (uint8 RGB, both sides >= ``MIN_SIDE``) and ``fit_to_patch`` (upscaled to the patch).
"""
from __future__ import annotations

import errno
import os
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def read_for_scoring(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file with ``load_pristine`` (EXIF orientation, alpha on white, 16-bit
    scaled), any size with both sides >= ``MIN_SIDE``; ``UnusableImage`` naming the file and the
    reason otherwise."""
    return load_pristine(path, min_side=MIN_SIDE).image


def as_rgb(image: Any) -> np.ndarray:
    """A uint8 (H, W, 3) RGB array, both sides >= ``MIN_SIDE``, from a uint8 array ((H, W) gray or
    (H, W, 3)) or a PIL image (decoded like a file: EXIF orientation, alpha on white, 16-bit and
    float scaled by their declared range). Anything else fails the distortions package's own input
    check (``TypeError``, or ``distortions.InvalidArgument``, a ``ValueError``)."""
    from distortions._registry import as_rgb_uint8

    return as_rgb_uint8(decode_pil(image) if isinstance(image, Image.Image) else image)


def write_image(path: str | os.PathLike, image: np.ndarray, **save_options) -> None:
    """Write a uint8 RGB array atomically: to a temporary file in the same folder, then rename."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fmt = Image.registered_extensions().get(path.suffix.lower())
        Image.fromarray(image).save(tmp, format=fmt, **save_options)


def fit_to_patch(image: np.ndarray, patch_size: int, max_pixels: int | None = None) -> np.ndarray:
    """A uint8 image unchanged when both sides are >= ``patch_size`` pixels, else upscaled (bicubic,
    aspect kept) so that its short side equals ``patch_size``; used wherever patches are cropped.

    Raises ``RefusedImage`` (a ``UserError``) for an image more elongated than ``MAX_ASPECT``:1, or
    whose upscaled size would exceed ``max_pixels`` (default ``DEFAULT_MAX_PIXELS``), before
    allocating anything: a 32 x 3,000,000 strip would otherwise become 224 x 21,000,000 pixels.
    """
    max_pixels = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
    height, width = image.shape[:2]
    problem = shape_problem(width, height, max_pixels=max_pixels)
    if problem:
        raise RefusedImage(problem)
    short = min(height, width)
    if short >= patch_size:
        return image
    scale = patch_size / short
    size = (max(patch_size, round(width * scale)), max(patch_size, round(height * scale)))
    if size[0] * size[1] > max_pixels:
        raise RefusedImage(
            f"too large once upscaled for {patch_size}-px patches: {width}x{height} would become "
            f"{size[0]}x{size[1]}, above {max_pixels} pixels"
        )
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BICUBIC))


MIN_SIDE = 32
"""The smallest side (pixels) of an image rankiqa scores or crops: scoring checks arrays with the
distortions package, whose own (standalone) ``distortions.MIN_SIDE`` this equals (a test checks it)."""
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm", ".pnm", ".avif")
"""File name suffixes (lower case) taken as images when a folder is listed (a file Pillow cannot
decode, e.g. AVIF without Pillow's AVIF support, is then a reported skip, never ignored)."""
MIN_PRISTINE_SIDE = 64
DEFAULT_MAX_PIXELS = 100_000_000
"""Images of more pixels (declared in the header, or after an upscale) are refused."""
MAX_ASPECT = 100
"""Images whose long side exceeds this many times the short side are refused (elongated strips)."""
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


class RefusedImage(UserError, ValueError):
    """Pixels that cannot be used faithfully (a size, shape or sample format refused); one-line message."""


def shape_problem(width: int, height: int, *, max_pixels: int = DEFAULT_MAX_PIXELS, max_aspect: int = MAX_ASPECT) -> str | None:
    """Why a ``width`` x ``height`` image is refused (too many pixels, too elongated), or None."""
    if width * height > max_pixels:
        return f"decompression bomb refused: {width}x{height} exceeds {max_pixels} pixels"
    if max(width, height) > max_aspect * max(1, min(width, height)):
        return f"elongated image refused: {width}x{height} is more elongated than {max_aspect}:1"
    return None


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


def walk_images(
    root: str | os.PathLike, *, recursive: bool = True, exclude: str | os.PathLike | None = None, hidden: bool = False
) -> tuple[list[Path], list[tuple[Path, str]]]:
    """(image files under ``root`` by suffix, sorted; problems): a problem is (folder, reason) for a
    folder that could not be listed (permission denied, symbolic link loop...) or a symbolic link
    to a folder, which is not followed. Names starting with "." are skipped unless ``hidden``; the
    ``exclude`` folder is not entered. Links to files are listed like files (a dangling one is
    refused when it is read). Nothing under ``root`` is left out silently."""
    root = Path(root)
    excluded = Path(exclude).resolve() if exclude is not None else None
    found: list[Path] = []
    problems: list[tuple[Path, str]] = []

    def unlisted(exc: OSError) -> None:
        folder = Path(exc.filename) if exc.filename is not None else root
        problems.append((folder, f"folder not read: {os_error_reason(folder, exc)}"))

    for folder, subfolders, files in os.walk(root, onerror=unlisted):
        if excluded is not None and Path(folder).resolve() == excluded:
            subfolders.clear()
            continue
        subfolders[:] = sorted(name for name in subfolders if hidden or not name.startswith(".")) if recursive else []
        problems += [(Path(folder) / name, "symbolic link to a folder: not followed")
                     for name in subfolders if os.path.islink(os.path.join(folder, name))]
        found += [Path(folder) / name for name in files
                  if (hidden or not name.startswith(".")) and name.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(found), sorted(problems)


def file_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be read as an image file, judged from ``stat`` only, or None: file not
    found, dangling symbolic link, symbolic link loop, unreachable folder, a folder, an empty file."""
    path = Path(path)
    try:
        info = path.stat()
    except OSError as exc:
        return os_error_reason(path, exc)
    if stat.S_ISDIR(info.st_mode):
        return "is a folder, expected an image file"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file (a pipe, socket or device)"
    if info.st_size == 0:
        return "empty file (0 bytes)"
    return None


def os_error_reason(path: str | os.PathLike, exc: OSError) -> str:
    """A short reason for an ``OSError`` met while reading ``path``: names symbolic link loops and
    dangling links rather than "file not found"."""
    if exc.errno == errno.ELOOP:
        return "symbolic link loop (too many levels of symbolic links)"
    if exc.errno == errno.ENOENT:
        if os.path.islink(path):
            return f"dangling symbolic link (its target {os.readlink(path)} does not exist)"
        return "file not found"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return f"cannot read ({exc.strerror or exc})"


def load_pristine(
    path: str | os.PathLike,
    *,
    min_side: int = MIN_PRISTINE_SIDE,
    max_side: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Pristine:
    """Decode a photo for use as a pristine reference, robust to the odd files found in real folders.

    Honours EXIF orientation; converts gray, 16-bit (scaled to 8-bit by the declared bit depth),
    float (scaled from [0, 1] or the TIFF's declared sample range), CMYK, palette and alpha
    (composited on white) images to 8-bit RGB; uses the first frame of an animated file; refuses
    files whose declared size exceeds ``max_pixels`` or whose aspect ratio exceeds ``MAX_ASPECT``:1
    before decoding them (decompression bombs, elongated strips); downscales (Lanczos) so the long
    side is at most ``max_side`` pixels. Every colour, depth or frame conversion is named in
    ``notes``. Raises ``UnusableImage`` (with a one-line ``reason``) for a missing, unreadable,
    empty, truncated or non-image file, a sample format it cannot convert faithfully (e.g. 32-bit
    integers, floats outside [0, 1] with no declared range), or an image whose short side is below
    ``min_side`` pixels (64 by default; scoring passes its own minimum).
    """
    path = Path(path)
    problem = file_problem(path)
    if problem:
        raise UnusableImage(path, problem)
    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                width, height = im.size
                problem = shape_problem(width, height, max_pixels=max_pixels)
                if problem:
                    raise UnusableImage(path, problem)
                frames = getattr(im, "n_frames", 1)
                if frames > 1:
                    notes.append(f"animated ({frames} frames): first frame used")
                rgb = decode_pil(im, notes)
    except UnusableImage:
        raise
    except RefusedImage as exc:
        raise UnusableImage(path, str(exc)) from None
    except UnidentifiedImageError:
        raise UnusableImage(path, "not an image (unrecognised format)") from None
    except Image.DecompressionBombError as exc:
        raise UnusableImage(path, f"decompression bomb refused ({exc})") from None
    except OSError as exc:
        if exc.errno is None:  # Pillow's decoders raise OSError without errno on corrupt data
            raise UnusableImage(path, f"truncated or corrupt image (OSError: {exc})") from None
        raise UnusableImage(path, os_error_reason(path, exc)) from None
    except Exception as exc:  # decoders raise many types on corrupt data; any of them means "skip"
        raise UnusableImage(path, f"truncated or corrupt image ({exc.__class__.__name__}: {exc})") from None
    _check_min_side(path, rgb, min_side, "")
    if max_side is not None and max(rgb.shape[:2]) > max_side:
        rgb = _downscale(rgb, max_side)
        _check_min_side(path, rgb, min_side, f" after downscaling to max side {max_side}")
    return Pristine(np.ascontiguousarray(rgb), tuple(notes))


def header_problem(
    path: str | os.PathLike, *, min_side: int = MIN_PRISTINE_SIDE, max_pixels: int = DEFAULT_MAX_PIXELS
) -> str | None:
    """Why ``path`` cannot be used, judged from its header only (no pixels decoded), or None when it
    looks usable: missing or unreadable, not an image, more than ``max_pixels`` pixels, more
    elongated than ``MAX_ASPECT``:1, or a side below ``min_side``.

    A cheap screen for large batches; ``load_pristine`` still refuses a file truncated after its header.
    """
    problem = file_problem(path)
    if problem:
        return problem
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                width, height = im.size
    except OSError as exc:
        if exc.errno is not None:
            return os_error_reason(path, exc)
        return f"not a readable image ({exc.__class__.__name__})"
    except Exception as exc:  # any decoder error on an untrusted file means "leave it out"
        return f"not a readable image ({exc.__class__.__name__})"
    problem = shape_problem(width, height, max_pixels=max_pixels)
    if problem:
        return problem
    if min(width, height) < min_side:
        return f"too small: {width}x{height} (short side below {min_side} px)"
    return None


@dataclass(frozen=True)
class Samples:
    """How to read a Pillow image's pixel values, from what its file declares (before decoding).

    ``kind``: "uint16" (0..65535, scaled by 255/65535), "float" (scaled from ``value_range``, by
    default [0, 1]), "unsupported" (``reason`` says why) or "" (8-bit modes, converted by Pillow).
    """

    kind: str = ""
    value_range: tuple[float, float] | None = None
    reason: str = ""


def declared_samples(im: Image.Image) -> Samples:
    """The sample format ``im``'s file declares; call before ``im.load()`` (which drops the tile list).

    16-bit files are recognised by their raw mode (PNG, TIFF, PGM) or by the PPM/PGM family (Pillow
    scales any maxval above 255 to 0..65535); float TIFFs take their SMinSampleValue/SMaxSampleValue
    tags as the range when present. A 32-bit integer image, or one of unknown depth, is unsupported.
    """
    mode = im.mode
    rawmodes = [str(tile[3][0] if isinstance(tile[3], tuple) else tile[3]) for tile in getattr(im, "tile", [])]
    if mode.startswith("I;16") and not mode.endswith("S"):
        return Samples("uint16")
    if mode == "I":
        if im.format in ("PPM", "PNG") or any(raw.startswith("I;16") and not raw.endswith("S") for raw in rawmodes):
            return Samples("uint16")
        declared = f" ({im.format} {', '.join(rawmodes)})" if im.format and rawmodes else ""
        return Samples("unsupported", reason=(
            f"32-bit or signed integer pixels{declared}: unsupported sample format (8 and 16 bits are read)"
            if declared else "integer pixels of unknown bit depth (mode 'I'): convert to 'L', 'RGB' or 'I;16' first"))
    if mode == "F":
        tags = getattr(im, "tag_v2", {}) if im.format == "TIFF" else {}
        low, high = tags.get(340), tags.get(341)  # SMinSampleValue, SMaxSampleValue
        if low is not None and high is not None:
            low = low[0] if isinstance(low, tuple) else low
            high = high[0] if isinstance(high, tuple) else high
            if float(high) > float(low):
                return Samples("float", (float(low), float(high)))
        return Samples("float")
    if mode.startswith("I;16"):
        return Samples("unsupported", reason=f"signed 16-bit pixels (mode {mode!r}): unsupported sample format")
    return Samples()


def decode_pil(im: Image.Image, notes: list[str] | None = None) -> np.ndarray:
    """Decode a Pillow image as a file is decoded for scoring and training: declared sample format,
    EXIF orientation applied, then ``pil_to_rgb``. ``RefusedImage`` for an unsupported format."""
    samples = declared_samples(im)
    sixteen_bit = samples.kind == "uint16" or any(";16" in str(tile[3]) for tile in getattr(im, "tile", []))
    im.load()
    im = ImageOps.exif_transpose(im)
    rgb = pil_to_rgb(im, notes, samples)
    if sixteen_bit and notes is not None:
        notes.append("16-bit converted to 8-bit")
    return rgb


def pil_to_rgb(im: Image.Image, notes: list[str] | None = None, samples: Samples | None = None) -> np.ndarray:
    """A uint8 (H, W, 3) RGB array from a Pillow image of any mode: 16-bit scaled to 8-bit (by the
    declared depth, never guessed from the values), float scaled from its range ([0, 1] unless the
    file declares one), alpha composited on white, gray/CMYK/palette converted; appends to ``notes``
    what was converted. ``samples`` defaults to ``declared_samples(im)``. Raises ``RefusedImage``
    for a sample format that cannot be converted faithfully."""
    notes = [] if notes is None else notes
    samples = declared_samples(im) if samples is None else samples
    mode = im.mode
    if samples.kind == "unsupported":
        raise RefusedImage(samples.reason)
    if samples.kind == "uint16":
        values = np.asarray(im).astype(np.float64)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise RefusedImage(f"16-bit image with values outside 0..65535 ({values.min():g}..{values.max():g})")
        gray = np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8)
        notes.append("grayscale converted to RGB")
        return np.repeat(gray[:, :, None], 3, axis=2)
    if samples.kind == "float":
        return np.repeat(_float_to_uint8(np.asarray(im), samples.value_range, notes)[:, :, None], 3, axis=2)
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
    try:
        return np.asarray(im.convert("RGB"))
    except ValueError as exc:  # e.g. LAB or HSV: Pillow has no conversion
        raise RefusedImage(f"unsupported colour mode {mode!r} ({exc})") from None


def _float_to_uint8(values: np.ndarray, value_range: tuple[float, float] | None, notes: list[str]) -> np.ndarray:
    """Float gray pixels scaled from ``value_range`` (declared) or [0, 1] to uint8, or ``RefusedImage``."""
    values = values.astype(np.float64)
    if values.size and not np.isfinite(values).all():
        raise RefusedImage("float image with NaN or infinite values: unsupported")
    low, high = value_range or (0.0, 1.0)
    if value_range is None and values.size and (values.min() < 0.0 or values.max() > 1.0):
        raise RefusedImage(
            f"float pixels outside [0, 1] ({values.min():g}..{values.max():g}) and no declared sample range: "
            "unsupported (save as 8/16-bit, or float in [0, 1])"
        )
    notes.append(f"float pixels scaled from [{low:g}, {high:g}] to 8-bit")
    notes.append("grayscale converted to RGB")
    return np.clip(np.rint((values - low) * (255.0 / (high - low))), 0, 255).astype(np.uint8)


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
