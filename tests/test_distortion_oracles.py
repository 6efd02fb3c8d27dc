"""Every distortion's level table and applied parameter, against independent computations.

The expected level tables are written out here, not read from ``distortions``: the published ones
(KADID-10k, RankIQA's LIVE generator) are copied from the sources cited below, so a changed table,
a level applied at the wrong parameter (e.g. blur at 1.5x its sigma) or a wrong formula fails.
Each oracle computes the distorted image (or a statistic of it) from the expected parameter with
OpenCV, Pillow, SciPy or NumPy directly, never through the helpers of ``distortions``.

Tolerances: 0 where the oracle runs the same codec (Pillow's libjpeg-turbo / OpenJPEG give the
same bytes as the code); 1 grey level where the oracle computes in float64 what the code computes
in float32 and both round to uint8 (float32 relative error ~6e-8 x 255 << 0.5, so only values
within float error of a .5 boundary can round the other way: at most 1 level); noise statistics
within 5 standard errors of their closed-form expectation (sampling error computed from the same
distribution, not chosen to pass).
"""
from __future__ import annotations

import io
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from scipy import optimize, stats
from scipy.interpolate import PchipInterpolator

import distortions

# Published tables (5 levels, mildest first). Source: KADID-10k's official MATLAB generator
# ``imdist_generator.m`` (copy in CaptainEven/SelfSuperviseAidedBlindIQA, matlab_code_imdistort,
# commit edbca3f), as tabulated in ../shared/reference/distortions.md section 1; keyed by KADID id.
KADID_PUBLISHED = {
    1: (0.1, 0.5, 1, 2, 5),            # Gaussian blur sigma
    2: (1, 2, 4, 6, 8),                # lens blur disk radius
    3: (1, 2, 4, 6, 10),               # motion blur length
    4: (1, 3, 6, 8, 12),               # colour diffusion amount
    5: (1, 3, 6, 8, 12),               # colour shift amount
    6: (64, 48, 32, 16, 8),            # colour quantization colours
    7: (0.4, 0.2, 0.1, 0, -0.4),       # HSV saturation factor
    8: (1, 2, 3, 6, 9),                # Lab saturation factor
    9: (16, 32, 45, 120, 400),         # JPEG2000 compression ratio
    10: (43, 36, 24, 7, 4),            # JPEG quality
    11: (0.001, 0.002, 0.003, 0.005, 0.01),    # white noise variance
    12: (1e-4, 5e-4, 1e-3, 2e-3, 3e-3),        # colour-component noise variance
    13: (0.001, 0.005, 0.01, 0.02, 0.03),      # impulse density
    14: (0.001, 0.005, 0.01, 0.02, 0.05),      # speckle variance
    15: (0.01, 0.03, 0.05, 0.1, 0.15),         # denoise: noise variance
    16: (0.1, 0.2, 0.4, 0.7, 1.1),             # brighten amount
    17: (0.05, 0.1, 0.2, 0.4, 0.8),            # darken amount
    18: (0.15, 0.08, 0, -0.08, -0.15),         # mean shift
    19: (0.05, 0.1, 0.2, 0.5, 1),              # jitter amount
    20: (20, 40, 60, 80, 100),                 # non-eccentricity patches
    21: (0.01, 0.05, 0.1, 0.2, 0.5),           # pixelate s (z = 0.95 - s^0.6)
    22: (20, 16, 13, 10, 7),                   # quantization levels
    23: (2, 4, 6, 8, 10),                      # colour blocks
    24: (1, 2, 3, 6, 12),                      # sharpen amount
    25: (0.3, 0.15, 0, -0.4, -0.6),            # contrast change a
}
# RankIQA's LIVE generator, xialeiliu/RankIQA data/data_generator/distortion_generator.m (HEAD 22ca65c),
# as tabulated in ../shared/reference/distortions.md section 2.
LIVE_PUBLISHED = {
    "GB": (7, 15, 39, 91, 199),            # fspecial('gaussian', n, n/6)
    "GN": (-10, -7.5, -5.5, -3.5, 0),      # imnoise variance 2^e
    "JPEG": (43, 12, 7, 4, 0),             # quality (0 runs as libjpeg's minimum, 1)
    "JP2K": (0.46, 0.16, 0.07, 0.04, 0.02),  # bits per pixel (ratio 24/bpp)
}

