"""The layout of ranked sets, shared by the writer (``rankiqa.generate``) and the reader (``rankiqa.data``).

Which photos of a SRC_DIR are references (``scan_images``), where each generated image goes
(``output_path``), which seed rebuilds a set (``distortion_seed``) and what ``manifest.csv`` holds
(``MANIFEST_COLUMNS``, read back by ``read_manifest``). The whole OUT_DIR is described in
``rankiqa.generate``.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

from rankiqa.errors import UserError
from rankiqa.imageio import os_error_reason, walk_images
from rankiqa.seeding import stable_seed

LEVELS = (0, 1, 2, 3, 4, 5)
"""Levels of a ranked set: 0 = the pristine photo (best), 1..5 = mildest..strongest distortion."""
MANIFEST_COLUMNS = ("path", "reference", "distortion", "level", "seed", "width", "height")
SKIPPED_COLUMNS = ("path", "reason")


def distortion_seed(seed: int, reference: str, distortion: str) -> int:
    """The seed given to ``distortions.apply_levels`` for one (reference, distortion) set."""
    return stable_seed(seed, reference, distortion)


def find_images(src_dir: str | os.PathLike, exclude: str | os.PathLike | None = None) -> list[str]:
    """Image files under ``src_dir`` (by extension, hidden names ignored), as sorted posix paths
    relative to ``src_dir``; files under ``exclude`` (e.g. an OUT_DIR inside SRC_DIR) are left out.
    See ``scan_images`` for the folders that could not be listed."""
    return scan_images(src_dir, exclude)[0]


def scan_images(
    src_dir: str | os.PathLike, exclude: str | os.PathLike | None = None
) -> tuple[list[str], list[tuple[str, str]]]:
    """(``find_images``'s list, problems): each problem is (folder relative to ``src_dir``, reason)
    for a sub-folder that could not be listed (permission denied, symbolic link loop...) or a
    symbolic link to a folder (not followed), so that no part of SRC_DIR is left out silently.
    Links to files are listed like files; a dangling one is refused when it is read. The listing
    itself is ``rankiqa.imageio.walk_images``'s."""
    root = Path(src_dir)
    try:
        if not root.exists():
            raise UserError(f"src_dir {root}: folder not found", params=("src_dir",))
        if not root.is_dir():
            raise UserError(f"src_dir {root}: is a file, expected a folder of photos", params=("src_dir",))
    except OSError as exc:
        raise UserError(f"src_dir {root}: {os_error_reason(root, exc)}", params=("src_dir",)) from None
    found, problems = walk_images(root, exclude=exclude)
    found = [path.relative_to(root).as_posix() for path in found]
    problems = [(path.relative_to(root).as_posix(), reason) for path, reason in problems]
    if not found and problems and problems[0][0] == ".":
        raise UserError(f"src_dir {root}: {problems[0][1]}", params=("src_dir",))
    return sorted(found), sorted(problems)


def reference_folder(reference: str) -> str:
    """The output folder of one reference, relative to OUT_DIR."""
    return f"images/{reference}"


def output_path(reference: str, distortion: str, level: int, image_format: str) -> str:
    """The path (relative to OUT_DIR) of one generated image; level 0 is the pristine copy."""
    name = "pristine" if level == 0 else f"{distortion}_{level}"
    return f"{reference_folder(reference)}/{name}.{image_format}"


def read_manifest(path: Path) -> tuple[list[str], dict[tuple[str, str], dict[int, str]]]:
    """Distortion names (in first-seen order) and, per (reference, distortion), level -> image path."""
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    missing = {"path", "reference", "distortion", "level"} - set(rows[0] if rows else {})
    if missing:
        raise UserError(f"{path}: not a rankiqa manifest (missing columns {', '.join(sorted(missing))})")
    pristine = {row["reference"]: row["path"] for row in rows if row["level"] == "0"}
    sets: dict[tuple[str, str], dict[int, str]] = {}
    for row in rows:
        if row["level"] != "0":
            sets.setdefault((row["reference"], row["distortion"]), {})[int(row["level"])] = row["path"]
    for (reference, distortion), levels in sets.items():
        if reference not in pristine or sorted(levels) != list(LEVELS[1:]):
            raise UserError(f"{path}: incomplete ranked set for {reference} / {distortion}")
        levels[0] = pristine[reference]
    names = list(dict.fromkeys(distortion for _, distortion in sets))
    return names, sets
