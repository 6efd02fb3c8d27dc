"""Ranked sets for rank pre-training: a torch Dataset of (pristine, level 1..5) patches, and splits.

>>> from rankiqa.data import RankedSets, split_references
>>> from rankiqa.demo import BUNDLED_IMAGES                   # 6 photos; a generated OUT_DIR works too
>>> ds = RankedSets(BUNDLED_IMAGES, distortions=["gaussian_blur"], patch_size=64, seed=0)
>>> len(ds), ds[0]["images"].shape, ds[0]["levels"].tolist()  # (pristine, levels 1..5) x (3, P, P)
(6, torch.Size([6, 3, 64, 64]), [0, 1, 2, 3, 4, 5])
>>> train_refs, val_refs = split_references(ds.references, 0.5, seed=0)
>>> len(train_refs), len(val_refs), set(train_refs) & set(val_refs)
(3, 3, set())
>>> train = RankedSets(BUNDLED_IMAGES, distortions=["gaussian_blur"], patch_size=64, references=train_refs)
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from rankiqa.errors import InvalidOption, UnknownName, UserError
from rankiqa.imageio import DEFAULT_MAX_PIXELS, MIN_SIDE, fit_to_patch, header_problem, load_pristine, read_rgb
from rankiqa.layout import LEVELS, distortion_seed, read_manifest, scan_images
from rankiqa.patches import patch_positions
from rankiqa.seeding import stable_seed

CROP_MARGIN = 16


class RankedSets(Dataset):
    """Ranked distortion sets: one item per (reference, distortion) pair.

    ``source`` is either a generated OUT_DIR (holding ``manifest.csv``, see ``rankiqa generate``)
    or a folder of pristine photos, distorted on the fly in the loader worker (nothing written).
    ``ds[i]`` is a dict: ``images`` float32 (6, 3, P, P) in [0, 1] (index 0 = pristine, k = level k,
    all cropped at the same location, P = ``patch_size``), ``levels`` int64 (6,) = 0..5
    (0 = pristine = best, higher = worse), ``reference_id`` (index into ``references``),
    ``distortion_id`` (index into ``distortion_names``). Photos whose short side is below P are
    first resized up (``rankiqa.imageio.fit_to_patch``, bicubic) so that it equals P.

    Determinism: the crop location derives from (seed, epoch, reference, distortion) with
    ``stable_seed``, so items do not depend on the worker count or order; ``set_epoch(e)`` moves
    the crops. OpenCV is set to one thread inside each loader worker.

    On the fly, each level is made by distorting the full pristine photo (downscaled to
    ``max_side``) with the same seed as ``rankiqa generate --seed``: the sets EQUAL those of a
    generated (png/bmp) OUT_DIR with the same seed, types and ``--max-side``. ``distort_crops=True``
    is faster on large photos: it distorts only the patch plus a 16 px margin, so its sets differ
    from generated ones (global, image-wide distortions see only the crop).

    ``distortions``: names to use (None = all in the manifest, or every single type on the fly;
    composed presets only by name).
    ``references``: optional subset of ``references`` (e.g. from ``split_references``).
    ``max_pixels``: on the fly, larger photos are refused as decompression bombs.
    On the fly, files that are not images, too small or too large (judged from their header) are
    left out and listed in ``skipped`` as (path, reason). A file that passes that check but fails to
    decode when an item is read (truncated data, or a generated image deleted since) does not stop
    training: the item becomes the same type's set of the next readable reference (its
    ``reference_id``), the file is reported once per loader process on stderr, and with no worker
    processes it is also added to ``skipped``. Nothing raised in a loader worker needs re-raising.
    """

    def __init__(
        self,
        source: str | os.PathLike,
        *,
        distortions: Sequence[str] | None = None,
        patch_size: int = 224,
        seed: int = 0,
        references: Iterable[str] | None = None,
        epoch: int = 0,
        max_side: int | None = None,
        distort_crops: bool = False,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size < MIN_SIDE:
            raise InvalidOption(f"patch_size must be an int >= {MIN_SIDE} pixels, got {patch_size!r}", params=("patch_size",))
        self.source = Path(source)
        self.patch_size = patch_size
        self.seed = int(seed)
        self.epoch = int(epoch)
        self.max_side = max_side
        self.max_pixels = max_pixels
        self.distort_crops = distort_crops
        self.generated = (self.source / "manifest.csv").is_file()
        self.skipped: list[tuple[str, str]] = []
        self._unreadable: set[tuple[str, str]] = set()
        self._worker_ready = False
        if self.generated:
            if max_side is not None or distort_crops:
                raise InvalidOption("max_side and distort_crops apply to a folder of photos, not to a generated OUT_DIR",
                                    params=("max_side", "distort_crops"))
            available, self._paths = read_manifest(self.source / "manifest.csv")
            all_references = sorted({reference for reference, _ in self._paths})
        else:
            import distortions as registry

            candidates, unlisted = scan_images(self.source)
            reasons = {ref: header_problem(self.source / ref, max_pixels=max_pixels) for ref in candidates}
            self.skipped = [(f"{folder}/", reason) for folder, reason in unlisted]
            self.skipped += [(ref, reason) for ref, reason in reasons.items() if reason]
            all_references = [ref for ref, reason in reasons.items() if not reason]
            available = registry.names()
            distortions = registry.names(composed=False) if distortions is None else distortions
            self._paths = {}
        self.distortion_names = _select(available, distortions, "distortion", self.source)
        self.references = all_references if references is None else _select(
            all_references, sorted(set(references)), "reference", self.source
        )
        if not self.references:
            raise UserError(f"{self.source}: no reference image to build ranked sets from")

    def __len__(self) -> int:
        return len(self.references) * len(self.distortion_names)

    def upscale_warning(self, sample: int = 32, factor: float = 2.0) -> str | None:
        """Why the patch is much larger than the photos (one line), else None: checks the headers of
        up to ``sample`` references (evenly spaced) and warns when one must be upscaled by more than
        ``factor`` (per side) to fit a patch, which makes every step slow and every patch blurry."""
        from PIL import Image

        if not self.references:
            return None
        step = max(1, len(self.references) // sample)
        sides = []
        for reference in self.references[::step][:sample]:
            path = self.source / (self._paths[reference, self.distortion_names[0]][0] if self.generated else reference)
            try:
                with Image.open(path) as im:
                    width, height = im.size
            except Exception:  # unreadable files are reported when they are read
                continue
            scale = min(1.0, self.max_side / max(width, height)) if self.max_side else 1.0
            sides.append(max(1, round(min(width, height) * scale)))
        if not sides or self.patch_size <= factor * min(sides):
            return None
        small = sum(side * factor < self.patch_size for side in sides)
        return (f"{small} of {len(sides)} photos checked in {self.source} are much "
                f"smaller (short side down to {min(sides)} px) and are upscaled to {self.patch_size} px before "
                f"cropping: steps are slow and patches blurry; use a patch size of at most {min(sides)} px")

    def set_epoch(self, epoch: int) -> None:
        """Use the crop locations of ``epoch`` (deterministic for a given seed)."""
        self.epoch = int(epoch)

    def __getitem__(self, index: int) -> dict[str, object]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} ranked sets")
        self._prepare_worker()
        first_reference_id, distortion_id = divmod(index, len(self.distortion_names))
        distortion = self.distortion_names[distortion_id]
        for offset in range(len(self.references)):
            reference_id = (first_reference_id + offset) % len(self.references)
            patches = self._readable_patches(self.references[reference_id], distortion)
            if patches is not None:
                stacked = torch.from_numpy(np.stack(patches)).permute(0, 3, 1, 2).float().div_(255.0).contiguous()
                return {
                    "images": stacked,
                    "levels": torch.tensor(LEVELS, dtype=torch.int64),
                    "reference_id": reference_id,
                    "distortion_id": distortion_id,
                }
        raise UserError(f"{self.source}: no readable {distortion} set left (every reference failed to decode)")

    def _readable_patches(self, reference: str, distortion: str) -> list[np.ndarray] | None:
        """The set's 6 patches, or None when one of its files fails to decode (reported once)."""
        key = (reference, distortion if self.generated else "")  # on the fly, the photo serves every type
        if key in self._unreadable:
            return None
        try:
            return self._patches(reference, distortion)
        except UserError as exc:  # UnusableImage / read_rgb: a file that passed the header check at start-up
            self._unreadable.add(key)
            self.skipped.append((reference, str(exc)))
            from tqdm import tqdm

            tqdm.write(f"skipped {reference}{f' / {distortion}' if self.generated else ''}: {exc}; "
                       "its sets are replaced by the next reference's", file=sys.stderr)
            return None

    def _patches(self, reference: str, distortion: str) -> list[np.ndarray]:
        seed = stable_seed(self.seed, "crop", self.epoch, reference, distortion)
        if self.distort_crops:
            return self._distorted_crop(reference, distortion, seed)
        if self.generated:
            images = [read_rgb(self.source / self._paths[reference, distortion][level]) for level in LEVELS]
        else:
            pristine = self._load(reference)
            images = [pristine, *_levels(pristine, reference, distortion, self.seed)]
        return _crop_all([fit_to_patch(image, self.patch_size) for image in images], self.patch_size, seed)

    def _prepare_worker(self) -> None:
        if not self._worker_ready and get_worker_info() is not None:
            import cv2

            cv2.setNumThreads(1)
            self._worker_ready = True

    def _load(self, reference: str) -> np.ndarray:
        return load_pristine(self.source / reference, max_side=self.max_side, max_pixels=self.max_pixels).image

    def _distorted_crop(self, reference: str, distortion: str, seed: int) -> list[np.ndarray]:
        """Crop the pristine with a margin, distort only that window, then cut the patch out of it."""
        size = self.patch_size
        pristine = fit_to_patch(self._load(reference), size)
        height, width = pristine.shape[:2]
        (top, left), = patch_positions(pristine.shape, 1, size, seed)
        window_top, window_left = max(0, top - CROP_MARGIN), max(0, left - CROP_MARGIN)
        window = pristine[window_top : min(height, top + size + CROP_MARGIN), window_left : min(width, left + size + CROP_MARGIN)]
        images = [window, *_levels(window, reference, distortion, self.seed)]
        row, col = top - window_top, left - window_left
        return [image[row : row + size, col : col + size] for image in images]