# The tables rankiqa uses. "= KADID n" marks a table equal to the published one; the others state
# their documented deviation (each also in the type's description/source).
EXPECTED_LEVELS = {
    "gaussian_blur": (0.5, 1.0, 2.0, 3.5, 5.0),      # KADID 1 minus its identity 0.1, plus 3.5
    "lens_blur": KADID_PUBLISHED[2],
    "motion_blur": (2, 4, 6, 10, 14),                # KADID 3 minus its identity length 1, plus 14
    "color_diffusion": KADID_PUBLISHED[4],
    "color_shift": KADID_PUBLISHED[5],
    "color_quantization": KADID_PUBLISHED[6],
    "color_saturation_decrease": (0.6, 0.4, 0.2, 0.1, 0.0),  # KADID 7 without its negative factor
    "color_saturation_increase": (1.5, 2, 3, 6, 9),  # KADID 8 with identity 1 -> 1.5
    "jpeg2000": KADID_PUBLISHED[9],
    "jpeg": KADID_PUBLISHED[10],
    "white_noise": KADID_PUBLISHED[11],
    "color_component_noise": KADID_PUBLISHED[12],
    "impulse_noise": KADID_PUBLISHED[13],
    "multiplicative_noise": KADID_PUBLISHED[14],
    "denoise": (0.002, 0.005, 0.01, 0.02, 0.04),     # KADID 15's variances are too strong for NLM
    "brighten": KADID_PUBLISHED[16],
    "darken": KADID_PUBLISHED[17],
    "mean_shift_up": (0.05, 0.1, 0.15, 0.2, 0.25),   # KADID 18 split into one-directional types
    "mean_shift_down": (0.05, 0.1, 0.15, 0.2, 0.25),
    "jitter": KADID_PUBLISHED[19],
    "non_eccentricity_patch": KADID_PUBLISHED[20],
    "pixelate": (2, 3, 4, 6, 8),                     # block side in px instead of KADID 21's resize factor
    "quantization": KADID_PUBLISHED[22],
    "color_block": KADID_PUBLISHED[23],
    "high_sharpen": KADID_PUBLISHED[24],
    "contrast_increase": (0.25, 0.21, 0.17, 0.13, 0.09),  # curve value at 0.3, KADID 25 split in two
    "contrast_decrease": (0.34, 0.37, 0.40, 0.43, 0.46),
    "correlated_noise": (0.0005, 0.001, 0.002, 0.004, 0.008),     # TID2013 #3, rankiqa's variances
    "high_frequency_noise": (0.001, 0.003, 0.006, 0.01, 0.02),    # TID2013 #5, rankiqa's variances
    "chromatic_aberration": (1, 2, 3, 5, 8),          # red shift at the corners, px
    "jpeg_transmission_errors": (3, 6, 10, 16, 24),   # damaged MCU runs at 512x384
    "live_gaussian_blur": LIVE_PUBLISHED["GB"],
    "live_white_noise": LIVE_PUBLISHED["GN"],
    "live_jpeg": (43, 12, 7, 4, 1),                   # LIVE's quality 0 is libjpeg's 1
    "live_jpeg2000": LIVE_PUBLISHED["JP2K"],
}
# LIVE MD-style chains: level k is every member at its own level k (docs/composed_distortions.md)
EXPECTED_LEVELS["blur_jpeg"] = tuple(zip(EXPECTED_LEVELS["gaussian_blur"], EXPECTED_LEVELS["jpeg"]))
EXPECTED_LEVELS["blur_noise"] = tuple(zip(EXPECTED_LEVELS["gaussian_blur"], EXPECTED_LEVELS["white_noise"]))
KADID_EQUAL = {"lens_blur": 2, "color_diffusion": 4, "color_shift": 5, "color_quantization": 6, "jpeg2000": 9,
               "jpeg": 10, "white_noise": 11, "color_component_noise": 12, "impulse_noise": 13,
               "multiplicative_noise": 14, "brighten": 16, "darken": 17, "jitter": 19, "non_eccentricity_patch": 20,
               "quantization": 22, "color_block": 23, "high_sharpen": 24}
REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "distortions.md"
NUMBER = re.compile(r"[-+\u2212]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?")
FIVE = range(1, 6)


