"""The unit of work of ``rankiqa generate``: one reference photo's images and its progress marker.

``process_reference`` runs in the driver, in a pool process or on a Ray worker
(``rankiqa.ray_engine``) and writes the same bytes wherever it runs; ``finished_record`` tells the
driver whether a reference is done. Markers (``OUT_DIR/.progress/``) record the source file's stamp
and content hash, so a photo replaced since is redone, never mixed with images of the old one.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rankiqa.atomic import write_text_atomic
from rankiqa.imageio import UnusableImage, load_pristine, write_image
from rankiqa.layout import distortion_seed, output_path, reference_folder

if TYPE_CHECKING:
    from rankiqa.generate import Settings

JPEG_QUALITY = 95
PNG_COMPRESS_LEVEL = 1  # zlib level: lossless either way; 1 writes ~3x faster than 6 for ~30% more bytes
PROGRESS_DIR = ".progress"


@dataclass(frozen=True)
class Task:
    """One reference to process: its source file, the OUT_DIR, its name there and the run's settings."""

    source: str
    out_dir: str
    reference: str
    settings: Settings


@dataclass(frozen=True)
class Outcome:
    """What processing one reference did: images ``written``, notes on the photo, the reason it was
    ``skipped`` (unusable), or an ``error`` (no marker written, so a re-run retries it)."""

    reference: str
    written: int
    notes: tuple[str, ...]
    skipped: str | None
    error: str | None = None


def row_key(row: dict[str, Any]) -> tuple[str, str, int]:
    """The order of manifest rows: (reference, distortion, level)."""
    return (str(row["reference"]), str(row["distortion"]), int(row["level"]))


def marker_path(out_dir: Path, reference: str) -> Path:
    """The progress marker of ``reference`` (a hash of its name: any name fits a file name)."""
    name = hashlib.blake2b(reference.encode("utf-8"), digest_size=16).hexdigest()
    return out_dir / PROGRESS_DIR / f"{name}.json"


def remove_temp_files(folder: Path, stem: str) -> None:
    """Delete the temporary files an interrupted atomic write of ``folder/stem.*`` left behind."""
    for stale in folder.glob(f".{stem}.*.tmp"):
        stale.unlink(missing_ok=True)


_QUICK_STAMP = ("size", "mtime_ns", "ctime_ns", "inode")


