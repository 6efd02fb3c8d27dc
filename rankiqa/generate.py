"""Generate ranked datasets: every pristine photo x distortion type -> the pristine copy and 5 levels.

>>> from rankiqa.generate import generate
>>> summary = generate("photos/", "ranked/", distortion_names=["gaussian_blur"], seed=0)  # doctest: +SKIP

Layout of ``OUT_DIR``:

- ``images/<reference>/pristine.png`` and ``images/<reference>/<distortion>_<level>.png``, where
  ``<reference>`` is the photo's path relative to ``SRC_DIR`` (extension kept, so ``a.jpg`` and
  ``a.png`` never collide);
- ``manifest.csv``: ``path`` (relative to OUT_DIR), ``reference`` (relative to SRC_DIR),
  ``distortion`` (empty for the pristine copy), ``level`` (0 = pristine, 1..5 = mildest..strongest),
  ``seed`` (for a distorted row, the seed that rebuilds it:
  ``distortions.apply(pristine, distortion, level, seed)``; for the pristine row, the run's seed),
  ``width``, ``height`` (pixels). Rows are sorted by (reference, distortion, level);
- ``skipped.csv``: ``path``, ``reason`` for every source file that could not be used;
- ``generate.json``: the options that shape the output (a re-run with other options is refused);
- ``.progress/``: one marker per reference, so a re-run finishes only what is missing. A marker
  records the source file's stamp and content hash (BLAKE2b) when its reference is started and when
  it is finished: a source replaced since (same name, other content) is redone from scratch, never
  mixed with images of the old one;
- ``.lock`` (and ``.lock-shard-K-of-N``): OS file locks, so a second run on the same OUT_DIR (or
  shard) stops at once with the first one's pid; released by the kernel when a run ends or is killed.

Determinism: seeds derive from (seed, reference, distortion) with ``stable_seed`` (BLAKE2b), each
reference is processed alone, and rows are sorted, so the images and the manifest are byte-identical
whatever the number of workers, shards or interruptions.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import multiprocessing
import os
import re
import shutil
import signal
import stat
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from rankiqa.atomic import write_text_atomic
from rankiqa.errors import InvalidOption, UnknownName, UserError
from rankiqa.folderlock import folder_lock
from rankiqa.imageio import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    MIN_PRISTINE_SIDE,
    UnusableImage,
    load_pristine,
    os_error_reason,
    walk_images,
    write_image,
)
from rankiqa.seeding import stable_seed

OUTPUT_FORMATS = ("png", "bmp", "jpg")
ENGINES = ("local", "ray")
JPEG_QUALITY = 95
PNG_COMPRESS_LEVEL = 1  # zlib level: lossless either way; 1 writes ~3x faster than 6 for ~30% more bytes
MANIFEST_COLUMNS = ("path", "reference", "distortion", "level", "seed", "width", "height")
SKIPPED_COLUMNS = ("path", "reason")
PROGRESS_DIR = ".progress"
SETTINGS_FILE = "generate.json"
_SHARD_MANIFEST = re.compile(r"^manifest-shard-(\d+)-of-(\d+)\.csv$")
# Testing hook: with this variable set to N, the run SIGKILLs itself once N references are finished,
# so a test can check that a re-run after `kill -9` equals a clean run without racing a timer.
KILL_AFTER_REFERENCES_ENV = "RANKIQA_TEST_KILL_AFTER_REFERENCES"
# Testing hook: with this variable set to N, a single-process run SIGKILLs itself once it has written
# N images, i.e. partway through a reference, to test resuming a partial reference.
KILL_AFTER_IMAGES_ENV = "RANKIQA_TEST_KILL_AFTER_IMAGES"
_images_saved = 0

Log = Callable[[str], None]


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
    Links to files are listed like files; a dangling one is refused when it is read."""
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


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> (K, N) with 1 <= K <= N."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise InvalidOption(f"shard {text!r}: expected K/N with 1 <= K <= N, e.g. 2/4", params=("shard",))
    return int(match[1]), int(match[2])


def shard_references(references: list[str], shard: tuple[int, int]) -> list[str]:
    """The references shard K of N processes: every N-th one of the sorted list, starting at K-1."""
    index, count = shard
    return references[index - 1 :: count]


def reference_folder(reference: str) -> str:
    """The output folder of one reference, relative to OUT_DIR."""
    return f"images/{reference}"