def photo(height: int = 96, width: int = 128, seed: int = 0) -> np.ndarray:
    """A seeded RGB test picture: smooth colour gradients, edges and texture over the full 0..255 range."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    base = np.stack([128 + 100 * np.sin(xx / 9 + yy / 23), 128 + 100 * np.cos(yy / 7), 255 * xx / width], axis=2)
    base[height // 3 : height // 2, width // 4 : width // 2] = (240, 30, 60)  # a saturated block with edges
    return np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)


def gray(value: int, side: int) -> np.ndarray:
    return np.full((side, side, 3), value, np.uint8)


def rounded(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def max_difference(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(np.int32) - b.astype(np.int32)).max())


# ---------------------------------------------------------------- level tables


def test_every_registered_type_has_an_expected_table():
    assert set(EXPECTED_LEVELS) == set(distortions.names())


@pytest.mark.parametrize("name", sorted(EXPECTED_LEVELS))
def test_level_table_is_the_expected_one(name):
    expected = EXPECTED_LEVELS[name]
    if isinstance(expected[0], tuple):  # a chain: one value per member
        assert distortions.get(name).levels == expected
    else:
        assert distortions.get(name).levels == pytest.approx(expected, abs=0)


def _reference_rows(section_title: str) -> dict[str, tuple[float, ...]]:
    """First number of each of the last 5 cells of every table row in a section of the reference."""
    text = REFERENCE.read_text(encoding="utf-8")
    section = text.split(section_title, 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 6 and not set(cells[0]) <= set("-"):
            numbers = [NUMBER.search(cell) for cell in cells[-5:]]
            if all(numbers):
                rows[cells[0]] = tuple(float(m.group().replace("\u2212", "-")) for m in numbers)
    return rows


def test_published_tables_match_the_shared_reference_when_present():
    """The constants above are copied from the reference; re-read it (when the shared folder is
    there) to catch a copying mistake. The test above does not depend on it."""
    if not REFERENCE.is_file():
        from _shared import require_shared

        require_shared("..", "reference", "distortions.md")
    kadid = _reference_rows("## 1. KADID-10k")
    for kadid_id, levels in KADID_PUBLISHED.items():
        assert kadid[str(kadid_id)] == pytest.approx(levels, abs=0), kadid_id
    live = _reference_rows("**LIVE ranking set**")
    for row, levels in LIVE_PUBLISHED.items():
        assert live[row] == pytest.approx(levels, abs=0), row


def test_kadid_derived_tables_equal_the_published_ones():
    for name, kadid_id in KADID_EQUAL.items():
        assert EXPECTED_LEVELS[name] == KADID_PUBLISHED[kadid_id], name


# ---------------------------------------------------------------- deterministic oracles


def gaussian_oracle(image, sigma):
    ksize = 2 * int(np.ceil(2 * sigma)) + 1  # MATLAB imgaussfilt's default size, replicate border
    return cv2.GaussianBlur(image, (ksize, ksize), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REPLICATE)


def disk_oracle(image, radius):
    """fspecial('disk') as documented: each cell weighted by the fraction of its 16x16 sub-cell
    centres inside the circle (counted one cell at a time here)."""
    half = int(np.ceil(radius))
    sub = (np.arange(16) + 0.5) / 16 - 0.5
    kernel = np.zeros((2 * half + 1, 2 * half + 1))
    for i, y in enumerate(range(-half, half + 1)):
        for j, x in enumerate(range(-half, half + 1)):
            kernel[i, j] = np.mean((y + sub[:, None]) ** 2 + (x + sub[None, :]) ** 2 <= radius**2)
    return cv2.filter2D(image.astype(np.float64), -1, kernel / kernel.sum(), borderType=cv2.BORDER_REPLICATE)


def lab(image):
    return cv2.cvtColor(image.astype(np.float32) / 255, cv2.COLOR_RGB2Lab).astype(np.float64)


def from_lab(values):
    return np.clip(cv2.cvtColor(values.astype(np.float32), cv2.COLOR_Lab2RGB).astype(np.float64) * 255, 0, 255)


def color_diffusion_oracle(image, amount):
    values = lab(image)
    sigma = 1.5 * amount + 2
    ksize = 2 * int(np.ceil(2 * sigma)) + 1
    values[:, :, 1:] = amount * cv2.GaussianBlur(values[:, :, 1:], (ksize, ksize), sigma, borderType=cv2.BORDER_REPLICATE)
    return from_lab(values)


def pil_quantize_oracle(image, colours):
    picture = Image.fromarray(image)  # <= 160 px: the palette is built on the image itself
    palette = picture.quantize(colors=colours, method=Image.Quantize.MEDIANCUT)
    return np.array(picture.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG).convert("RGB"))


def desaturate_oracle(image, factor):
    value = image.max(axis=2, keepdims=True).astype(np.float64)  # HSV V; S scaled by factor keeps V
    return factor * image + (1 - factor) * value


def saturate_oracle(image, factor):
    values = lab(image)
    values[:, :, 1:] *= factor
    return from_lab(values)


def pil_codec(image, **options):
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, **options)
    buffer.seek(0)
    return np.array(Image.open(buffer).convert("RGB"))


def jpeg_oracle(image, quality):
    return pil_codec(image, format="JPEG", quality=int(quality))


def jpeg2000_oracle(image, ratio):
    resolutions = int(max(1, min(6, np.floor(np.log2(min(image.shape[:2]))) - 2)))
    return pil_codec(image, format="JPEG2000", quality_mode="rates", quality_layers=[float(ratio)], irreversible=True,
                     num_resolutions=resolutions)


def spline_3_points(x, middle):
    """The interpolating quadratic through (0,0), (0.5, middle), (1,1), clipped to [0, 1]."""
    return np.clip(x + 4 * (middle - 0.5) * x * (1 - x), 0, 1)


def brighten_oracle(image, amount):
    middle = 0.5 + amount / 2
    on_rgb = rounded(255 * spline_3_points(image / 255.0, middle))  # a lookup table of uint8 values
    values = lab(image)
    values[:, :, 0] = 100 * spline_3_points(values[:, :, 0] / 100, middle)
    return (2 * on_rgb.astype(np.float64) + rounded(from_lab(values))) / 3


def darken_oracle(image, amount):
    return 255 * spline_3_points(image / 255.0, 0.5 - amount / 2)


def pixelate_oracle(image, block):
    height, width = image.shape[:2]
    padded = np.pad(image, ((0, -height % block), (0, -width % block), (0, 0)), mode="edge").astype(np.float64)
    rows, cols = padded.shape[0] // block, padded.shape[1] // block
    means = padded.reshape(rows, block, cols, block, 3).mean(axis=(1, 3))
    return np.repeat(np.repeat(means, block, axis=0), block, axis=1)[:height, :width]


def sharpen_oracle(image, amount):
    values = lab(image)
    lightness = values[:, :, 0]
    blurred = cv2.GaussianBlur(lightness, (13, 13), 3.0, borderType=cv2.BORDER_REPLICATE)  # radius 3: 2*ceil(6)+1
    values[:, :, 0] = np.clip(lightness + amount * (lightness - blurred), 0, 100)
    return from_lab(values)


def contrast_oracle(image, knee):
    curve = PchipInterpolator([0, 0.3, 0.5, 0.7, 1], [0, knee, 0.5, 1 - knee, 1])
    return np.clip(255 * curve(image / 255.0), 0, 255)


def aberration_oracle(image, corner_shift):
    """Red magnified, blue shrunk by half as much, about the centre: sampled with explicit maps."""
    height, width = image.shape[:2]
    relative = corner_shift / (0.5 * np.hypot(height, width))
    cy, cx = (height - 1) / 2, (width - 1) / 2
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    out = image.copy()
    for channel, factor in ((0, 1 + relative), (2, 1 - relative / 2)):
        map_x = (cx + (xx - cx) / factor).astype(np.float32)
        map_y = (cy + (yy - cy) / factor).astype(np.float32)
        out[:, :, channel] = cv2.remap(np.ascontiguousarray(image[:, :, channel]), map_x, map_y, cv2.INTER_LINEAR,
                                       borderMode=cv2.BORDER_REPLICATE)
    return out


def live_blur_oracle(image, size):
    """fspecial('gaussian', n, n/6) written out, imfilter 'symmetric' (= OpenCV BORDER_REFLECT)."""
    sigma = size / 6
    k = np.arange(size) - (size - 1) / 2
    kernel = np.exp(-(k[:, None] ** 2 + k[None, :] ** 2) / (2 * sigma**2))
    return cv2.filter2D(image.astype(np.float64), -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT)


# Bounds on |output - oracle| in grey levels. Oracles returning uint8 run the same codec or OpenCV
# resampling: 0, or 1 where OpenCV's fixed-point bilinear weights (1/32 px, 15-bit) round differently
# from remap's. Oracles returning float64 give the exact value: a correctly rounded uint8 output is
# within 0.5 of it, plus the float32 error of the code's own arithmetic (about 10 operations at
# 6e-8 relative on values up to 255: 1e-4; 1e-3 through a float32 Lab round trip).
ROUNDED = 0.5 + 1e-4
ROUNDED_LAB = 0.5 + 1e-3
ORACLES = {
    "gaussian_blur": (gaussian_oracle, 0),
    "lens_blur": (disk_oracle, ROUNDED),
    "color_diffusion": (color_diffusion_oracle, ROUNDED_LAB),
    "color_quantization": (pil_quantize_oracle, 0),
    "color_saturation_decrease": (desaturate_oracle, ROUNDED),
    "color_saturation_increase": (saturate_oracle, ROUNDED_LAB),
    "jpeg": (jpeg_oracle, 0),
    "brighten": (brighten_oracle, ROUNDED_LAB),
    "darken": (darken_oracle, ROUNDED),
    "mean_shift_up": (lambda image, shift: np.clip(image + 255.0 * shift, 0, 255), ROUNDED),
    "mean_shift_down": (lambda image, shift: np.clip(image - 255.0 * shift, 0, 255), ROUNDED),
    "pixelate": (pixelate_oracle, ROUNDED),
    "high_sharpen": (sharpen_oracle, ROUNDED_LAB),
    "contrast_increase": (contrast_oracle, ROUNDED),
    "contrast_decrease": (contrast_oracle, ROUNDED),
    "chromatic_aberration": (aberration_oracle, 1),
    "live_gaussian_blur": (live_blur_oracle, ROUNDED),
    "live_jpeg": (jpeg_oracle, 0),
}


@pytest.mark.parametrize("level", FIVE)
@pytest.mark.parametrize("name", sorted(ORACLES))
def test_output_equals_an_independent_computation_at_the_expected_parameter(name, level):
    oracle, bound = ORACLES[name]
    # JPEG2000 at KADID's/LIVE's size: on small images the strongest rates fall below OpenJPEG's
    # smallest stream (~250 bytes), where any rate near the table's gives the same bytes
    image = photo(384, 512) if "jpeg2000" in name else photo()
    expected = oracle(image, EXPECTED_LEVELS[name][level - 1])
    got = distortions.apply(image, name, level, seed=0)
    difference = np.abs(got.astype(np.float64) - expected.astype(np.float64)).max()
    assert difference <= bound, difference


@pytest.mark.parametrize("level", FIVE)
@pytest.mark.parametrize("name", ["jpeg", "live_jpeg"])
def test_jpeg_on_noise_equals_pillow_at_the_expected_quality(name, level):
    # Qualities 1 and 2 differ in one luma quantizer only (250 vs 255 at frequency (0, 2): libjpeg
    # clamps the others to 255), which the smooth test photo does not reach; uniform noise does.
    image = np.random.default_rng(level).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    quality = EXPECTED_LEVELS[name][level - 1]
    got = distortions.apply(image, name, level, seed=0)
    np.testing.assert_array_equal(got, jpeg_oracle(image, quality))
    assert max_difference(got, jpeg_oracle(image, quality + 1)) > 0  # control: the image tells q from q + 1


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


@pytest.mark.parametrize("level", FIVE)
@pytest.mark.parametrize("name, ratio", [("jpeg2000", lambda r: r), ("live_jpeg2000", lambda bpp: 24 / bpp)])
def test_jpeg2000_sits_at_the_rate_distortion_point_of_its_ratio(name, ratio, level):
    # The levels come from ONE multi-layer codestream decoded at k layers (docs/performance.md), so the
    # pixels are not those of a single-layer encode; the quality must be that of Pillow's own
    # single-layer encode at the table's ratio: within 0.5 dB PSNR (the quality-layer overhead).
    image = photo(384, 512)
    single = jpeg2000_oracle(image, ratio(EXPECTED_LEVELS[name][level - 1]))
    got = distortions.apply(image, name, level, seed=0)
    assert abs(psnr(image, got) - psnr(image, single)) <= 0.5


def jpeg2000_layered_oracle(image: np.ndarray, ratios: tuple[float, ...], level: int) -> np.ndarray:
    """The documented layered encode (docs/performance.md): ONE Pillow/OpenJPEG codestream with a quality
    layer per ratio, fewest bytes first, decoded from the layers up to the level's ratio."""
    layers = sorted(ratios, reverse=True)
    resolutions = int(max(1, min(6, np.floor(np.log2(min(image.shape[:2]))) - 2)))
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG2000", quality_mode="rates", quality_layers=layers, irreversible=True,
                                num_resolutions=resolutions)
    with Image.open(buffer) as decoded:
        # Pillow has no public option for "decode k layers"; OpenJPEG takes it in the decoder
        # arguments (codec, reduce, layers, fd, length)
        codec, reduce, _, *rest = decoded.tile[0].args
        decoded.tile = [decoded.tile[0]._replace(args=(codec, reduce, layers.index(ratios[level - 1]) + 1, *rest))]
        return np.array(decoded.convert("RGB"))


