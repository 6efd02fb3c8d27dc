"""`--engine ray` for generate and score, on a real local Ray cluster joined by address.

The cluster is a `ray start --head --num-cpus 2` subprocess (``rankiqa.ray_engine.local_cluster``:
dashboard off, its own temp dir, a free port on 127.0.0.1), shared by this module and always
stopped: every process of its session is killed in the fixture's teardown, which then checks that
none is left.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from rankiqa.cli import main
from rankiqa.errors import UserError
from rankiqa.generate import PROGRESS_DIR, generate
from rankiqa.ray_engine import INSTALL_HINT, local_cluster, score_with_ray, write_rows
from rankiqa.score import Scorer, load_module
from _killing_launcher import PAUSE_FILE_ENV
from _shared import make_photos, tree

REPO = Path(__file__).resolve().parents[1]
TYPES = ["gaussian_blur", "white_noise", "jpeg"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def child_env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0", **extra}


@pytest.fixture(scope="module")
def cluster() -> str:
    """The address (127.0.0.1:PORT) of a 2-CPU Ray head node started for this module; stopped
    afterwards even when a test fails, and ``local_cluster`` fails the teardown if a process is left."""
    pytest.importorskip("ray")
    with local_cluster(2, env=child_env()) as address:
        yield address


@pytest.fixture
def src(tmp_path) -> Path:
    folder = tmp_path / "src"
    make_photos(folder, 4)
    return folder


def run_local(src: Path, out: Path):
    return generate(src, out, distortion_names=TYPES, progress=False, log=lambda message: None)


def run_ray(src: Path, out: Path, address: str):
    return generate(src, out, distortion_names=TYPES, progress=False, log=lambda message: None, engine="ray",
                    address=address)


def test_generate_on_cluster_is_byte_identical_to_local(cluster, src, tmp_path, capsys):
    run_local(src, tmp_path / "local")
    main(["generate", str(src), str(tmp_path / "ray"), "--distortions", ",".join(TYPES), "--engine", "ray",
          "--address", cluster, "--quiet"])
    assert "64 images written" in capsys.readouterr().out
    assert tree(tmp_path / "ray") == tree(tmp_path / "local")
    assert len(tree(tmp_path / "local")) == 4 * 16 + 4 + 3  # images, markers, manifest + skipped + settings


def test_worker_killed_mid_task_is_retried_with_the_same_output(cluster, src, tmp_path):
    import ray

    run_local(src, tmp_path / "local")
    pid_file = tmp_path / "paused-worker.pid"
    # the first task pauses after writing one image: a setup hook installs that in every worker of
    # this connection, which generate then reuses (the product has no testing hook)
    ray.init(address=cluster, logging_level=logging.WARNING, runtime_env={
        "worker_process_setup_hook": "_killing_launcher.pause_the_first_generate_task",
        "env_vars": {"PYTHONPATH": os.pathsep.join([str(REPO / "tests"), child_env()["PYTHONPATH"]]),
                     PAUSE_FILE_ENV: str(pid_file)}})
    killed: list[int] = []

    def kill_the_paused_worker() -> None:
        deadline = time.monotonic() + 90
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        pid = int(pid_file.read_text())
        assert pid != os.getpid()
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    killer = threading.Thread(target=kill_the_paused_worker, daemon=True)
    killer.start()
    try:
        summary = run_ray(src, tmp_path / "ray", cluster)
    finally:
        ray.shutdown()
    killer.join(timeout=5)
    assert killed, "no task paused: the setup hook did not reach the worker"
    with pytest.raises(ProcessLookupError):
        os.kill(killed[0], 0)
    assert summary.images_total == 64 and summary.skipped == 0
    assert tree(tmp_path / "ray") == tree(tmp_path / "local")


def test_killed_driver_rerun_skips_finished_references(cluster, src, tmp_path, killing_launcher):
    run_local(src, tmp_path / "local")
    out = tmp_path / "ray"
    command = [*killing_launcher, "generate-references", "2", "generate", str(src), str(out),
               "--distortions", ",".join(TYPES), "--engine", "ray", "--address", cluster, "--quiet"]
    # the launcher makes the driver SIGKILL itself once 2 references are finished
    process = subprocess.run(command, env=child_env(), capture_output=True, text=True, timeout=180)
    assert process.returncode == -signal.SIGKILL, process.stderr[-2000:]
    assert len(os.listdir(out / PROGRESS_DIR)) >= 2 and not (out / "manifest.csv").exists()
    summary = run_ray(src, out, cluster)
    assert summary.images_written <= summary.images_total - 2 * 16
    assert tree(out) == tree(tmp_path / "local")


def test_cluster_workers_run_at_the_callers_priority(cluster):
    """``local_cluster`` adds 0 to its workers' niceness; Ray's default (+15, at most 19) starves them
    on a shared machine, where local contenders run at the caller's niceness."""
    import ray

    niceness = os.nice(0)
    if niceness >= 19:
        pytest.skip("at niceness 19 Ray's default +15 changes nothing: the test could not fail")
    ray.init(address=cluster, logging_level=logging.WARNING)
    try:
        worker = ray.get(ray.remote(num_cpus=1)(lambda: os.nice(0)).remote())
    finally:
        ray.shutdown()
    assert worker == niceness