def output_path(reference: str, distortion: str, level: int, image_format: str) -> str:
    """The path (relative to OUT_DIR) of one generated image; level 0 is the pristine copy."""
    name = "pristine" if level == 0 else f"{distortion}_{level}"
    return f"{reference_folder(reference)}/{name}.{image_format}"


@dataclass(frozen=True)
class Settings:
    """The options that determine the generated files; stored in OUT_DIR/generate.json."""

    seed: int
    distortions: tuple[str, ...]
    max_side: int | None
    image_format: str
    max_pixels: int

    def to_json(self) -> str:
        payload = {**self.__dict__, "distortions": list(self.distortions)}
        return json.dumps(payload, indent=1, sort_keys=True) + "\n"


@dataclass(frozen=True)
class _Task:
    source: str
    out_dir: str
    reference: str
    settings: Settings


@dataclass(frozen=True)
class _Outcome:
    reference: str
    written: int
    notes: tuple[str, ...]
    skipped: str | None
    error: str | None = None


@dataclass(frozen=True)
class GenerateSummary:
    """What a run did: ``references`` usable photos in this run's shard, ``images_written`` in this
    run (a resumed run writes only what was missing), ``images_total`` rows in its manifest,
    ``skipped`` unusable source files, ``seconds`` of wall time."""

    references: int
    images_written: int
    images_total: int
    skipped: int
    seconds: float
    manifest: str

    @property
    def images_per_second(self) -> float:
        """Images written per second of wall time (0 when nothing was written)."""
        return self.images_written / self.seconds if self.seconds > 0 else 0.0

    def __str__(self) -> str:
        return (
            f"{self.references} references, {self.images_written} images written "
            f"({self.images_total} in {self.manifest}), {self.skipped} skipped, "
            f"{self.seconds:.1f} s, {self.images_per_second:.1f} images/s"
        )


def _stderr(message: str) -> None:
    from tqdm import tqdm

    tqdm.write(message, file=sys.stderr)


