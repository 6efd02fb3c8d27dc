"""Joining a Ray cluster (or starting a local one) for ``rankiqa.ray_engine``; Ray is optional.

``address``: "auto", "HOST:PORT" (the head's GCS port, 6379 by default) or "ray://HOST:PORT" (Ray
Client, 10001 by default); None starts a local Ray instance (or joins ``RAY_ADDRESS`` when set).
``local_cluster`` starts a real head node joined by address, for tests and benchmarks.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from rankiqa.errors import InvalidOption, UserError

INSTALL_HINT = 'pip install "rankiqa[ray]"'
CONNECT_TIMEOUT_S = 60
"""Seconds allowed to join a cluster that answers at ``address`` (nothing answering fails at once)."""


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
def local_cluster(num_cpus: int, env: dict[str, str] | None = None, worker_niceness: int = 0) -> Iterator[str]:
    """Yield the address (127.0.0.1:PORT) of a Ray head node with ``num_cpus`` CPUs started for the
    block (`ray start --head`, dashboard off, its own temp dir), as tests and benchmarks need a real
    cluster joined by address; token authentication is off. On exit every process of its session
    is stopped (only those); ``RuntimeError`` if any is left. ``env``: the environment of the node
    and its workers (default: this process's). ``worker_niceness``: added to the node's niceness
    for its worker processes (0: the same priority as the caller's processes; Ray's own default,
    15, starves the workers on a machine shared with other jobs, see docs/scale-out.md)."""
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
    env = {**(os.environ if env is None else env), "RAY_AUTH_MODE": "disabled", "RAY_worker_niceness": str(worker_niceness)}
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