@pytest.mark.parametrize("level", FIVE)
@pytest.mark.parametrize("name, ratio", [("jpeg2000", lambda r: r), ("live_jpeg2000", lambda bpp: 24 / bpp)])
def test_jpeg2000_equals_the_layered_encode_at_the_expected_ratios(name, ratio, level):
    # the same codec with the table's ratios gives the same bytes: bound 0. The control shows that
    # this image tells each ratio from one 25 % higher (a plausible wrong table).
    image = photo(384, 512)
    ratios = tuple(ratio(value) for value in EXPECTED_LEVELS[name])
    got = distortions.apply(image, name, level, seed=0)
    np.testing.assert_array_equal(got, jpeg2000_layered_oracle(image, ratios, level))
    wrong = tuple(r * 1.25 if k == level - 1 else r for k, r in enumerate(ratios))
    assert max_difference(got, jpeg2000_layered_oracle(image, wrong, level)) > 0


@pytest.mark.parametrize("level", FIVE)
def test_quantization_uses_exactly_the_expected_number_of_levels(level):
    count = EXPECTED_LEVELS["quantization"][level - 1]
    ramp = np.tile(np.arange(256, dtype=np.uint8), (40, 1))  # every value equally often: no empty cell
    out = distortions.apply(np.dstack([ramp] * 3), "quantization", level, seed=0)
    assert len(np.unique(out)) == count
    # Lloyd-Max on a flat histogram converges to equal-width cells, centres near (k + 1/2) * 256 / N
    centres = np.unique(out).astype(np.float64)
    assert np.abs(centres - (np.arange(count) + 0.5) * 256 / count).max() <= 1.0