def _csv_text(columns: Iterable[str], rows: Iterable[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _row_key(row: dict[str, Any]) -> tuple[str, str, int]:
    return (str(row["reference"]), str(row["distortion"]), int(row["level"]))


def _marker_path(out_dir: Path, reference: str) -> Path:
    name = hashlib.blake2b(reference.encode("utf-8"), digest_size=16).hexdigest()
    return out_dir / PROGRESS_DIR / f"{name}.json"


def _remove_temp_files(folder: Path, stem: str) -> None:
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


def _init_worker(parent: int) -> None:
    """Pool worker set-up: one OpenCV thread per process, Ctrl-C handled by the parent only, and
    exit as soon as the parent dies (e.g. kill -9), so no orphan keeps writing into OUT_DIR."""
    import cv2

    cv2.setNumThreads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def exit_with_parent() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=exit_with_parent, daemon=True).start()


def _save(path: Path, image, image_format: str) -> None:
    global _images_saved
    options = {"png": {"compress_level": PNG_COMPRESS_LEVEL}, "jpg": {"quality": JPEG_QUALITY, "subsampling": 0}}
    write_image(path, image, **options.get(image_format, {}))
    _images_saved += 1
    if _images_saved == int(os.environ.get(KILL_AFTER_IMAGES_ENV, "0")):
        os.kill(os.getpid(), signal.SIGKILL)


def _process_reference(task: _Task) -> _Outcome:
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
    marker = _marker_path(out_dir, reference)
    folder = out_dir / reference_folder(reference)
    _remove_temp_files(marker.parent, marker.stem)
    previous = _read_marker(marker)
    try:
        pristine = load_pristine(source, max_side=settings.max_side, max_pixels=settings.max_pixels)
    except UnusableImage as exc:
        shutil.rmtree(folder, ignore_errors=True)
        write_text_atomic(marker, json.dumps({"reference": reference, "source": stamp, "skipped": exc.reason}))
        return _Outcome(reference, 0, (), exc.reason)
    same_source = (previous is not None and previous.get("reference") == reference and not previous.get("skipped")
                   and isinstance(previous.get("source"), dict) and stamp is not None
                   and previous["source"].get("blake2b") == stamp.get("blake2b") is not None)
    if not same_source:
        shutil.rmtree(folder, ignore_errors=True)
        write_text_atomic(marker, json.dumps({"reference": reference, "source": stamp, "partial": True}))
    _remove_temp_files(folder, "*")
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
            return _Outcome(reference, written, pristine.notes, None, f"{name} failed ({exc.__class__.__name__}: {exc})")
        for path, level_image in zip(paths, levels):
            _save(out_dir / path, level_image, fmt)
            written += 1
    rows.sort(key=_row_key)
    record = {"reference": reference, "source": stamp, "skipped": None, "notes": list(pristine.notes), "rows": rows}
    write_text_atomic(marker, json.dumps(record, ensure_ascii=False))
    return _Outcome(reference, written, pristine.notes, None)


def _finished_record(out_dir: Path, src_dir: Path, reference: str) -> dict | None:
    """The reference's completion marker if it is valid (finished, same source file, every listed
    image present)."""
    record = _read_marker(_marker_path(out_dir, reference))
    if record is None or record.get("partial") or record.get("reference") != reference or "skipped" not in record:
        return None
    if not _same_source(record.get("source"), src_dir / reference):
        return None
    if not record["skipped"] and not all((out_dir / row["path"]).exists() for row in record.get("rows", [])):
        return None
    return record


def _check_settings(out_dir: Path, settings: Settings) -> None:
    """Refuse to mix outputs of different options in one OUT_DIR; record the options on first use."""
    path = out_dir / SETTINGS_FILE
    if path.exists():
        try:
            previous = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            previous = None
        if not isinstance(previous, dict):
            raise UserError(f"{path}: corrupt settings file (expected a JSON object); delete it only if OUT_DIR "
                            "holds nothing else")
        current = json.loads(settings.to_json())
        differing = sorted(key for key in set(previous) | set(current) if previous.get(key) != current.get(key))
        if differing:
            raise InvalidOption(
                f"out_dir {out_dir} was generated with other options ({', '.join(differing)} differ: "
                f"{', '.join(f'{key}={previous.get(key)!r}' for key in differing)}); use a new out_dir",
                params=("out_dir",)
            )
    else:
        write_text_atomic(path, settings.to_json())


def _resolve_distortions(distortion_names: Iterable[str] | None) -> tuple[str, ...]:
    import distortions

    from rankiqa.distortion_table import get_distortion

    names = distortions.names(composed=False) if distortion_names is None else list(dict.fromkeys(distortion_names))
    for name in names:
        get_distortion(name)
    if not names:
        raise InvalidOption("distortion_names: no distortion type selected", params=("distortion_names",))
    return tuple(names)


Runner = Callable[[list[_Task], Callable[[_Outcome], None]], None]
"""Runs tasks elsewhere (e.g. ``rankiqa.ray_engine``) and reports each outcome, in any order."""


def _run_tasks(tasks: list[_Task], workers: int, progress: bool, log: Log, runner: Runner | None = None) -> list[_Outcome]:
    from tqdm import tqdm

    outcomes = []
    bar = tqdm(total=len(tasks), unit="ref", desc="generate", disable=not progress or not tasks, file=sys.stderr)
    written = 0
    kill_after = int(os.environ.get(KILL_AFTER_REFERENCES_ENV, "0"))

    def record(outcome: _Outcome) -> None:
        nonlocal written
        written += outcome.written
        for note in outcome.notes:
            log(f"{outcome.reference}: {note}")
        if outcome.skipped:
            log(f"skipped {outcome.reference}: {outcome.skipped}")
        if outcome.error:
            log(f"error on {outcome.reference}: {outcome.error}; left out, a re-run retries it")
        outcomes.append(outcome)
        bar.set_postfix(images=written, refresh=False)
        bar.update()
        if len(outcomes) == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    try:
        if runner is not None:
            if tasks:
                runner(tasks, record)
        elif workers == 1 or len(tasks) <= 1:
            import cv2

            threads = cv2.getNumThreads()
            cv2.setNumThreads(1)
            try:
                for task in tasks:
                    record(_process_reference(task))
            finally:
                cv2.setNumThreads(threads)
        else:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(os.getpid(),)) as pool:
                futures = [pool.submit(_process_reference, task) for task in tasks]
                try:
                    for future in as_completed(futures):
                        record(future.result())
                except BaseException as exc:
                    if isinstance(exc, KeyboardInterrupt):
                        log("interrupted: letting the workers finish the references in progress...")
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
    except KeyboardInterrupt:
        bar.close()
        log("interrupted: finished references are kept; run the same command again to finish the rest")
        raise
    bar.close()
    return outcomes


