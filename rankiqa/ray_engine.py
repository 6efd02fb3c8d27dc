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

``address``: "auto", "HOST:PORT" (the head's GCS port, 6379 by default) or "ray://HOST:PORT" (Ray
Client, 10001 by default); None starts a local Ray instance (or joins ``RAY_ADDRESS`` when set).
Ray is imported only here and only when used.
"""
from __future__ import annotations

import json
import logging
import math
import os
import signal
import socket
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from rankiqa.atomic import atomic_path, write_text_atomic
from rankiqa.errors import InvalidOption, UserError

if TYPE_CHECKING:
    from rankiqa.generate import Runner
    from rankiqa.generate_worker import Outcome, Task
    from rankiqa.score import Scorer

INSTALL_HINT = 'pip install "rankiqa[ray]"'
MAX_RETRIES = 3
"""Times Ray re-runs a generate task whose worker process died (the task is idempotent)."""
CONNECT_TIMEOUT_S = 60
"""Seconds allowed to join a cluster that answers at ``address`` (nothing answering fails at once)."""
DECODE_CPUS = 0.25
"""CPUs reserved by one decode-and-crop task (short); a CPU scoring actor reserves the rest of one."""
OUTPUT_SUFFIXES = (".csv", ".json", ".parquet")
# Testing hook: with this variable set to a file path, the first generate task to claim it writes one
# image, then writes its worker's PID to that path and sleeps, so a test can SIGKILL a worker mid-task.
PAUSE_WORKER_ENV = "RANKIQA_TEST_PAUSE_WORKER_FILE"

Log = Callable[[str], None]


def import_ray():
    """The ``ray`` module, or ``UserError`` naming the install command when Ray is missing."""
    try:
        import ray
    except ImportError:
        raise UserError(f"engine ray needs Ray, which is not installed: {INSTALL_HINT}", params=("engine",)) from None
    return ray


def _host_port(address: str) -> tuple[str, int] | None:
    """(host, port) that must answer for ``address``; None for "auto"; ``UserError`` if malformed."""
    if address == "auto":
        return None
    text, default = (address[len("ray://"):], 10001) if address.startswith("ray://") else (address, None)
    host, _, port = text.rstrip("/").rpartition(":")
    if not port.isdigit() and default is not None:
        host, port = text.rstrip("/"), str(default)
    if not host or not port.isdigit():
        raise InvalidOption(f"address {address!r}: expected auto, HOST:PORT or ray://HOST[:PORT]", params=("address",))
    return host.strip("[]"), int(port)


def check_address(address: str | None, timeout_s: float = 5.0) -> None:
    """``UserError`` (one line) unless something answers at ``address`` within ``timeout_s`` seconds."""
    target = None if address is None else _host_port(address)
    if target is None:
        return
    try:
        socket.create_connection(target, timeout=timeout_s).close()
    except OSError as exc:
        raise UserError(
            f"address {address}: no Ray cluster answers at {target[0]}:{target[1]} "
            f"({exc.strerror or exc}); start one with `ray start --head` or check the address", params=("address",)
        ) from None


@contextmanager
def _time_limit(seconds: float, what: str, params: tuple[str, ...] = ()) -> Iterator[None]:
    """Raise ``UserError`` (naming ``params``) if the block runs longer than ``seconds`` (main thread
    only; else no limit)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise UserError(f"{what}: no answer within {seconds:.0f} s", params=params)

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextmanager
def connect(address: str | None = None, *, num_cpus: int | None = None) -> Iterator[Any]:
    """Yield ``ray`` joined to the cluster at ``address`` (None: a new local instance with ``num_cpus``
    CPUs, dashboard off, or ``RAY_ADDRESS`` when set); disconnect afterwards (a local instance
    stops). Reuses a connection the caller already made with ``ray.init``."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    check_address(address)
    options: dict[str, Any] = {"logging_level": logging.WARNING}
    if address is None:
        options.update(num_cpus=num_cpus, include_dashboard=False)
    else:
        options["address"] = address
    if os.environ.get(PAUSE_WORKER_ENV):
        options["runtime_env"] = {"env_vars": {PAUSE_WORKER_ENV: os.environ[PAUSE_WORKER_ENV]}}
    where = f"address {address}" if address else "a local Ray instance"
    try:
        if address is None:
            ray.init(**options)
        else:
            with _time_limit(CONNECT_TIMEOUT_S, f"joining {where}", params=("address",)):
                ray.init(**options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        ray.shutdown()
        reason = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
        raise UserError(f"{where}: cannot join the Ray cluster ({reason})", params=("address",)) from None
    except BaseException:
        ray.shutdown()
        raise
    try:
        yield ray
    finally:
        ray.shutdown()


def _quiet_ray_data(ray) -> None:
    """The driver shows its own progress bar: no Ray Data bars or per-dataset log lines."""
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    if hasattr(context, "enable_operator_progress_bars"):
        context.enable_operator_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)


def _session_pids(session: int) -> list[int]:
    import subprocess

    found = subprocess.run(["pgrep", "-s", str(session)], capture_output=True, text=True).stdout.split()
    return [int(pid) for pid in found]


def _stop_session(session: int, grace_s: float = 3.0) -> list[int]:
    """SIGTERM, then SIGKILL, every process of one session; the pids still there afterwards."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in _session_pids(session):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace_s
        while _session_pids(session) and time.monotonic() < deadline:
            time.sleep(0.1)
    return _session_pids(session)