# ---------------------------------------------------------------- noise: closed-form statistics


def rounded_normal_moments(centre: float, sigma: float) -> tuple[float, float, float]:
    """Mean, variance and 4th central moment of clip(round(centre + sigma Z), 0, 255), Z ~ N(0, 1)."""
    edges = np.concatenate([[-np.inf], np.arange(256)[:-1] + 0.5, [np.inf]])
    p = np.diff(stats.norm.cdf((edges - centre) / sigma))
    k = np.arange(256)
    mean = float(p @ k)
    return mean, float(p @ (k - mean) ** 2), float(p @ (k - mean) ** 4)


def rounded_uniform_moments(centre: float, half_width: float) -> tuple[float, float, float]:
    """The same for clip(round(centre + U)), U uniform on [-half_width, half_width]."""
    lower = np.arange(256) - 0.5
    p = np.clip(np.minimum(lower + 1, centre + half_width) - np.maximum(lower, centre - half_width), 0, None)
    p /= p.sum()
    k = np.arange(256)
    mean = float(p @ k)
    return mean, float(p @ (k - mean) ** 2), float(p @ (k - mean) ** 4)


def assert_sample_variance(values: np.ndarray, moments: tuple[float, float, float]) -> None:
    """Sample variance within 5 standard errors: Var(s^2) ~ (m4 - var^2) / n."""
    _, variance, fourth = moments
    standard_error = np.sqrt((fourth - variance**2) / values.size)
    assert abs(values.var() - variance) <= 5 * standard_error, (values.var(), variance, standard_error)


NOISE_SIDE = 256


@pytest.mark.parametrize("level", FIVE)
@pytest.mark.parametrize("name", ["white_noise", "live_white_noise"])
def test_additive_white_noise_has_the_expected_variance(name, level):
    parameter = EXPECTED_LEVELS[name][level - 1]
    sigma = np.sqrt(parameter if name == "white_noise" else 2.0**parameter)  # variance on [0, 1]
    out = distortions.apply(gray(128, NOISE_SIDE), name, level, seed=level).astype(np.float64)
    assert_sample_variance(out, rounded_normal_moments(128, 255 * sigma))  # clipping included


