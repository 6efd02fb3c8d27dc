"""Score images with a quality model: seeded patches -> per-patch scores -> one score per image.

Protocol (RankIQA's test protocol): an image is scored on ``patches`` crops of ``patch_size`` pixels
at native resolution; the image score is the mean (or median) of the patch scores, higher = better,
on the model's own scale. Images whose short side is below ``patch_size`` are first resized
(aspect kept) so that the short side equals ``patch_size``; images with a side below ``MIN_SIDE``
pixels are rejected as too small.

Reproducibility: patch positions are drawn from a generator seeded by ``seed`` and the image's
size, never its file name, so the same image gets the same patches under any name, any batch size,
and whatever other images it is scored with (the model runs in eval mode). The batch size and the
neighbours only change how patches are grouped into forward passes, which changes a score by float32
rounding alone: at most 9.5e-7 (scores around +-10) for the default model over batch sizes 1..64
(``benchmarks/batch_size_scores.py``). Printed scores are rounded to ``PRINT_DECIMALS`` (csv, json;
4 in the table), so their last digit can still differ. Only the patches are ever converted to float:
a large photo costs its uint8 pixels plus ``batch_size`` float patches.
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence, overload

import numpy as np
from PIL import Image

from rankiqa.atomic import write_text_atomic
from rankiqa.errors import InvalidOption, UnknownName, UserError, check_choice
from rankiqa.imageio import MIN_SIDE, as_rgb, file_problem, fit_to_patch, os_error_reason, read_for_scoring, walk_images  # noqa: F401 (MIN_SIDE re-exported)
from rankiqa.patches import MAX_GRID_CELLS, crop_patches, grid_positions, patch_positions, seeded_patches  # noqa: F401 (re-exported)

_seeded_patches = seeded_patches  # its original (private) name, still imported by scripts and tests
_FROM_MODELS = ("ASSETS", "DEFAULT_WEIGHTS", "forward_patches", "inference_copy", "load_module")


def __getattr__(name: str) -> Any:
    """Names that moved to ``rankiqa.models``, still importable from here; loaded on first use so
    that importing this module (e.g. for ``rankiqa score --help``) does not import torch."""
    if name in _FROM_MODELS:
        from rankiqa import models

        return getattr(models, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

AGGREGATES = ("mean", "median")
PRINT_DECIMALS = 6  # decimals of scores in csv and json output (the table shows 4)
HEATMAP_LONG_SIDE = 768


def score_image(
    module, image_uint8: np.ndarray, patches: int = 30, patch_size: int = 224, seed: int = 0, batch_size: int = 32
) -> tuple[float, float, np.ndarray]:
    """Score one image: (mean, std, per_patch) over ``patches`` seeded crops, higher = better.

    ``module`` maps float (N, 3, P, P) RGB in [0, 1] to (N,) scores and must be in eval mode;
    std is the population standard deviation of the per-patch scores.
    """
    from rankiqa.models import forward_patches

    per_patch = forward_patches(module, seeded_patches(image_uint8, patches, patch_size, seed), batch_size)
    return float(per_patch.mean()), float(per_patch.std()), per_patch


@dataclass
class ImageScore:
    """The result for one input: ``score`` (higher = better) and ``spread`` (std over patches), or ``error``."""

    path: str
    score: float | None = None
    spread: float | None = None
    per_patch: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    error: str | None = None
    mos: float | None = None
    """``score`` on the model's calibrated human scale (KADID-10k MOS 1-5, higher is better), or
    None when the model has no calibrated scale."""

    def as_row(self) -> dict[str, Any]:
        """path, score, spread, patches (and mos when the model is calibrated) as plain values (csv/json)."""
        row = {"path": self.path, "score": self.score, "spread": self.spread, "patches": len(self.per_patch)}
        if self.mos is not None:
            row["mos"] = self.mos
        return row


def read_and_crop(item: Any, index: int, patches: int, patch_size: int, seed: int) -> tuple[ImageScore, np.ndarray]:
    """Decode one input (path, PIL image or uint8 array; ``index`` names a non-path) and cut its
    seeded crops: (ImageScore holding the path, uint8 (patches, P, P, 3) crops), or (ImageScore
    with ``error``, no crops) for an unreadable, invalid or too small input. The CPU half of
    ``Scorer.score_many``; the Ray engine runs it in its decode tasks."""
    is_path = isinstance(item, (str, os.PathLike))
    result = ImageScore(str(item) if is_path else f"<{type(item).__name__} {index}>")
    try:
        image = read_for_scoring(item) if is_path else item
        return result, seeded_patches(image, patches, patch_size, seed)
    except (UserError, ValueError, TypeError) as exc:
        result.error = str(exc).removeprefix(f"{item}: ") if is_path else str(exc)
        return result, np.zeros((0, patch_size, patch_size, 3), np.uint8)


def read_ahead(items: Iterable[Any], read: Callable[[Any, int], Any], workers: int) -> Iterator[Any]:
    """``read(item, index)`` for each item, in order, computed by ``workers`` threads that run at
    most ``workers + 1`` items ahead of the consumer (so at most that many decoded images are in
    memory); ``workers=0`` reads in the calling thread. A reader's unexpected exception is re-raised."""
    if workers == 0:
        yield from (read(item, index) for index, item in enumerate(items))
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(workers, thread_name_prefix="rankiqa-decode")
    try:
        ahead: deque = deque()
        for index, item in enumerate(items):
            ahead.append(pool.submit(read, item, index))
            if len(ahead) > workers:
                yield ahead.popleft().result()
        while ahead:
            yield ahead.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@dataclass
