"""Compression family: JPEG (OpenCV, libjpeg scale) and JPEG2000 (Pillow/OpenJPEG, target compression ratio).

The JPEG2000 types encode once per image: one codestream with a quality layer per level (rates
in increasing order), decoded with the first k layers for the k-th mildest level. A level is the
same whether made alone (``apply``) or with its set (``apply_levels``, one encode for all 5).
In rankiqa 0.1.0 (issue 13) this replaced one single-layer encode per level: pixels changed
(PSNR within about 0.15 dB of the old single-layer output on 512x384 photos; the strongest
level is unchanged), so datasets generated before and after differ in their JPEG2000 images.
"""
from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image

from distortions._registry import register, register_levels

JPEG_QUALITIES = (43, 36, 24, 7, 4)
JPEG2000_RATIOS = (16, 32, 45, 120, 400)
MAX_RESOLUTIONS = 6
MIN_LAYER_BYTES = 256  # below this budget for the first layer, layers are encoded one by one


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """JPEG encode at ``quality`` (1..100, libjpeg scale, 4:2:0 chroma) and decode, RGB in and out."""
    ok, buffer = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("OpenCV failed to encode JPEG")
    return cv2.cvtColor(cv2.imdecode(buffer, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def jpeg2000_resolutions(shape: tuple[int, ...]) -> int:
    """Wavelet resolution count OpenJPEG accepts for this size (a code-block needs >= 4 px at the coarsest)."""
    return int(max(1, min(MAX_RESOLUTIONS, np.floor(np.log2(min(shape[:2]))) - 2)))


def jpeg2000(image: np.ndarray, ratio: float) -> np.ndarray:
    """JPEG2000 encode (lossy 9/7 wavelet) at compression ratio ``ratio`` (24 bpp / ratio) with Pillow, and decode.

    OpenJPEG's smallest stream is about 250 bytes, so ratios whose byte budget is smaller than that
    (e.g. 0.02 bpp on images under ~0.15 megapixels) all give that smallest stream.
    """
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(
        buffer,
        format="JPEG2000",
        quality_mode="rates",
        quality_layers=[float(ratio)],
        irreversible=True,
        num_resolutions=jpeg2000_resolutions(image.shape),
    )
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.array(decoded.convert("RGB"))


def jpeg2000_layers(image: np.ndarray, ratios: tuple[float, ...], decode: tuple[int, ...] | None = None) -> list[np.ndarray]:
    """JPEG2000 at each compression ratio in ``ratios`` (24 bpp / ratio) from ONE encode (lossy 9/7).

    The codestream holds one quality layer per distinct ratio, highest ratio (fewest bytes)
    first; the image for ratio r is decoded from the layers up to r's. Returns RGB arrays for
    the ratios at the indices ``decode`` (default: all), in that order. When the highest ratio
    leaves fewer than ``MIN_LAYER_BYTES`` bytes (about OpenJPEG's smallest stream; e.g. under
    0.03 megapixels at ratio 400), small layers would coincide, so each ratio is then encoded
    alone with ``jpeg2000`` (as before layers were used).
    """
    indices = range(len(ratios)) if decode is None else decode
    if image.shape[0] * image.shape[1] * 3 / max(ratios) < MIN_LAYER_BYTES:
        return [jpeg2000(image, ratios[i]) for i in indices]
    layers = sorted({float(r) for r in ratios}, reverse=True)
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(
        buffer,
        format="JPEG2000",
        quality_mode="rates",
        quality_layers=layers,
        irreversible=True,
        num_resolutions=jpeg2000_resolutions(image.shape),
    )
    data = buffer.getvalue()
    return [_decode_layers(data, layers.index(float(ratios[i])) + 1) for i in indices]


def _decode_layers(data: bytes, count: int) -> np.ndarray:
    """RGB pixels of a JPEG2000 codestream decoded from its first ``count`` quality layers."""
    with Image.open(io.BytesIO(data)) as decoded:
        # Pillow keeps ``layers`` but passes it to OpenJPEG only with ``reduce`` set (Pillow <= 13),
        # so the decoder arguments (codec, reduce, layers, fd, length) are set here directly.
        tile = decoded.tile[0]
        if len(decoded.tile) != 1 or len(tile.args) != 5:
            raise RuntimeError(f"unexpected Pillow JPEG2000 decoder arguments {tile.args!r}")
        decoded.tile = [tile._replace(args=(tile.args[0], tile.args[1], int(count), *tile.args[3:]))]
        return np.array(decoded.convert("RGB"))


@register(
    "jpeg",
    family="compression",
    levels=JPEG_QUALITIES,
    parameter="JPEG quality",
    description="JPEG compression at KADID's qualities (KADID #10).",
    source="KADID-10k imcompressjpeg",
)
def jpeg_compression(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    return jpeg(image, JPEG_QUALITIES[level - 1])


@register(
    "jpeg2000",
    family="compression",
    levels=JPEG2000_RATIOS,
    parameter="compression ratio",
    description="JPEG2000 compression (Pillow/OpenJPEG, quality_mode='rates') at KADID's ratios (KADID #9).",
    source="KADID-10k imcompressjp2k",
)
def jpeg2000_compression(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    return jpeg2000_layers(image, JPEG2000_RATIOS, decode=(level - 1,))[0]


@register_levels("jpeg2000")
def jpeg2000_compression_levels(image: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    return jpeg2000_layers(image, JPEG2000_RATIOS)
