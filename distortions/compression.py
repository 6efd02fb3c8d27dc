"""Compression family: JPEG (OpenCV, libjpeg scale) and JPEG2000 (Pillow/OpenJPEG, target compression ratio)."""
from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image

from distortions._registry import register

JPEG_QUALITIES = (43, 36, 24, 7, 4)
JPEG2000_RATIOS = (16, 32, 45, 120, 400)
MAX_RESOLUTIONS = 6


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
    return jpeg2000(image, JPEG2000_RATIOS[level - 1])
