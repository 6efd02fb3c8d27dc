"""Run ``generate`` and ``score`` on a Ray cluster (optional extra: ``pip install "rankiqa[ray]"``).

- **generate**: one Ray task per reference photo runs ``rankiqa.generate_worker.process_reference``, the
  very function of the local engine, with its atomic writes and completion marker, into an OUT_DIR
  every node sees (shared storage). The driver only schedules (a bounded window of tasks in flight),
  shows progress and, back in ``rankiqa.generate``, collects the markers into ``manifest.csv``: the
  output is byte-identical to ``--engine local``. A task whose worker dies is retried by Ray
  (``MAX_RETRIES``); a killed driver re-run with the same command skips finished references.
- **score**: a Ray Data pipeline: the driver lists the files (``rankiqa.score.expand_paths``), CPU
  tasks decode and crop them (``rankiqa.score.read_and_crop``), an actor pool runs the model
  (``Scorer``'s own forward path, the model loaded once per actor, on a GPU with
  ``gpus_per_actor``); rows come back in input order, unreadable files as error rows.

``address``: see ``rankiqa.ray_cluster`` (joining or starting a cluster). Ray is imported only
there and here, and only when used.
"""
from __future__ import annotations

import json
import logging
import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from rankiqa.atomic import atomic_path
from rankiqa.csvio import write_csv_atomic
from rankiqa.errors import InvalidOption, UserError
from rankiqa.ray_cluster import (CONNECT_TIMEOUT_S, INSTALL_HINT, LOCAL_CLUSTER_PORTS, check_address, connect,
                                 import_ray, local_cluster)

if TYPE_CHECKING:
    from rankiqa.generate import Runner
    from rankiqa.generate_worker import Outcome, Task
    from rankiqa.score import Scorer

MAX_RETRIES = 3
"""Times Ray re-runs a generate task whose worker process died (the task is idempotent)."""
DECODE_CPUS = 0.25
"""CPUs reserved by one decode-and-crop task (short); a CPU scoring actor reserves the rest of one."""
OUTPUT_SUFFIXES = (".csv", ".json", ".parquet")
__all__ = [  # public names; the cluster helpers live in rankiqa.ray_cluster and are re-exported here
    "CONNECT_TIMEOUT_S", "DECODE_CPUS", "INSTALL_HINT", "LOCAL_CLUSTER_PORTS", "MAX_RETRIES", "OUTPUT_SUFFIXES",
    "check_address", "connect", "generate_runner", "import_ray", "local_cluster", "score_with_ray", "write_rows",
]

Log = Callable[[str], None]


def _quiet_ray_data(ray) -> None:
    """The driver shows its own progress bar: no Ray Data bars or per-dataset log lines."""
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    if hasattr(context, "enable_operator_progress_bars"):
        context.enable_operator_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)


# ---------------------------------------------------------------------------------------- generate


def _generate_task(task: Task) -> Outcome:
    """One reference, on a Ray worker: the local engine's own work function, one OpenCV thread."""
    import cv2

    from rankiqa.generate_worker import process_reference

    cv2.setNumThreads(1)
    return process_reference(task)


def generate_runner(address: str | None = None, *, num_cpus: int | None = None, log: Log = print) -> Runner:
    """A ``rankiqa.generate`` runner that executes each reference as a Ray task (see module doc).

    Checks now that Ray is installed and ``address`` answers; joins the cluster only when run.
    """
    import_ray()
    check_address(address)

    def run(tasks: list[Task], record: Callable[[Outcome], None]) -> None:
        with connect(address, num_cpus=num_cpus) as ray:
            remote = ray.remote(num_cpus=1, max_retries=MAX_RETRIES)(_generate_task)
            window = max(4, 2 * int(ray.cluster_resources().get("CPU", 1)))
            queue = iter(tasks)
            pending: dict[Any, str] = {}
            try:
                while True:
                    while len(pending) < window:
                        task = next(queue, None)
                        if task is None:
                            break
                        pending[remote.remote(task)] = task.reference
                    if not pending:
                        break
                    done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
                    for ref in done:
                        del pending[ref]
                        record(ray.get(ref))
            except BaseException:
                if pending:
                    log(f"stopping {len(pending)} Ray task(s) in progress...")
                for ref in pending:
                    ray.cancel(ref, force=True)
                raise

    return run


