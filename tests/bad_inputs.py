"""Builders of hostile input files for tests/test_bad_inputs.py: every file is made at test time.

Each ``ImageCase`` writes one odd or broken file into a folder and says what a robust reader does
with it: ``SCORED`` (decodes, possibly after a conversion) or a regex of the one-line reason it is
skipped with. Checkpoint and CSV-database builders follow the same pattern.
"""
from __future__ import annotations

import errno
import io
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from _shared import photo

SCORED = "scored"
PATCH = 32


def _encoded(image: np.ndarray | Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    (image if isinstance(image, Image.Image) else Image.fromarray(image)).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_bomb_header(width: int, height: int) -> bytes:
    """A valid PNG signature and IHDR declaring ``width`` x ``height`` RGB, then a tiny IDAT: the
    file is a few bytes but decoding it would allocate width*height*3 bytes."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + _png_chunk(b"IEND", b""))


def _exif_rotated_jpeg() -> bytes:
    """A JPEG stored landscape with EXIF orientation 6 (display rotated 90 degrees clockwise)."""
    image = Image.fromarray(photo(7, 64, 96))
    exif = Image.Exif()
    exif[0x0112] = 6
    return _encoded(image, "JPEG", quality=95, exif=exif.tobytes())


def _animated_gif() -> bytes:
    frames = [Image.fromarray(photo(seed)).convert("P") for seed in (1, 2, 3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    return buffer.getvalue()


def _palette_with_transparency() -> bytes:
    image = Image.fromarray(photo(4)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return _encoded(image, "PNG", transparency=0)


def _png16_rgb() -> bytes:
    import cv2

    image = photo(5).astype(np.uint16) * 257
    ok, data = cv2.imencode(".png", image[:, :, ::-1])
    assert ok
    return data.tobytes()


def _pgm16(values: np.ndarray) -> bytes:
    """A binary 16-bit PGM (maxval 65535), big-endian samples as the format says."""
    height, width = values.shape
    return f"P5\n{width} {height}\n65535\n".encode() + values.astype(">u2").tobytes()


LOW_16BIT = (photo(6)[:, :, 0].astype(np.uint16) // 2)  # 16-bit samples that all happen to be <= 255


def _float_tiff() -> bytes:
    values = photo(8)[:, :, 0].astype(np.float32) / 255.0
    return _encoded(Image.fromarray(values), "TIFF")


def _crc_broken_png() -> bytes:
    data = bytearray(_encoded(photo(9), "PNG"))
    data[29] ^= 0xFF  # inside the IHDR CRC
    return bytes(data)


def _write(data: bytes | Callable[[], bytes]) -> Callable[[Path], None]:
    def build(path: Path) -> None:
        path.write_bytes(data() if callable(data) else data)

    return build


def _save(make: Callable[[], Image.Image], **options) -> Callable[[Path], None]:
    def build(path: Path) -> None:
        make().save(path, **options)

    return build


def _symlink(target: str) -> Callable[[Path], None]:
    def build(path: Path) -> None:
        os.symlink(target, path)

    return build


def _loop(path: Path) -> None:
    os.symlink(path.name, path)  # a link to itself: ELOOP on open


def _folder(path: Path) -> None:
    path.mkdir()  # an empty folder with an image's name


@dataclass(frozen=True)
class ImageCase:
    """One hostile image input. ``expect``: SCORED, or a regex of the skip reason. ``xfail``: surfaces
    (score, api, generate, train, benchmark) where this branch still misbehaves, with the defect
    that fixes it. ``exists``: False for inputs a CSV database cannot list (links to nothing)."""

    id: str
    name: str
    build: Callable[[Path], None]
    expect: str
    xfail: dict[str, str] = field(default_factory=dict)
    exists: bool = True


I11 = "fixed by defect {} on branch i11"
PNG = lambda seed=0, **kw: Image.fromarray(photo(seed, **kw))  # noqa: E731

IMAGE_CASES = [
    ImageCase("truncated_jpeg", "truncated.jpg", _write(lambda: _encoded(photo(1), "JPEG")[:400]), "truncated or corrupt"),
    ImageCase("truncated_png", "truncated.png", _write(lambda: _encoded(photo(1), "PNG")[:600]), "truncated or corrupt"),
    ImageCase("only_jpeg_marker", "marker.jpg", _write(b"\xff\xd8\xff"), "not an image|truncated or corrupt"),
    ImageCase("zero_bytes", "empty.jpg", _write(b""), r"empty file \(0 bytes\)"),
    ImageCase("text_named_jpg", "notes.jpg", _write(b"these are my holiday notes\n"), "not an image"),
    ImageCase("svg_text", "drawing.png", _write(b'<svg xmlns="http://www.w3.org/2000/svg"/>'), "not an image"),
    ImageCase("png_crc_error", "crc.png", _write(_crc_broken_png), "truncated or corrupt|not an image"),
    ImageCase("png_named_jpg", "really_png.jpg", _write(lambda: _encoded(photo(2), "PNG")), SCORED),
    ImageCase("jpeg_named_png", "really_jpeg.png", _write(lambda: _encoded(photo(3), "JPEG")), SCORED),
    ImageCase("one_pixel", "one.png", _save(lambda: PNG(height=1, width=1)), r"too small: 1x1"),
    ImageCase("side_31", "side31.png", _save(lambda: PNG(height=31, width=90)), r"too small: 90x31"),
    ImageCase("side_32", "side32.png", _save(lambda: PNG(height=32, width=40)), SCORED),
    ImageCase("bomb_header", "bomb.png", _write(lambda: _png_bomb_header(60_000, 60_000)), "decompression bomb"),
    ImageCase("elongated_strip", "strip.png", _save(lambda: PNG(height=32, width=60_000)),
              "aspect|elongated|long|narrow|pixels"),
    ImageCase("png_16bit_gray", "gray16.png",
              _save(lambda: Image.fromarray(photo(5)[:, :, 0].astype(np.uint16) * 257)), SCORED),
    ImageCase("png_16bit_rgb", "rgb16.png", _write(_png16_rgb), SCORED),
    ImageCase("pgm_16bit_low_values", "low16.pgm", _write(lambda: _pgm16(LOW_16BIT)), SCORED),
    ImageCase("float_tiff", "float.tif", _write(_float_tiff), SCORED + "|float|not supported"),
    ImageCase("cmyk_jpeg", "cmyk.jpg", _save(lambda: PNG(4).convert("CMYK"), format="JPEG"), SCORED),
    ImageCase("palette_transparency", "palette.png", _write(_palette_with_transparency), SCORED),
    ImageCase("gray_alpha", "la.png", _save(lambda: PNG(5).convert("LA")), SCORED),
    ImageCase("rgba_transparent", "clear.png", _save(lambda: Image.new("RGBA", (64, 64), (0, 0, 0, 0))), SCORED),
    ImageCase("one_bit_bmp", "mono.bmp", _save(lambda: PNG(6).convert("1")), SCORED),
    ImageCase("gray_jpeg", "gray.jpg", _save(lambda: PNG(7).convert("L"), format="JPEG"), SCORED),
    ImageCase("webp", "photo.webp", _save(lambda: PNG(8), format="WEBP"), SCORED),
    ImageCase("animated_gif", "anim.gif", _write(_animated_gif), SCORED),
    ImageCase("exif_rotated_jpeg", "rotated.jpg", _write(_exif_rotated_jpeg), SCORED),
    ImageCase("dangling_symlink", "gone.png", _symlink("does-not-exist.png"), "not found|dangling|broken", exists=False),
    ImageCase("symlink_loop", "loop.png", _loop, "loop|not found", exists=False),
    ImageCase("folder_named_jpg", "folder.jpg", _folder, "folder"),
    ImageCase("unicode_name", "фото ✓ 1.png", _save(lambda: PNG(9)), SCORED),
    ImageCase("spaces_name", "my holiday photo.png", _save(lambda: PNG(10)), SCORED),
    ImageCase("comma_quote_name", 'a,b "c".png', _save(lambda: PNG(12)), SCORED),
]

# --------------------------------------------------------------------------------------------
# a full disk


class _FullDisk:
    """A file wrapper whose writes fail with ENOSPC once ``room`` bytes are written (a full disk)."""

    def __init__(self, handle, room: int):
        self.handle, self.room = handle, room

    def write(self, data) -> int:
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return self.handle.write(data)

    def flush(self) -> None:
        self.handle.flush()


def full_disk_save(room: int):
    """A ``torch.save`` stand-in that writes to a disk with ``room`` bytes left."""
    import torch

    real_save = torch.save

    def save(obj, target, *args, **kwargs):
        if isinstance(target, (str, bytes)) or hasattr(target, "__fspath__"):
            with open(target, "wb") as handle:
                return real_save(obj, _FullDisk(handle, room), *args, **kwargs)
        return real_save(obj, _FullDisk(target, room), *args, **kwargs)

    return save


# --------------------------------------------------------------------------------------------
# checkpoints


class RunsCode:
    """Unpickling this runs ``os.system``: a checkpoint must be refused before that happens."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _tiny_payload() -> dict:
    import torch

    from rankiqa.models import create_model

    torch.manual_seed(0)
    model = create_model("tiny")
    return {"model_config": dict(model.config), "model_state": model.state_dict()}


def _torch_save(make: Callable[[Path], object]) -> Callable[[Path], None]:
    def build(path: Path) -> None:
        import torch

        torch.save(make(path), path)

    return build


def _truncated_checkpoint(path: Path) -> None:
    import torch

    buffer = io.BytesIO()
    torch.save(_tiny_payload(), buffer)
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])