def _file_digest(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _source_stamp(path: Path, digest: bool = True) -> dict[str, Any] | None:
    """The source file's stamp (size, mtime, ctime, inode) and, with ``digest``, its content hash;
    None when the file cannot be reached (dangling link, loop, unreachable folder)."""
    try:
        info = path.stat()
    except OSError:
        return None
    stamp: dict[str, Any] = {"size": info.st_size, "mtime_ns": info.st_mtime_ns, "ctime_ns": info.st_ctime_ns,
                             "inode": info.st_ino}
    if digest and stat.S_ISREG(info.st_mode):  # never open a pipe or a device: it could block
        try:
            stamp["blake2b"] = _file_digest(path)
        except OSError:  # unreadable: the decoder will say why and the reference is skipped
            pass
    return stamp


def _same_source(recorded: dict[str, Any] | None, path: Path) -> bool:
    """Whether ``path`` still holds the file ``recorded`` describes: the same stamp (the quick check,
    like rsync's), else the same content hash (a copied or moved SRC_DIR), else no."""
    current = _source_stamp(path, digest=False)
    if not isinstance(recorded, dict) or current is None:
        return recorded is None and current is None  # still unreachable: its skip stands
    if all(recorded.get(key) == current[key] for key in _QUICK_STAMP if key in recorded):
        return True
    if recorded.get("blake2b") and recorded.get("size") == current["size"]:
        try:
            return _file_digest(path) == recorded["blake2b"]
        except OSError:
            return False
    return False


def _read_marker(marker: Path) -> dict | None:
    try:
        record = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _save(path: Path, image, image_format: str) -> None:
    """Write one generated image atomically in ``image_format`` (png, bmp or jpg)."""
    options = {"png": {"compress_level": PNG_COMPRESS_LEVEL}, "jpg": {"quality": JPEG_QUALITY, "subsampling": 0}}
    write_image(path, image, **options.get(image_format, {}))


def process_reference(task: Task) -> Outcome:
    """Write one reference's pristine copy and levels, then its completion marker (all atomic).

    Images already in the reference's folder are kept only when its marker (partial or finished)
    records the same source content; otherwise the folder is emptied and a partial marker with the
    current source's stamp is written before the first image.
    """
    import distortions

    out_dir = Path(task.out_dir)
    settings = task.settings
    reference = task.reference
    source = Path(task.source)
    stamp = _source_stamp(source)
    marker = marker_path(out_dir, reference)
    folder = out_dir / reference_folder(reference)
    remove_temp_files(marker.parent, marker.stem)
    previous = _read_marker(marker)
    try:
        pristine = load_pristine(source, max_side=settings.max_side, max_pixels=settings.max_pixels)
    except UnusableImage as exc:
        shutil.rmtree(folder, ignore_errors=True)
        write_text_atomic(marker, json.dumps({"reference": reference, "source": stamp, "skipped": exc.reason}))
        return Outcome(reference, 0, (), exc.reason)
    same_source = (previous is not None and previous.get("reference") == reference and not previous.get("skipped")
                   and isinstance(previous.get("source"), dict) and stamp is not None
                   and previous["source"].get("blake2b") == stamp.get("blake2b") is not None)
    if not same_source:
        shutil.rmtree(folder, ignore_errors=True)
        write_text_atomic(marker, json.dumps({"reference": reference, "source": stamp, "partial": True}))
    remove_temp_files(folder, "*")
    image = pristine.image
    height, width = image.shape[:2]
    fmt = settings.image_format
    written = 0
    rows = [dict(path=output_path(reference, "", 0, fmt), reference=reference, distortion="", level=0,
                 seed=settings.seed, width=width, height=height)]
    if not (out_dir / rows[0]["path"]).exists():
        _save(out_dir / rows[0]["path"], image, fmt)
        written += 1
    for name in settings.distortions:
        seed = distortion_seed(settings.seed, reference, name)
        paths = [output_path(reference, name, level, fmt) for level in range(1, distortions.NUM_LEVELS + 1)]
        rows += [dict(path=path, reference=reference, distortion=name, level=level, seed=seed,
                      width=width, height=height) for level, path in enumerate(paths, start=1)]
        if all((out_dir / path).exists() for path in paths):
            continue
        try:
            levels = distortions.apply_levels(image, name, seed=seed)
        except Exception as exc:  # one failing type must not stop a long batch; no marker, so a re-run retries
            return Outcome(reference, written, pristine.notes, None, f"{name} failed ({exc.__class__.__name__}: {exc})")
        for path, level_image in zip(paths, levels):
            _save(out_dir / path, level_image, fmt)
            written += 1
    rows.sort(key=row_key)
    record = {"reference": reference, "source": stamp, "skipped": None, "notes": list(pristine.notes), "rows": rows}
    write_text_atomic(marker, json.dumps(record, ensure_ascii=False))
    return Outcome(reference, written, pristine.notes, None)


def finished_record(out_dir: Path, src_dir: Path, reference: str) -> dict | None:
    """The reference's completion marker if it is valid (finished, same source file, every listed
    image present)."""
    record = _read_marker(marker_path(out_dir, reference))
    if record is None or record.get("partial") or record.get("reference") != reference or "skipped" not in record:
        return None
    if not _same_source(record.get("source"), src_dir / reference):
        return None
    if not record["skipped"] and not all((out_dir / row["path"]).exists() for row in record.get("rows", [])):
        return None
    return record