def generate(
    src_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    distortion_names: Iterable[str] | None = None,
    seed: int = 0,
    workers: int = 1,
    shard: tuple[int, int] = (1, 1),
    max_side: int | None = None,
    image_format: str = "png",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: bool = True,
    log: Log | None = None,
    engine: str = "local",
    address: str | None = None,
) -> GenerateSummary:
    """Generate the ranked dataset of every photo in ``src_dir`` into ``out_dir`` (see module doc).

    ``distortion_names``: registry names (None = every single type, no composed preset).
    ``workers``: processes (spawned).
    ``shard``: (K, N) to process only part K of N; a sharded run writes ``manifest-shard-K-of-N.csv``
    and ``skipped-shard-K-of-N.csv``, joined by ``merge_shards``. ``max_side``: downscale photos so
    their long side is at most this many pixels. ``image_format``: png (default, lossless), bmp or
    jpg (lossy re-encoding, warned). ``max_pixels``: larger declared sizes are refused as
    decompression bombs. ``log``: receives one line per note, skip and warning (default: stderr).
    ``engine``: "local" (``workers`` processes) or "ray" (one Ray task per reference, on the cluster
    at ``address``: "auto", "HOST:PORT" or "ray://HOST:PORT"; None starts a local Ray instance with
    ``workers`` CPUs); OUT_DIR must then be a folder every node sees. Both engines write the same bytes.
    Re-running the same call after an interruption finishes only what is missing.
    """
    log = log or _stderr
    started = time.perf_counter()
    src = Path(src_dir)
    out = Path(out_dir)
    if image_format not in OUTPUT_FORMATS:
        raise UnknownName(f"image_format {image_format!r}: expected one of {', '.join(OUTPUT_FORMATS)}",
                          params=("image_format",))
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InvalidOption(f"workers {workers!r}: expected an integer >= 1", params=("workers",))
    if engine not in ENGINES:
        raise UnknownName(f"engine {engine!r}: expected one of {', '.join(ENGINES)}", params=("engine",))
    runner = None
    if engine == "ray":
        from rankiqa.ray_engine import generate_runner

        runner = generate_runner(address, num_cpus=workers, log=log)
    elif address is not None:
        raise InvalidOption("address needs engine ray", params=("address", "engine"))
    if max_side is not None and max_side < MIN_PRISTINE_SIDE:
        raise InvalidOption(f"max_side {max_side}: expected at least {MIN_PRISTINE_SIDE} pixels", params=("max_side",))
    index, count = parse_shard(f"{shard[0]}/{shard[1]}")
    if src.exists() and out.exists() and src.resolve() == out.resolve():
        raise InvalidOption(f"out_dir {out} is src_dir; choose another output folder", params=("out_dir", "src_dir"))
    references, unlisted = scan_images(src, exclude=out)
    if not references:
        found = f" ({len(unlisted)} sub-folder(s) not read, e.g. {unlisted[0][0]}: {unlisted[0][1]})" if unlisted else ""
        raise UserError(f"src_dir {src}: no image files ({', '.join(IMAGE_EXTENSIONS)}) found{found}",
                        params=("src_dir",))
    settings = Settings(int(seed), _resolve_distortions(distortion_names), max_side, image_format, int(max_pixels))
    if image_format == "jpg":
        log(f"Warning: --format jpg re-encodes every image (lossy, quality {JPEG_QUALITY}); "
            "JPEG artefacts mix with the distortion levels. Use png for a lossless dataset.")
    with folder_lock(out, None if count == 1 else (index, count), label="out_dir"):
        return _generate_locked(src, out, settings, (index, count), references, unlisted, workers, progress, log, started,
                                runner)