@pytest.mark.parametrize("level", FIVE)
def test_color_component_noise_has_the_expected_variance_per_channel(level):
    variance = EXPECTED_LEVELS["color_component_noise"][level - 1]
    out = distortions.apply(gray(128, NOISE_SIDE), "color_component_noise", level, seed=level).astype(np.float64)
    # full-range YCrCb -> RGB (ITU-R BT.601 as in the OpenCV docs): R = Y + 1.403 Cr', G = Y - 0.714 Cr' - 0.344 Cb',
    # B = Y + 1.773 Cb'; independent noise of variance v on Y, Cr, Cb gives each channel v * (sum of squares)
    gains = {0: 1 + 1.403**2, 1: 1 + 0.714**2 + 0.344**2, 2: 1 + 1.773**2}
    for channel, gain in gains.items():
        assert_sample_variance(out[:, :, channel], rounded_normal_moments(128, 255 * np.sqrt(variance * gain)))


@pytest.mark.parametrize("level", FIVE)
def test_multiplicative_noise_is_uniform_speckle_with_the_expected_variance(level):
    variance = EXPECTED_LEVELS["multiplicative_noise"][level - 1]
    out = distortions.apply(gray(128, NOISE_SIDE), "multiplicative_noise", level, seed=level).astype(np.float64)
    # J = I + n I, n uniform with variance v: half-width sqrt(3 v), scaled by I = 128 grey levels
    assert_sample_variance(out, rounded_uniform_moments(128, 128 * np.sqrt(3 * variance)))
    assert np.abs(out - 128).max() <= 128 * np.sqrt(3 * variance) + 0.5  # bounded, unlike Gaussian noise


@pytest.mark.parametrize("level", FIVE)
def test_impulse_noise_hits_the_expected_fraction_half_salt_half_pepper(level):
    density = EXPECTED_LEVELS["impulse_noise"][level - 1]
    out = distortions.apply(gray(128, 512), "impulse_noise", level, seed=level)
    hit = out != 128
    n = out.size
    assert abs(hit.mean() - density) <= 5 * np.sqrt(density * (1 - density) / n)  # binomial standard error
    assert set(np.unique(out[hit])) <= {0, 255}
    salt = (out[hit] == 255).mean()
    assert abs(salt - 0.5) <= 5 * np.sqrt(0.25 / hit.sum())


def gaussian_taps(sigma: float) -> np.ndarray:
    half = int(np.ceil(2 * sigma))
    k = np.arange(-half, half + 1)
    taps = np.exp(-(k**2) / (2 * sigma**2))
    return taps / taps.sum()


def lag_one_correlation(field: np.ndarray) -> float:
    """Correlation of horizontally adjacent values of a (H, W, C) field (pooled over rows and channels)."""
    centred = field - field.mean()
    return float((centred[:, 1:] * centred[:, :-1]).mean() / centred.var())