def _wrong_backbone(path: Path) -> dict:
    payload = _tiny_payload()
    payload["model_config"] = {"backbone": "resnet18"}
    return payload


@dataclass(frozen=True)
class CheckpointCase:
    id: str
    build: Callable[[Path], None]
    expect: str
    xfail: str | None = None


CHECKPOINT_CASES = [
    CheckpointCase("csv_as_weights", _write(b"step,loss\n1,0.5\n"), r"not a PyTorch checkpoint \(the file is text\)"),
    CheckpointCase("image_as_weights", _write(lambda: _encoded(photo(0), "PNG")), "not a PyTorch checkpoint .*PNG image"),
    CheckpointCase("empty_weights", _write(b""), r"not a PyTorch checkpoint \(the file is empty\)"),
    CheckpointCase("truncated_weights", _truncated_checkpoint, "corrupt or truncated checkpoint"),
    CheckpointCase("malicious_pickle", _torch_save(lambda p: {"model_state": {}, "x": RunsCode(p.with_suffix(".ran"))}),
                   "refused"),
    CheckpointCase("list_payload", _torch_save(lambda p: [1, 2]), "expected a dict"),
    CheckpointCase("int_config_key", _torch_save(lambda p: {**_tiny_payload(), "model_config": {"backbone": "tiny", 1: 2}}),
                   "model_config key 1 is not a string"),
    CheckpointCase("list_state_dict", _torch_save(lambda p: {**_tiny_payload(), "model_state": [1, 2]}),
                   "'model_state' is a list"),
    CheckpointCase("wrong_backbone_weights", _torch_save(_wrong_backbone), "weights do not fit backbone"),
    CheckpointCase("no_model_config", _torch_save(lambda p: {"step": 3}), "missing 'model_config'"),
]

# --------------------------------------------------------------------------------------------
# CSV databases (written next to two good images a.png and b.png)


@dataclass(frozen=True)
class CsvCase:
    id: str
    text: str
    expect: str


CSV_CASES = [
    CsvCase("csv_missing_columns", "path,quality\na.png,1\nb.png,2\n", "missing column"),
    CsvCase("csv_header_only", "path,mos\n", "only a header"),
    CsvCase("csv_empty_file", "", "not a readable CSV file"),
    CsvCase("csv_duplicate_paths", "path,mos\na.png,1\nb.png,2\n./a.png,3\n", "listed more than once"),
    CsvCase("csv_nan_mos", "path,mos\na.png,NaN\nb.png,2\n", "empty path or mos in row 2"),
    CsvCase("csv_text_mos", "path,mos\na.png,good\nb.png,2\n", "'good' in row 2 is not a finite number"),
    CsvCase("csv_missing_image", "path,mos\na.png,1\nnowhere.png,2\n", "images listed in .* are missing"),
    CsvCase("csv_binary_garbage", "\x00\x01\x02\x03", "not a readable CSV file|missing column"),
]
