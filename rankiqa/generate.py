"""Generate ranked datasets: every pristine photo x distortion type -> the pristine copy and 5 levels.

>>> from rankiqa.generate import generate
>>> summary = generate("photos/", "ranked/", distortion_names=["gaussian_blur"], seed=0)  # doctest: +SKIP

Layout of ``OUT_DIR`` (its file names, seeds and manifest columns are in ``rankiqa.layout``):

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
import json
import multiprocessing
import os
import re
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from rankiqa.atomic import write_text_atomic
from rankiqa.csvio import write_rows_atomic
from rankiqa.errors import InvalidOption, UnknownName, UserError
from rankiqa.folderlock import folder_lock
from rankiqa.generate_worker import (
    JPEG_QUALITY,
    PNG_COMPRESS_LEVEL,
    PROGRESS_DIR,
    Outcome,
    Task,
    finished_record,
    process_reference,
    remove_temp_files,
    row_key,
)
from rankiqa.imageio import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, MIN_PRISTINE_SIDE
from rankiqa.layout import (
    MANIFEST_COLUMNS,
    SKIPPED_COLUMNS,
    distortion_seed,
    find_images,
    output_path,
    reference_folder,
    scan_images,
)

OUTPUT_FORMATS = ("png", "bmp", "jpg")
ENGINES = ("local", "ray")
SETTINGS_FILE = "generate.json"
_SHARD_MANIFEST = re.compile(r"^manifest-shard-(\d+)-of-(\d+)\.csv$")
__all__ = [  # public names; some live in rankiqa.generate_worker (JPEG_QUALITY, ...) and rankiqa.layout
    "ENGINES", "JPEG_QUALITY", "MANIFEST_COLUMNS", "OUTPUT_FORMATS", "PNG_COMPRESS_LEVEL", "PROGRESS_DIR",
    "SETTINGS_FILE", "SKIPPED_COLUMNS", "GenerateSummary", "Runner", "Settings", "distortion_seed", "find_images",
    "generate", "merge_shards", "output_path", "parse_shard", "reference_folder", "scan_images", "shard_references",
]

Log = Callable[[str], None]


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


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))



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


Runner = Callable[[list[Task], Callable[[Outcome], None]], None]
"""Runs tasks elsewhere (e.g. ``rankiqa.ray_engine``) and reports each outcome, in any order."""


class _Progress:
    """Called in the driver with each reference's outcome, in completion order: logs its notes, skip
    or error, keeps it in ``outcomes`` and advances the progress bar."""

    def __init__(self, total: int, progress: bool, log: Log):
        from tqdm import tqdm

        self.log, self.outcomes, self.written = log, [], 0
        self.bar = tqdm(total=total, unit="ref", desc="generate", disable=not progress or not total, file=sys.stderr)

    def __call__(self, outcome: Outcome) -> None:
        self.written += outcome.written
        for note in outcome.notes:
            self.log(f"{outcome.reference}: {note}")
        if outcome.skipped:
            self.log(f"skipped {outcome.reference}: {outcome.skipped}")
        if outcome.error:
            self.log(f"error on {outcome.reference}: {outcome.error}; left out, a re-run retries it")
        self.outcomes.append(outcome)
        self.bar.set_postfix(images=self.written, refresh=False)
        self.bar.update()


def _run_tasks(tasks: list[Task], workers: int, progress: bool, log: Log, runner: Runner | None = None) -> list[Outcome]:
    """Process every task with ``runner``, in this process (one worker) or in a pool of ``workers``
    spawned processes; the outcomes in completion order. Ctrl-C keeps the finished references."""
    record = _Progress(len(tasks), progress, log)
    try:
        if runner is not None:
            if tasks:
                runner(tasks, record)
        elif workers == 1 or len(tasks) <= 1:
            _run_here(tasks, record)
        else:
            _run_in_pool(tasks, workers, record, log)
    except KeyboardInterrupt:
        record.bar.close()
        log("interrupted: finished references are kept; run the same command again to finish the rest")
        raise
    record.bar.close()
    return record.outcomes


def _run_here(tasks: list[Task], record: Callable[[Outcome], None]) -> None:
    """The tasks one after the other in this process, with one OpenCV thread (as in the pool)."""
    import cv2

    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        for task in tasks:
            record(process_reference(task))
    finally:
        cv2.setNumThreads(threads)


def _run_in_pool(tasks: list[Task], workers: int, record: Callable[[Outcome], None], log: Log) -> None:
    """The tasks in ``workers`` spawned processes; on any error or Ctrl-C the references in progress
    are finished and the rest cancelled."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(os.getpid(),)) as pool:
        futures = [pool.submit(process_reference, task) for task in tasks]
        try:
            for future in as_completed(futures):
                record(future.result())
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                log("interrupted: letting the workers finish the references in progress...")
            pool.shutdown(wait=True, cancel_futures=True)
            raise


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
    _check_options(image_format, workers, engine, address)
    runner = None
    if engine == "ray":
        from rankiqa.ray_engine import generate_runner

        runner = generate_runner(address, num_cpus=workers, log=log)
    if max_side is not None and max_side < MIN_PRISTINE_SIDE:
        raise InvalidOption(f"max_side {max_side}: expected at least {MIN_PRISTINE_SIDE} pixels", params=("max_side",))
    index, count = parse_shard(f"{shard[0]}/{shard[1]}")
    references, unlisted = _list_sources(src, out)
    settings = Settings(int(seed), _resolve_distortions(distortion_names), max_side, image_format, int(max_pixels))
    if image_format == "jpg":
        log(f"Warning: --format jpg re-encodes every image (lossy, quality {JPEG_QUALITY}); "
            "JPEG artefacts mix with the distortion levels. Use png for a lossless dataset.")
    with folder_lock(out, None if count == 1 else (index, count), label="out_dir"):
        return _generate_locked(src, out, settings, (index, count), references, unlisted, workers, progress, log, started,
                                runner)