@pytest.mark.parametrize("level", FIVE)
@pytest.mark.parametrize("name", ["correlated_noise", "high_frequency_noise"])
def test_filtered_noise_has_the_expected_variance_and_correlation(name, level):
    variance = EXPECTED_LEVELS[name][level - 1]
    out = distortions.apply(gray(128, NOISE_SIDE), name, level, seed=level).astype(np.float64) - 128
    # the field is rescaled to unit sample variance, so only rounding (variance 1/12) is added on top
    noise_variance = 255**2 * variance
    assert out.var() == pytest.approx(noise_variance + 1 / 12, rel=5 * np.sqrt(2 / out.size) * 4)
    # lag-1 correlation of the filtered white noise, from its kernel h: sum h(k) h(k+1) / sum h(k)^2
    # (TID2013 #3: Gaussian low-pass sigma 1.5; #5: white minus its Gaussian low-pass sigma 1)
    taps = gaussian_taps(1.5) if name == "correlated_noise" else -gaussian_taps(1.0)
    if name == "high_frequency_noise":
        # 2-D kernel delta - g g^T; the horizontal correlation needs the full 2-D sum
        kernel = -np.outer(taps, taps)
        kernel[len(taps) // 2, len(taps) // 2] += 1
        rho = (kernel[:, 1:] * kernel[:, :-1]).sum() / (kernel**2).sum()
    else:
        rho = (taps[1:] * taps[:-1]).sum() / (taps**2).sum()  # the vertical factor cancels
    expected = rho * noise_variance / (noise_variance + 1 / 12)  # rounding noise is white
    # standard error of a lag-1 correlation over n correlated values: about sqrt((1 + 2 sum rho_k^2) / n) < 2 / sqrt(n)
    assert lag_one_correlation(out) == pytest.approx(expected, abs=5 * 2 / np.sqrt(out.size))


# ---------------------------------------------------------------- geometric measurements


@pytest.mark.parametrize("level", FIVE)
def test_motion_blur_spreads_a_point_along_a_line_of_the_expected_length(level):
    length = EXPECTED_LEVELS["motion_blur"][level - 1]
    image = np.zeros((64, 64, 3), np.uint8)
    image[32, 32] = 255
    psf = distortions.apply(image, "motion_blur", level, seed=level)[:, :, 0].astype(np.float64)
    weights = psf / psf.sum()
    yy, xx = np.mgrid[0:64, 0:64]
    my, mx = (weights * yy).sum(), (weights * xx).sum()
    covariance = np.cov(np.stack([yy.ravel(), xx.ravel()]), aweights=weights.ravel(), bias=True)
    along, across = np.sqrt(np.linalg.eigvalsh(covariance)[::-1])
    # a uniform segment of length L has standard deviation L / sqrt(12) along it; bilinear splatting
    # of sub-pixel samples adds at most 1/4 px^2 of variance in each direction, rounding to uint8 a little more
    assert abs(along**2 - length**2 / 12) <= 0.25 + 0.1, (along**2, length**2 / 12)
    assert across**2 <= 0.25 + 0.1
    assert abs(mx - 32) <= 0.5 and abs(my - 32) <= 0.5  # centred on the point


@pytest.mark.parametrize("level", FIVE)
def test_color_block_draws_the_expected_number_of_blocks(level):
    count = EXPECTED_LEVELS["color_block"][level - 1]
    image = np.full((384, 512, 3), 128, np.uint8)  # KADID's size: blocks of 32 px
    out = distortions.apply(image, "color_block", level, seed=3)
    changed = np.any(out != 128, axis=2)
    colours = np.unique(out[changed], axis=0)
    assert len(colours) == count  # each block one random colour; seed 3 hides none of them completely
    assert changed.sum() <= count * 32 * 32


@pytest.mark.parametrize("level", FIVE)
def test_pixelate_blocks_have_the_expected_side(level):
    block = EXPECTED_LEVELS["pixelate"][level - 1]
    image = photo(96, 96)  # 96 is a multiple of every block side
    out = distortions.apply(image, "pixelate", level, seed=0).astype(np.int32)
    cells = out.reshape(96 // block, block, 96 // block, block, 3)
    assert np.all(cells == cells[:, :1, :, :1])
    assert np.any(out[:, block - 1] != out[:, block]) and np.any(out[block - 1] != out[block])


def color_shift_oracle(image: np.ndarray, amount: float, angle: float) -> np.ndarray:
    """The green channel of KADID #5 as the type's source documents it, in float64 (unrounded): green
    moved by amount * s px (s = sqrt(area / 512x384)) in direction ``angle`` (bilinear, replicated
    border), blended in with a weight w: the Sobel gradient magnitude of the grey image, blurred by
    (4 + amount / 2) * s px, stretched to [0, 1] and floored at 0.1 * (1 + amount / 4)."""
    height, width = image.shape[:2]
    scale = np.sqrt(height * width / (512 * 384))
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) / 255.0
    magnitude = np.hypot(cv2.Sobel(grey, cv2.CV_64F, 1, 0, ksize=3, borderType=cv2.BORDER_REPLICATE),
                         cv2.Sobel(grey, cv2.CV_64F, 0, 1, ksize=3, borderType=cv2.BORDER_REPLICATE))
    edges = gaussian_oracle(magnitude, (4 + amount / 2) * scale)
    weight = np.clip((edges - edges.min()) / (edges.max() - edges.min()), 0.1 * (1 + amount / 4), 1)
    green = np.ascontiguousarray(image[:, :, 1])
    move = np.float32([[1, 0, amount * scale * np.cos(angle)], [0, 1, amount * scale * np.sin(angle)]])
    moved = cv2.warpAffine(green, move, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return weight * moved + (1 - weight) * green


@pytest.mark.parametrize("level", FIVE)
def test_color_shift_is_the_documented_blend_at_the_expected_amount(level):
    amount = EXPECTED_LEVELS["color_shift"][level - 1]
    image = photo(192, 256)  # a quarter of KADID's area: green moves by amount / 2 px
    out = distortions.apply(image, "color_shift", level, seed=level)
    np.testing.assert_array_equal(out[:, :, [0, 2]], image[:, :, [0, 2]])
    green = out[:, :, 1].astype(np.float64)

    def rms(angle: float) -> float:
        return float(np.sqrt(np.mean((color_shift_oracle(image, amount, angle) - green) ** 2)))

    # The direction is random: searched in 5 degree steps, then refined around the best step.
    steps = np.radians(np.arange(0.0, 360.0, 5.0))
    coarse = steps[np.argmin([rms(angle) for angle in steps])]
    best = optimize.minimize_scalar(rms, bounds=(coarse - np.radians(5), coarse + np.radians(5)), method="bounded",
                                    options={"xatol": 1e-7})
    # At the true direction a correctly rounded output is within 0.5 of the oracle at every pixel, so
    # the RMS there (and at the best direction) is at most 0.5; rounding alone gives 1/sqrt(12) = 0.29.
    assert best.fun <= 0.5, (np.degrees(best.x), best.fun)


@pytest.mark.parametrize("level", [3, 4, 5])
def test_jitter_displaces_pixels_by_the_expected_spread(level):
    """Levels 1-2 move pixels by under 1 grey level on these ramps (sd 0.25 and 0.45), where OpenCV's
    bicubic kernel, which does not reproduce a ramp exactly, dominates: they are checked by the next test."""
    amount = EXPECTED_LEVELS["jitter"][level - 1]
    side, slope = 128, 2  # ramps of slope 2 grey levels per px: out - in = round(2 * displacement)
    ramp = np.tile(np.arange(side) * slope, (side, 1))
    image = np.dstack([ramp, ramp.T, np.full((side, side), 128)]).astype(np.uint8)
    out = distortions.apply(image, "jitter", level, seed=level).astype(np.float64)
    inner = (slice(8, -8), slice(8, -8))  # away from the replicated border
    # KADID: 5 steps of N(0, a^2) per axis, i.e. N(0, 5 a^2); OpenCV's remap quantises the sampling
    # position to 1/32 px (uniform error, variance 1/(12 * 32^2))
    sigma = slope * np.sqrt(5 * amount**2 + 1 / (12 * 32**2))
    for channel in (0, 1):  # x displacement on the horizontal ramp, y on the vertical one
        difference = (out[inner + (channel,)] - image[inner + (channel,)]) + 128
        assert_sample_variance(difference, rounded_normal_moments(128, sigma))


@pytest.mark.parametrize("level", FIVE)
def test_jpeg_transmission_errors_cast_the_expected_number_of_runs(level):
    count = EXPECTED_LEVELS["jpeg_transmission_errors"][level - 1]
    # KADID's size (counts are given for 512x384); flat grey survives JPEG unchanged, so every damaged
    # run shows as its own colour cast (3 random offsets per run), on whole 16x16 MCUs
    out = distortions.apply(np.full((384, 512, 3), 128, np.uint8), "jpeg_transmission_errors", level, seed=level)
    changed = np.any(out != 128, axis=2)
    assert len(np.unique(out[changed], axis=0)) == count
    mcus = changed.reshape(24, 16, 32, 16).transpose(0, 2, 1, 3).reshape(24, 32, 256)
    assert np.all(mcus == mcus[:, :, :1])


@pytest.mark.parametrize("level", FIVE)
def test_non_eccentricity_patch_moves_the_expected_number_of_patches(level):
    count = EXPECTED_LEVELS["non_eccentricity_patch"][level - 1]
    # Every pixel holds its own coordinates (R, G: x; B: y), so a moved pixel tells where it was cut:
    # a patch is a group of pixels sharing one displacement. On a 32 x 65536 strip the patches are
    # sparse: two patches with the same displacement within 32 px of each other (which would count
    # as one) are very unlikely, and overlapping patches with different displacements stay apart.
    height, width = 32, 1 << 16
    yy, xx = np.mgrid[0:height, 0:width]
    image = np.dstack([xx & 255, xx >> 8, yy]).astype(np.uint8)
    out = distortions.apply(image, "non_eccentricity_patch", level, seed=level)
    ys, xs = np.nonzero(np.any(out != image, axis=2))
    source = out[ys, xs].astype(np.int64)
    displacement = (ys - source[:, 2]) * 2 * width + (xs - (source[:, 0] | source[:, 1] << 8))
    order = np.lexsort((xs, displacement))
    displacement, xs = displacement[order], xs[order]
    # a new patch starts at a new displacement, or after a gap wider than any patch (the image height)
    starts = np.concatenate([[True], (displacement[1:] != displacement[:-1]) | (np.diff(xs) > height)])
    assert starts.sum() == count


def keys_cubic(t: np.ndarray, a: float = -0.75) -> np.ndarray:
    """Keys' cubic convolution kernel (Keys 1981) with OpenCV's INTER_CUBIC parameter a = -0.75."""
    t = np.abs(t)
    near = (a + 2) * t**3 - (a + 3) * t**2 + 1
    far = a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a
    return np.where(t <= 1, near, np.where(t < 2, far, 0.0))


def jittered_ramp_moments(slope: float, sd: float) -> tuple[float, float, float]:
    """Mean, variance and 4th central moment of out - in on a ramp of ``slope`` grey levels per px,
    sampled by OpenCV's bicubic remap at an N(0, sd^2) displacement: the position is rounded to 1/32 px,
    the 4 taps are Keys' a = -0.75 kernel (which, unlike a = -0.5, bends a ramp between pixels), and
    the value is rounded to an integer."""
    q = np.arange(-int(320 * sd) - 64, int(320 * sd) + 65)  # displacement in 1/32 px, beyond 10 sd
    p = np.diff(stats.norm.cdf((np.append(q, q[-1] + 1) - 0.5) / 32 / sd))
    whole, fraction = np.divmod(q / 32, 1.0)
    sampled = whole + sum(k * keys_cubic(fraction - k) for k in (-1, 0, 1, 2))  # the ramp x, read at x + d
    values = np.rint(slope * sampled)
    mean = float(p @ values)
    return mean, float(p @ (values - mean) ** 2), float(p @ (values - mean) ** 4)


@pytest.mark.parametrize("level", [1, 2, 3])
def test_jitter_small_displacements_on_steep_ramps(level):
    amount = EXPECTED_LEVELS["jitter"][level - 1]
    side, slope = 256, 16  # saw-tooth ramps of 16 grey levels per px, period 16 px
    saw = np.tile(np.arange(side) % 16 * slope, (side, 1))
    image = np.dstack([saw, saw.T, np.full((side, side), 128)]).astype(np.uint8)
    out = distortions.apply(image, "jitter", level, seed=level).astype(np.float64)
    # 3 px away from the teeth's edges: more than 6 sd of the displacement (5 steps of N(0, a^2): sd sqrt(5) a)
    inside = (np.arange(side) % 16 >= 3) & (np.arange(side) % 16 < 13)
    moments = jittered_ramp_moments(slope, np.sqrt(5) * amount)
    for channel, where in ((0, np.broadcast_to(inside[None, :], (side, side))),
                           (1, np.broadcast_to(inside[:, None], (side, side)))):
        difference = (out[:, :, channel] - image[:, :, channel])[where]
        assert_sample_variance(difference, moments)