def _generate_locked(src: Path, out: Path, settings: Settings, shard: tuple[int, int], references: list[str],
                     unlisted: list[tuple[str, str]], workers: int, progress: bool, log: Log,
                     started: float, runner: Runner | None = None) -> GenerateSummary:
    """``generate`` once OUT_DIR's lock is held: resume check, tasks, manifest and skipped list.
    Folders of SRC_DIR that could not be read (``unlisted``) are listed in shard 1's skipped file."""
    index, count = shard
    suffix = "" if count == 1 else f"-shard-{index}-of-{count}"
    for stem in (f"manifest{suffix}", f"skipped{suffix}"):
        _remove_temp_files(out, stem)
    _check_settings(out, settings)
    mine = shard_references(references, (index, count))
    records = {ref: _finished_record(out, src, ref) for ref in mine}
    tasks = [_Task(str(src / ref), str(out), ref, settings) for ref, record in records.items() if record is None]
    outcomes = _run_tasks(tasks, workers, progress, log, runner)
    records.update({outcome.reference: _finished_record(out, src, outcome.reference) for outcome in outcomes})
    rows = sorted((row for record in records.values() if record and not record["skipped"] for row in record["rows"]),
                  key=_row_key)
    skipped = sorted([(ref, record["skipped"]) for ref, record in records.items() if record and record["skipped"]]
                     + [(outcome.reference, f"error: {outcome.error}") for outcome in outcomes if outcome.error])
    usable = len(mine) - len(skipped)
    if index == 1:
        skipped = sorted(skipped + [(f"{folder}/", reason) for folder, reason in unlisted])
    skipped_csv = out / f"skipped{suffix}.csv"
    write_text_atomic(skipped_csv, _csv_text(SKIPPED_COLUMNS, (dict(path=p, reason=r) for p, r in skipped)))
    if count == 1 and usable == 0:
        raise UserError(
            f"src_dir {src}: no usable image ({len(skipped)} skipped, e.g. {skipped[0][0]}: {skipped[0][1]}; "
            f"see {skipped_csv})", params=("src_dir",)
        )
    manifest = out / f"manifest{suffix}.csv"
    write_text_atomic(manifest, _csv_text(MANIFEST_COLUMNS, rows))
    written = sum(outcome.written for outcome in outcomes)
    return GenerateSummary(usable, written, len(rows), len(skipped), time.perf_counter() - started, manifest.name)


def merge_shards(out_dir: str | os.PathLike) -> GenerateSummary:
    """Join ``manifest-shard-K-of-N.csv`` (K = 1..N, all present) into ``manifest.csv`` and
    ``skipped.csv``, identical to what a single unsharded run writes. Refused while a shard still
    runs in ``out_dir`` on this machine (or any machine, where the file system supports locks)."""
    started = time.perf_counter()
    out = Path(out_dir)
    if not out.is_dir():
        raise UserError(f"out_dir {out}: folder not found", params=("out_dir",))
    with folder_lock(out, label="out_dir"):  # no shard may still be writing
        return _merge_locked(out, started)


def _merge_locked(out: Path, started: float) -> GenerateSummary:
    shards = {}
    for path in out.iterdir():
        match = _SHARD_MANIFEST.match(path.name)
        if match:
            shards[int(match[1]), int(match[2])] = path
    if not shards:
        raise UserError(f"out_dir {out}: no manifest-shard-K-of-N.csv files (run with shard K/N first)",
                        params=("out_dir", "shard"))
    counts = {count for _, count in shards}
    if len(counts) != 1:
        raise UserError(f"out_dir {out}: shard files of different N ({', '.join(map(str, sorted(counts)))})",
                        params=("out_dir",))
    count = counts.pop()
    missing = [f"{k}/{count}" for k in range(1, count + 1) if (k, count) not in shards]
    if missing:
        raise UserError(f"out_dir {out}: shards {', '.join(missing)} not finished (no manifest-shard file)",
                        params=("out_dir",))
    rows, skipped = [], []
    for index in range(1, count + 1):
        rows += _read_csv(shards[index, count])
        skipped_path = out / f"skipped-shard-{index}-of-{count}.csv"
        if skipped_path.exists():
            skipped += _read_csv(skipped_path)
    if not rows:
        raise UserError(f"out_dir {out}: no usable image in any shard ({len(skipped)} files skipped)",
                        params=("out_dir",))
    rows.sort(key=_row_key)
    skipped.sort(key=lambda row: row["path"])
    write_text_atomic(out / "skipped.csv", _csv_text(SKIPPED_COLUMNS, skipped))
    write_text_atomic(out / "manifest.csv", _csv_text(MANIFEST_COLUMNS, rows))
    references = len({row["reference"] for row in rows})
    return GenerateSummary(references, 0, len(rows), len(skipped), time.perf_counter() - started, "manifest.csv")