def test_score_on_cluster_equals_local_with_error_rows(cluster, src, tmp_path):
    (src / "broken.png").write_bytes(b"not a png")
    torch.manual_seed(0)
    scorer = Scorer(load_module("tiny"), patches=4, patch_size=32, batch_size=8)
    files = sorted(str(path) for path in src.rglob("*.png"))
    local = {result.path: result for result in scorer.score_many(files)}
    lines: list[str] = []
    output = tmp_path / "scores.parquet"
    score_with_ray(scorer, [str(src), str(tmp_path / "nothing.png")], output, recursive=True, address=cluster,
                   actors=1, progress=False, log=lines.append)
    table = pd.read_parquet(output)
    assert list(table.columns) == ["path", "score", "spread", "patches", "error"]
    assert list(table.path) == files + [str(tmp_path / "nothing.png")]
    for row in table.itertuples():
        if row.path in local and local[row.path].error is None:
            assert row.error == "" and row.patches == 4
            assert abs(row.score - local[row.path].score) <= 1e-5
            assert abs(row.spread - local[row.path].spread) <= 1e-5
        else:
            assert np.isnan(row.score) and row.error
    assert table.set_index("path").error[str(src / "broken.png")] == local[str(src / "broken.png")].error
    assert any("skipped" in line and "broken.png" in line for line in lines)


def test_the_decode_stage_does_not_import_torch(tmp_path):
    """Ray Data's decode-and-crop tasks run in CPU worker processes of their own; importing torch there
    cost seconds per process, most of those tasks' time (docs/scale-out.md)."""
    make_photos(tmp_path, 2)
    code = ("import sys; from rankiqa.ray_engine import _decode_batch; "
            f"out = _decode_batch({{'index': [0, 1], 'path': [{str(tmp_path / 'p01.png')!r}, {str(tmp_path / 'nope.png')!r}]}},"
            " patches=3, patch_size=32, seed=0); "
            "print(len(out['crops'][0]), bool(out['error'][1]), 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.split() == [str(3 * 32 * 32 * 3), "True", "False"]


def test_write_rows_formats(tmp_path):
    rows = [{"path": "a.png", "score": 1.25, "spread": 0.5, "patches": 2, "error": ""},
            {"path": "b.png", "score": float("nan"), "spread": float("nan"), "patches": 0, "error": "not an image"}]
    write_rows(tmp_path / "r.csv", rows)
    assert (tmp_path / "r.csv").read_text() == "path,score,spread,patches,error\na.png,1.25,0.5,2,\nb.png,,,0,not an image\n"
    write_rows(tmp_path / "r.json", rows)
    assert json.loads((tmp_path / "r.json").read_text())[1] == {**rows[1], "score": None, "spread": None}
    with pytest.raises(UserError, match="r.txt"):
        write_rows(tmp_path / "r.txt", rows)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["r.csv", "r.json"]  # no temp file left


@pytest.mark.parametrize("command", ["generate", "score"])
def test_missing_ray_is_one_line_with_the_install_command(command, src, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    args = [str(src), str(tmp_path / "out")] if command == "generate" else [str(src), "--output", str(tmp_path / "s.csv")]
    with pytest.raises(SystemExit) as exc:
        main([command, *args, "--engine", "ray"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and INSTALL_HINT in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_unreachable_address_is_one_line_within_30_s(src, tmp_path, capsys):
    pytest.importorskip("ray")
    port = free_port()  # bound once, then closed: nothing listens there
    for args in (["generate", str(src), str(tmp_path / "out")], ["score", str(src), "--output", str(tmp_path / "s.csv")]):
        started = time.monotonic()
        with pytest.raises(SystemExit) as exc:
            main([*args, "--engine", "ray", "--address", f"127.0.0.1:{port}"])
        err = capsys.readouterr().err
        assert time.monotonic() - started < 30
        assert exc.value.code == 2 and len(err.strip().splitlines()) == 1 and f"127.0.0.1:{port}" in err, err