LOCAL_CLUSTER_PORTS = ("port", "dashboard-agent-listen-port", "dashboard-agent-grpc-port",
                       "metrics-export-port", "runtime-env-agent-port", "node-manager-port", "object-manager-port")
"""The `ray start` ports ``local_cluster`` sets to free ones (Ray's fixed defaults collide between
two clusters on one machine)."""


@contextmanager
def local_cluster(num_cpus: int, env: dict[str, str] | None = None) -> Iterator[str]:
    """Yield the address (127.0.0.1:PORT) of a Ray head node with ``num_cpus`` CPUs started for the
    block (`ray start --head`, dashboard off, its own temp dir), as tests and benchmarks need a real
    cluster joined by address; token authentication is off. On exit every process of its session
    is stopped (only those); ``RuntimeError`` if any is left. ``env``: the environment of the node
    and its workers (default: this process's)."""
    import shutil
    import subprocess
    import tempfile

    import_ray()
    probes = [socket.socket() for _ in LOCAL_CLUSTER_PORTS]
    for probe in probes:
        probe.bind(("127.0.0.1", 0))
    ports = [probe.getsockname()[1] for probe in probes]  # all free at once: no two alike
    for probe in probes:
        probe.close()
    port = ports[0]
    script = Path(sys.executable).with_name("ray")
    command = [str(script)] if script.exists() else [sys.executable, "-c", "from ray.scripts.scripts import main; main()"]
    command += ["start", "--head", "--num-cpus", str(num_cpus), "--node-ip-address", "127.0.0.1",
                "--include-dashboard=false", "--disable-usage-stats"]
    command += [f"--{name}={number}" for name, number in zip(LOCAL_CLUSTER_PORTS, ports)]
    # Token authentication off: Ray 2.5x turns it on when ~/.ray/auth_token exists, and a driver
    # without RAY_AUTH_MODE=token is then refused. This node is short-lived and meant for loopback use.
    env = {**(os.environ if env is None else env), "RAY_AUTH_MODE": "disabled"}
    temp = tempfile.mkdtemp(prefix="rq", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
    sessions: list[int] = []
    try:
        for _ in range(3):  # Ray gives a raylet 30 s to register: a loaded machine can miss that
            starter = subprocess.Popen(command + ["--temp-dir", temp], env=env, start_new_session=True,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            sessions.append(starter.pid)
            try:
                output, _ = starter.communicate(timeout=180)
            finally:
                if starter.poll() is None:
                    starter.kill()
            if starter.returncode == 0:
                break
            _stop_session(starter.pid)
        else:
            raise RuntimeError(f"ray start failed 3 times (exit code {starter.returncode}): {output[-2000:]}")
        yield f"127.0.0.1:{port}"
    finally:
        left = [pid for session in sessions for pid in _stop_session(session)]
        shutil.rmtree(temp, ignore_errors=True)
        if left:
            raise RuntimeError(f"Ray processes left running after stopping the local cluster: {left}")


# ---------------------------------------------------------------------------------------- generate


def _pause_for_test() -> None:
    """The ``PAUSE_WORKER_ENV`` hook (inactive unless a test sets that variable)."""
    target = os.environ.get(PAUSE_WORKER_ENV)
    if not target:
        return
    try:
        os.close(os.open(f"{target}.claim", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return
    from rankiqa import generate_worker

    original = generate_worker._save

    def save_then_pause(path, image, image_format):
        original(path, image, image_format)
        generate_worker._save = original
        write_text_atomic(target, str(os.getpid()))
        time.sleep(120)

    generate_worker._save = save_then_pause


def _generate_task(task: Task) -> Outcome:
    """One reference, on a Ray worker: the local engine's own work function, one OpenCV thread."""
    import cv2

    from rankiqa.generate_worker import process_reference

    cv2.setNumThreads(1)
    _pause_for_test()
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
    with atomic_path(path) as tmp:
        if suffix == ".csv":
            frame.to_csv(tmp, index=False, lineterminator="\n")
        elif suffix == ".parquet":
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
    from tqdm import tqdm

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
    rows: list[dict[str, Any]] = []
    if files:
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
    rows.sort(key=lambda row: row["index"])
    rows = [{key: value for key, value in row.items() if key != "index"} for row in rows]
    rows += [{"path": item.path, "score": float("nan"), "spread": float("nan"), "patches": 0, "mos": float("nan"),
              "error": item.error} for item in missing]
    if all(isinstance(row["mos"], float) and math.isnan(row["mos"]) for row in rows):
        for row in rows:
            del row["mos"]
    errors = [row for row in rows if row["error"]]
    for row in errors:
        log(f"skipped {row['path']}: {row['error']}")
    write_rows(output, rows)
    log(f"wrote {len(rows)} row(s) to {output} ({len(rows) - len(errors)} scored, {len(errors)} error(s))")
    if len(errors) == len(rows):
        raise UserError(f"no image could be scored ({len(errors)} input(s) skipped, reasons above)")
    return rows