# ------------------------------------------------------------------------------------------- score


def _decode_batch(batch: dict[str, Any], patches: int, patch_size: int, seed: int) -> dict[str, list]:
    """Ray Data CPU stage: decode and crop each path of the batch (errors become error rows)."""
    import cv2

    from rankiqa.score import read_and_crop

    cv2.setNumThreads(1)
    out: dict[str, list] = {"index": [], "path": [], "crops": [], "error": []}
    for index, path in zip(batch["index"], batch["path"]):
        result, crops = read_and_crop(str(path), int(index), patches, patch_size, seed)
        out["index"].append(int(index))
        out["path"].append(result.path)
        out["crops"].append(crops.tobytes())
        out["error"].append(result.error or "")
    return out


class _ScoreActor:
    """Ray Data actor stage: holds one ``Scorer`` (model loaded once) and scores decoded crops."""

    def __init__(self, module_ref: Any, options: dict[str, Any], use_gpu: bool) -> None:
        import ray
        import torch

        from rankiqa.score import Scorer

        module = ray.get(module_ref) if isinstance(module_ref, ray.ObjectRef) else module_ref
        device = "cuda" if use_gpu and torch.cuda.is_available() else "cpu"
        if device == "cpu":
            torch.set_num_threads(1)
        self.scorer = Scorer(module, device=device, **options)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        import numpy as np

        from rankiqa.score import ImageScore

        size = self.scorer.patch_size
        queue = [
            (ImageScore(str(path), error=str(error) or None), np.frombuffer(crops, np.uint8).reshape(-1, size, size, 3))
            for path, crops, error in zip(batch["path"], batch["crops"], batch["error"])
        ]
        results = list(self.scorer._flush(queue))
        nan = float("nan")
        return {
            "index": [int(index) for index in batch["index"]],
            "path": [result.path for result in results],
            "score": [nan if result.score is None else result.score for result in results],
            "spread": [nan if result.spread is None else result.spread for result in results],
            "patches": [len(result.per_patch) for result in results],
            "mos": [nan if getattr(result, "mos", None) is None else result.mos for result in results],
            "error": [result.error or "" for result in results],
        }


def write_rows(path: str | os.PathLike, rows: Sequence[dict[str, Any]]) -> None:
    """Write result rows atomically as .csv, .json (a list of objects) or .parquet, by suffix.

    Missing values (score of an error row, ...) are empty in csv and null in json and parquet.
    """
    import pandas as pd

    suffix = Path(path).suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise InvalidOption(f"path {path}: expected a {', '.join(OUTPUT_SUFFIXES)} file", params=("path",))
    frame = pd.DataFrame(list(rows))
    if suffix == ".csv":
        write_csv_atomic(frame, path)
        return
    with atomic_path(path) as tmp:
        if suffix == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            clean = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()} for row in rows]
            Path(tmp).write_text(json.dumps(clean, indent=1) + "\n", encoding="utf-8")