def _check_options(image_format: str, workers: int, engine: str, address: str | None) -> None:
    """An error for an output format, worker count or engine ``generate`` does not know, or an
    ``address`` without the Ray engine."""
    if image_format not in OUTPUT_FORMATS:
        raise UnknownName(f"image_format {image_format!r}: expected one of {', '.join(OUTPUT_FORMATS)}",
                          params=("image_format",))
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InvalidOption(f"workers {workers!r}: expected an integer >= 1", params=("workers",))
    if engine not in ENGINES:
        raise UnknownName(f"engine {engine!r}: expected one of {', '.join(ENGINES)}", params=("engine",))
    if engine != "ray" and address is not None:
        raise InvalidOption("address needs engine ray", params=("address", "engine"))


def _list_sources(src: Path, out: Path) -> tuple[list[str], list[tuple[str, str]]]:
    """``scan_images(src)`` without ``out``; an error when out_dir is src_dir or nothing is found."""
    if src.exists() and out.exists() and src.resolve() == out.resolve():
        raise InvalidOption(f"out_dir {out} is src_dir; choose another output folder", params=("out_dir", "src_dir"))
    references, unlisted = scan_images(src, exclude=out)
    if not references:
        found = f" ({len(unlisted)} sub-folder(s) not read, e.g. {unlisted[0][0]}: {unlisted[0][1]})" if unlisted else ""
        raise UserError(f"src_dir {src}: no image files ({', '.join(IMAGE_EXTENSIONS)}) found{found}",
                        params=("src_dir",))
    return references, unlisted


def _generate_locked(src: Path, out: Path, settings: Settings, shard: tuple[int, int], references: list[str],
                     unlisted: list[tuple[str, str]], workers: int, progress: bool, log: Log,
                     started: float, runner: Runner | None = None) -> GenerateSummary:
    """``generate`` once OUT_DIR's lock is held: resume check, tasks, manifest and skipped list.
    Folders of SRC_DIR that could not be read (``unlisted``) are listed in shard 1's skipped file."""
    index, count = shard
    suffix = "" if count == 1 else f"-shard-{index}-of-{count}"
    for stem in (f"manifest{suffix}", f"skipped{suffix}"):
        remove_temp_files(out, stem)
    _check_settings(out, settings)
    mine = shard_references(references, (index, count))
    records = {ref: finished_record(out, src, ref) for ref in mine}
    tasks = [Task(str(src / ref), str(out), ref, settings) for ref, record in records.items() if record is None]
    outcomes = _run_tasks(tasks, workers, progress, log, runner)
    records.update({outcome.reference: finished_record(out, src, outcome.reference) for outcome in outcomes})
    rows = sorted((row for record in records.values() if record and not record["skipped"] for row in record["rows"]),
                  key=row_key)
    skipped = sorted([(ref, record["skipped"]) for ref, record in records.items() if record and record["skipped"]]
                     + [(outcome.reference, f"error: {outcome.error}") for outcome in outcomes if outcome.error])
    usable = len(mine) - len(skipped)
    if index == 1:
        skipped = sorted(skipped + [(f"{folder}/", reason) for folder, reason in unlisted])
    skipped_csv = out / f"skipped{suffix}.csv"
    write_rows_atomic(skipped_csv, SKIPPED_COLUMNS, (dict(path=p, reason=r) for p, r in skipped))
    if count == 1 and usable == 0:
        raise UserError(
            f"src_dir {src}: no usable image ({len(skipped)} skipped, e.g. {skipped[0][0]}: {skipped[0][1]}; "
            f"see {skipped_csv})", params=("src_dir",)
        )
    manifest = out / f"manifest{suffix}.csv"
    write_rows_atomic(manifest, MANIFEST_COLUMNS, rows)
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
    rows.sort(key=row_key)
    skipped.sort(key=lambda row: row["path"])
    write_rows_atomic(out / "skipped.csv", SKIPPED_COLUMNS, skipped)
    write_rows_atomic(out / "manifest.csv", MANIFEST_COLUMNS, rows)
    references = len({row["reference"] for row in rows})
    return GenerateSummary(references, 0, len(rows), len(skipped), time.perf_counter() - started, "manifest.csv")