class Scorer:
    """A quality model plus its scoring protocol. ``score`` returns floats, higher = better.

    ``module``: the ``torch.nn.Module`` (kept in eval mode); ``patches``: crops per image;
    ``patch_size``: crop side in pixels; ``aggregate``: "mean" or "median" of patch scores;
    ``batch_size``: patches per forward pass (memory and speed; a score changes only by float rounding,
    ~1e-6, see the module docstring); ``seed``: patch seed;
    ``device``: where the forward passes run ("cpu", "cuda", ...; None: where the module's weights are).
    ``backend`` and ``precision``: how the forward passes run (``rankiqa.backends``: "torch",
    "onnxruntime", "openvino"; "fp32", "bf16", "int8"); ``decode_workers``: threads that decode and
    crop the next images while the model runs (0: none). Scores are computed with
    ``inference_copy(module)``, made once when the scorer is created.
    """

    module: Any
    patches: int = 30
    patch_size: int = 224
    aggregate: str = "mean"
    batch_size: int = 32
    seed: int = 0
    device: str | None = None
    backend: str = "torch"
    precision: str = "fp32"
    decode_workers: int = 2

    def __post_init__(self) -> None:
        from rankiqa.backends import build_forward
        from rankiqa.models import inference_copy

        for name in ("patches", "patch_size", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidOption(f"{name} must be a positive int, got {value!r}", params=(name,))
        if isinstance(self.decode_workers, bool) or not isinstance(self.decode_workers, int) or self.decode_workers < 0:
            raise InvalidOption(f"decode_workers must be an int >= 0, got {self.decode_workers!r}",
                                params=("decode_workers",))
        if self.backend != "torch" and self.device not in (None, "cpu"):
            raise InvalidOption(f"device {self.device!r} needs backend 'torch' (backend {self.backend!r} runs on the "
                                "CPU)", params=("device", "backend"))
        check_choice("aggregate", self.aggregate, AGGREGATES)
        self.module.eval()
        self._fast = inference_copy(self.module)
        if self.device is not None:
            self._fast = self._fast.to(self.device)
        self._forward = build_forward(self._fast, self.backend, self.precision, self.batch_size, self.patch_size)

    @property
    def calibration(self) -> dict[str, Any] | None:
        """The model's map from raw scores to a human MOS scale (``rankiqa.calibration``), or None."""
        return getattr(self.module, "calibration", None)

    def to_mos(self, raw: float | np.ndarray) -> float | np.ndarray:
        """Raw score(s) -> the calibrated scale (KADID-10k MOS 1-5, higher is better); ``UserError``
        when the model has no calibrated scale."""
        if self.calibration is None:
            raise UserError("this model has no calibrated scale (train it with targets: rankiqa train --targets kadid)")
        from rankiqa.calibration import to_mos

        return to_mos(raw, self.calibration)

    @overload
    def score(self, x: list[Any] | tuple[Any, ...], scale: str = "raw") -> list[float]: ...

    @overload
    def score(self, x: str | os.PathLike | Image.Image | np.ndarray, scale: str = "raw") -> float: ...

    def score(self, x: Any, scale: str = "raw") -> float | list[float]:
        """One image's score as a ``float``, or a ``list[float]`` (same order) for a list or tuple.

        An image is a path (``str`` or ``os.PathLike``), a PIL image or a uint8 array ((H, W) gray or
        (H, W, 3) RGB); only a ``list`` or ``tuple`` is taken as several images.
        ``scale="raw"`` (default) returns the model's own score (unbounded, higher = better: only
        differences and order mean something); ``scale="mos"`` returns the calibrated score on
        KADID-10k's 1-5 MOS scale (``UserError`` if the model has no calibrated scale).
        A list is scored in shared forward passes; a bad item raises ``UserError`` naming its index.
        For per-image errors without raising, spreads and per-patch scores, use ``score_many``.
        """
        check_choice("scale", scale, ("raw", "mos"))
        if scale == "mos":
            self.to_mos(0.0)  # fail before scoring when there is no calibrated scale
        single = not isinstance(x, (list, tuple))
        results = list(self.score_many([x] if single else x))
        for index, result in enumerate(results):
            if result.error is not None:
                raise UserError(f"{result.path}: {result.error}" if single else f"item {index} ({result.path}): {result.error}")
        scores = [result.score if scale == "raw" else result.mos for result in results]
        return scores[0] if single else scores

    def per_patch(self, image: Any) -> np.ndarray:
        """The (patches,) float64 scores of one image's seeded crops."""
        return self._forward(seeded_patches(image, self.patches, self.patch_size, self.seed))

    def score_many(self, items: Iterable[Any]) -> Iterator[ImageScore]:
        """One ``ImageScore`` per path, PIL image or uint8 array, in order; unreadable, invalid or
        too small inputs, and images the model gives a non-finite (NaN/inf) patch score, carry an
        ``error`` instead of a score.

        Patches of consecutive images share forward passes of up to ``batch_size`` patches; the
        next images are decoded and cropped by ``decode_workers`` threads while the model runs.
        """
        queue: list[tuple[ImageScore, np.ndarray]] = []
        pending = 0
        read = partial(read_and_crop, patches=self.patches, patch_size=self.patch_size, seed=self.seed)
        for result, crops in read_ahead(items, read, self.decode_workers):
            queue.append((result, crops))
            pending += len(crops)
            if pending >= self.batch_size:
                yield from self._flush(queue)
                queue, pending = [], 0
        yield from self._flush(queue)

    def _flush(self, queue: list[tuple[ImageScore, np.ndarray]]) -> Iterator[ImageScore]:
        if not queue:
            return
        scores = self._forward(np.concatenate([crops for _, crops in queue]))
        start = 0
        for result, crops in queue:
            if result.error is None:
                per_patch = scores[start : start + len(crops)]
                bad = int(np.count_nonzero(~np.isfinite(per_patch)))
                if bad:  # broken weights or an overflow: a reported error for this image, never a NaN score
                    result.error = (f"the model gave a non-finite score ({per_patch[~np.isfinite(per_patch)][0]}) "
                                    f"for {bad} of {len(per_patch)} patches")
                else:
                    result.per_patch = per_patch
                    result.score = self._aggregate(per_patch)
                    result.spread = float(per_patch.std())
                    if self.calibration is not None:
                        result.mos = float(self.to_mos(result.score))
            start += len(crops)
            yield result

    def _aggregate(self, per_patch: np.ndarray) -> float:
        return float(np.median(per_patch) if self.aggregate == "median" else per_patch.mean())

    def grid_scores(self, image: Any, max_cells: int = MAX_GRID_CELLS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(resized image, grid positions, per-cell scores) on a regular patch grid of up to
        ``max_cells`` patches per side, for heat maps."""
        rgb = fit_to_patch(as_rgb(image), self.patch_size)
        positions = grid_positions(rgb.shape, self.patch_size, max_cells)
        return rgb, positions, self._forward(crop_patches(rgb, positions, self.patch_size))


def heatmap_overlay(image: np.ndarray, positions: np.ndarray, scores: np.ndarray, patch_size: int) -> np.ndarray:
    """A uint8 RGB picture: the image with each grid cell tinted by its score and labelled with it.

    Colours run red (lowest score in this image, worst) to green (highest, best); the patches are
    scored at full resolution, the picture is downscaled to a long side of at most 768 px.
    """
    import cv2
    from matplotlib import colormaps

    height, width = image.shape[:2]
    scale = min(1.0, HEATMAP_LONG_SIDE / max(height, width))
    canvas = cv2.resize(image, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
    low, high = float(scores.min()), float(scores.max())
    normalised = (scores - low) / (high - low) if high > low else np.full_like(scores, 0.5)
    colours = (colormaps["RdYlGn"](normalised)[:, :3] * 255).astype(np.float32)
    tint = np.zeros(canvas.shape, np.float32)
    weight = np.zeros(canvas.shape[:2], np.float32)
    cell = max(1, round(patch_size * scale))
    for (row, col), colour in zip(np.round(positions * scale).astype(int), colours):
        tint[row : row + cell, col : col + cell] += colour
        weight[row : row + cell, col : col + cell] += 1
    covered = weight > 0
    tint[covered] /= weight[covered][:, None]
    blended = canvas.astype(np.float32)
    blended[covered] = 0.55 * blended[covered] + 0.45 * tint[covered]
    out = blended.round().astype(np.uint8)
    for (row, col), value in zip(np.round(positions * scale).astype(int), scores):
        centre = (col + cell // 2 - 20, row + cell // 2 + 5)
        cv2.putText(out, f"{value:.2f}", centre, cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(out, f"{value:.2f}", centre, cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def expand_paths(inputs: Sequence[str], recursive: bool = False) -> tuple[list[Path], list[ImageScore]]:
    """Image files from files, folders (image suffixes only; sub-folders with ``recursive``) and globs.

    Returns (files in input order without duplicates, one ``ImageScore`` with an error per input
    that matched nothing or cannot be reached, and per folder that could not be read). An input
    that cannot be reached (e.g. inside a folder without permission) is such an error, never the
    end of the batch.
    """
    files: dict[Path, None] = {}
    missing: list[ImageScore] = []
    for item in inputs:
        path = Path(item)
        found: list[Path] = []
        try:
            if path.is_dir():
                found, problems = walk_images(path, recursive=recursive, hidden=True)
                missing += [ImageScore(str(folder), error=reason) for folder, reason in problems]
                if not found and not problems:
                    missing.append(ImageScore(item, error="folder holds no image files" + ("" if recursive else " (try --recursive)")))
            elif path.exists():
                found = [path]
            elif glob.has_magic(item):
                found = sorted(Path(p) for p in glob.glob(item, recursive=True) if Path(p).is_file())
                if not found:
                    missing.append(ImageScore(item, error="no file matches this pattern"))
            else:
                missing.append(ImageScore(item, error=file_problem(path) or "file not found"))
        except OSError as exc:  # e.g. permission denied on a parent folder
            missing.append(ImageScore(item, error=os_error_reason(path, exc)))
        files.update(dict.fromkeys(found))
    return list(files), missing


def load_scorer(name_or_checkpoint: str | os.PathLike = "default", **options: Any) -> Scorer:
    """A ``Scorer`` (the model plus its scoring protocol; ``.module`` is the ``torch.nn.Module``) for
    ``"default"`` (the bundled model), a checkpoint path, or a backbone name, resolved by
    ``rankiqa.models.load_module``.

    A backbone name (see ``rankiqa.models.list_backbones()``) gives an untrained model (random
    score head); append ``:pretrained`` for an ImageNet-initialised backbone, e.g.
    ``"efficientnet_lite0:pretrained"``. ``options`` are ``Scorer`` fields (patches, patch_size,
    aggregate, batch_size, seed, device, backend, precision, decode_workers), e.g.
    ``load_scorer("default", backend="openvino", precision="bf16")``.
    """
    from rankiqa.models import load_module

    return Scorer(load_module(name_or_checkpoint), **options)


load_model = load_scorer
"""The original name of ``load_scorer`` (it returns a ``Scorer``, not a ``torch.nn.Module``)."""


def format_results(results: Sequence[ImageScore], fmt: str = "table") -> str:
    """Scored images as ``table`` (aligned text, 4 decimals), ``csv`` (path,score,spread,patches[,mos])
    or ``json`` (a list); csv and json scores are rounded to ``PRINT_DECIMALS`` decimals. ``mos`` (the
    calibrated KADID-10k 1-5 scale) is there when the model has a calibrated scale."""
    rows = [{k: round(v, PRINT_DECIMALS) if isinstance(v, float) else v for k, v in result.as_row().items()}
            for result in results]
    if fmt == "json":
        import json

        # strict JSON: a non-finite number (never a score: see Scorer) would be written as null
        finite = [{k: None if isinstance(v, float) and not np.isfinite(v) else v for k, v in row.items()} for row in rows]
        return json.dumps(finite, indent=2, allow_nan=False)
    if fmt == "csv":
        from rankiqa.csvio import csv_text

        calibrated = any("mos" in row for row in rows)
        columns = ["path", "score", "spread", "patches"] + (["mos"] if calibrated else [])
        return csv_text(columns, ({**row, "score": f"{row['score']:.{PRINT_DECIMALS}f}",
                                   "spread": f"{row['spread']:.{PRINT_DECIMALS}f}",
                                   **({"mos": f"{row['mos']:.4f}"} if calibrated else {})} for row in rows)).rstrip("\n")
    if fmt != "table":
        raise UnknownName(f"fmt must be table, csv or json, got {fmt!r}", params=("fmt",))
    width = max([4, *(len(row["path"]) for row in rows)])
    calibrated = any("mos" in row for row in rows)
    lines = [f"{'path'.ljust(width)}  {'score':>10}  {'spread':>8}" + (f"  {'mos (1-5)':>9}" if calibrated else "")]
    lines += [f"{row['path'].ljust(width)}  {row['score']:>10.4f}  {row['spread']:>8.4f}"
              + (f"  {row['mos']:>9.2f}" if calibrated else "") for row in rows]
    return "\n".join(lines)


def write_heatmap(scorer: Scorer, path: str | os.PathLike, out_dir: str | os.PathLike, taken: set[str]) -> Path:
    """Write ``<out_dir>/<stem>.heatmap.png`` (``-2``, ``-3``... when the stem is in ``taken``) for one file."""
    from rankiqa.imageio import write_image

    stem = Path(path).stem
    name, counter = f"{stem}.heatmap.png", 1
    while name in taken:
        counter += 1
        name = f"{stem}-{counter}.heatmap.png"
    taken.add(name)
    rgb, positions, scores = scorer.grid_scores(read_for_scoring(path))
    target = Path(out_dir) / name
    write_image(target, heatmap_overlay(rgb, positions, scores, scorer.patch_size))
    return target


def score_paths(
    module,
    paths: Sequence[str | os.PathLike],
    patches: int = 30,
    patch_size: int = 224,
    seed: int = 0,
    device: str | None = None,
    desc: str | None = None,
    log: Callable[[str], None] | None = None,
) -> np.ndarray:
    """Mean patch score of each image file (float64, higher = better), the ``Scorer`` protocol run
    on ``device`` (None: where the module is); NaN for an unreadable or too small file, reported as
    one line ``skipped PATH: REASON`` through ``log`` (a ``RuntimeWarning`` without it). ``desc``
    labels a progress bar (none without it). Puts ``module`` in eval mode.
    """
    import warnings

    from tqdm import tqdm

    if log is None:
        def log(message: str) -> None:
            warnings.warn(message, RuntimeWarning, stacklevel=3)

    scorer = Scorer(module, patches=patches, patch_size=patch_size, seed=seed, device=device)
    scores = np.full(len(paths), np.nan)
    results = tqdm(scorer.score_many(paths), total=len(paths), desc=desc, unit="img", disable=desc is None)
    for index, result in enumerate(results):
        if result.error is None:
            scores[index] = result.score
        else:
            log(f"skipped {result.path}: {result.error}")
    return scores


def report_scores(
    scorer: Scorer,
    inputs: Sequence[str],
    *,
    recursive: bool = False,
    fmt: str = "table",
    heatmap_dir: str | os.PathLike | None = None,
    output: str | os.PathLike | None = None,
    log=print,
    report: str | os.PathLike | None = None,
) -> str:
    """Score files/folders/globs, report skipped ones through ``log``, return or write the formatted rows.

    With ``output`` the rows are written there atomically and "" is returned; with ``report`` an HTML
    report is written too (``rankiqa.report.write_score_report``). Raises ``UserError`` when no image
    could be scored.
    """
    from tqdm import tqdm

    files, skipped = expand_paths(inputs, recursive=recursive)
    scored: list[ImageScore] = []
    taken: set[str] = set()
    show_bar = len(files) > 1 and any(not Path(item).is_file() for item in inputs)
    for result in tqdm(scorer.score_many(files), total=len(files), unit="img", disable=None if show_bar else True, leave=False):
        if result.error is None:
            scored.append(result)
            if heatmap_dir is not None:
                write_heatmap(scorer, result.path, heatmap_dir, taken)
        else:
            skipped.append(result)
    for result in skipped:
        log(f"skipped {result.path}: {result.error}")
    if not scored:
        raise UserError(f"no image could be scored ({len(skipped)} input(s) skipped, reasons above)")
    if skipped:
        log(f"scored {len(scored)} image(s), skipped {len(skipped)}")
    if report is not None:
        from rankiqa.report import write_score_report

        write_score_report(report, scorer, scored, skipped, log=log)
    text = format_results(scored, fmt)
    if output is None:
        return text
    write_text_atomic(output, text + "\n")
    log(f"wrote {len(scored)} row(s) to {output}")
    return ""