def _levels(image: np.ndarray, reference: str, distortion: str, seed: int) -> list[np.ndarray]:
    import distortions

    return distortions.apply_levels(image, distortion, seed=distortion_seed(seed, reference, distortion))


def _select(available: Sequence[str], wanted: Sequence[str] | None, what: str, source: Path) -> list[str]:
    if wanted is None:
        return list(available)
    unknown = [name for name in wanted if name not in set(available)]
    if unknown:
        raise UnknownName(f"{source}: unknown {what}(s) {', '.join(map(repr, unknown[:5]))}")
    return list(wanted)


def _crop_all(images: list[np.ndarray], size: int, seed: int) -> list[np.ndarray]:
    """The same (size x size) window of every image, at the location ``patch_positions`` draws from ``seed``."""
    (top, left), = patch_positions(images[0].shape, 1, size, seed)
    return [image[top : top + size, left : left + size] for image in images]


def split_references(
    references: Iterable[str], val_fraction: float, seed: int
) -> tuple[list[str], list[str]]:
    """Split distinct references into (train, val) so that no reference is in both.

    ``val_fraction`` in [0, 1): the share held out (rounded, at least one when it is above 0 and
    there are two or more references). Depends only on the set of references and the seed, not on
    their order; both lists are sorted.
    """
    if not 0 <= val_fraction < 1:
        raise InvalidOption(f"val_fraction must be in [0, 1), got {val_fraction}", params=("val_fraction",))
    unique = sorted(set(references))
    count = round(len(unique) * val_fraction)
    if val_fraction > 0 and len(unique) > 1:
        count = min(max(count, 1), len(unique) - 1)
    order = np.random.default_rng(seed).permutation(len(unique))
    held_out = {unique[i] for i in order[:count]}
    return [ref for ref in unique if ref not in held_out], sorted(held_out)