def score_with_ray(
    scorer: Scorer,
    inputs: Sequence[str],
    output: str | os.PathLike,
    *,
    recursive: bool = False,
    address: str | None = None,
    actors: int | None = None,
    gpus_per_actor: float = 0.0,
    num_cpus: int | None = None,
    progress: bool = True,
    log: Log = print,
) -> list[dict[str, Any]]:
    """Score files/folders/globs on a Ray cluster with ``scorer``'s model and protocol; write ``output``.

    Rows (input order): path, score (higher = better), spread, patches, error ("" when scored), and
    mos when the model is calibrated; unreadable inputs are error rows and reported through ``log``.
    ``actors``: model replicas (default: one per GPU with ``gpus_per_actor`` > 0, else one per
    cluster CPU); ``num_cpus``: CPUs of the local Ray instance started when ``address`` is None.
    Scores equal ``scorer.score_many`` within float rounding (different batches). Raises
    ``UserError`` when no image could be scored (after writing the error rows).
    """
    from rankiqa.score import expand_paths

    import_ray()
    if Path(output).suffix.lower() not in OUTPUT_SUFFIXES:
        raise InvalidOption(f"output {output}: expected a {', '.join(OUTPUT_SUFFIXES)} file", params=("output",))
    if actors is not None and actors < 1:
        raise InvalidOption(f"actors {actors}: expected at least 1", params=("actors",))
    if gpus_per_actor < 0:
        raise InvalidOption(f"gpus_per_actor {gpus_per_actor}: expected >= 0", params=("gpus_per_actor",))
    check_address(address)
    files, missing = expand_paths(inputs, recursive=recursive)
    scored = _score_on_cluster(scorer, files, address, actors, gpus_per_actor, num_cpus, progress) if files else []
    rows = _result_rows(scored, missing)
    errors = [row for row in rows if row["error"]]
    for row in errors:
        log(f"skipped {row['path']}: {row['error']}")
    write_rows(output, rows)
    log(f"wrote {len(rows)} row(s) to {output} ({len(rows) - len(errors)} scored, {len(errors)} error(s))")
    if len(errors) == len(rows):
        raise UserError(f"no image could be scored ({len(errors)} input(s) skipped, reasons above)")
    return rows


def _score_on_cluster(scorer: Scorer, files: Sequence[str | os.PathLike], address: str | None, actors: int | None,
                      gpus_per_actor: float, num_cpus: int | None, progress: bool) -> list[dict[str, Any]]:
    """The Ray Data pipeline of ``score_with_ray`` over ``files``: rows with their input ``index``,
    in completion order."""
    from tqdm import tqdm

    rows: list[dict[str, Any]] = []
    with connect(address, num_cpus=num_cpus) as ray:
        _quiet_ray_data(ray)
        resources = ray.cluster_resources()
        if actors is None:
            share = resources.get("GPU", 0) / gpus_per_actor if gpus_per_actor else resources.get("CPU", 1)
            actors = max(1, int(share))
        options = dict(patches=scorer.patches, patch_size=scorer.patch_size, aggregate=scorer.aggregate,
                       batch_size=scorer.batch_size, seed=scorer.seed)
        items = [{"index": index, "path": str(path)} for index, path in enumerate(files)]
        dataset = (
            ray.data.from_items(items, override_num_blocks=min(len(items), max(8 * actors, len(items) // 64)))
            .map_batches(_decode_batch, batch_size=None, num_cpus=DECODE_CPUS,
                         fn_kwargs=dict(patches=scorer.patches, patch_size=scorer.patch_size, seed=scorer.seed))
            .map_batches(_ScoreActor, batch_size=max(1, -(-scorer.batch_size // scorer.patches)),
                         compute=ray.data.ActorPoolStrategy(size=actors), num_gpus=gpus_per_actor or None,
                         num_cpus=1.0 if gpus_per_actor else 1.0 - DECODE_CPUS,
                         fn_constructor_kwargs=dict(module_ref=ray.put(scorer.module), options=options,
                                                    use_gpu=gpus_per_actor > 0))
        )
        with tqdm(total=len(files), unit="img", desc="score", disable=not progress, file=sys.stderr) as bar:
            for batch in dataset.iter_batches(batch_size=None, batch_format="pandas"):
                rows += batch.to_dict("records")
                bar.update(len(batch))
    return rows


def _result_rows(scored: list[dict[str, Any]], missing: Sequence) -> list[dict[str, Any]]:
    """The output rows: scored ones in input order, then an error row per input not found; no
    ``mos`` column when no row has one."""
    rows = [{key: value for key, value in row.items() if key != "index"}
            for row in sorted(scored, key=lambda row: row["index"])]
    rows += [{"path": item.path, "score": float("nan"), "spread": float("nan"), "patches": 0, "mos": float("nan"),
              "error": item.error} for item in missing]
    if all(isinstance(row["mos"], float) and math.isnan(row["mos"]) for row in rows):
        for row in rows:
            del row["mos"]
    return rows
