"""Benchmark scale-out: images/s of `generate` and `score`, local processes against Ray, same machine.

Run from the repository root (needs the ray extra):

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_scale.py --photos 24

Contenders (pairs of the same parallelism take turns, so load from other jobs hits them alike):
  local 1  generate --workers 1 / one scoring process;
  local 2  generate --workers 2 / two scoring processes, each scoring every other file;
  ray 1    --engine ray on a 1-CPU Ray head node joined by address;
  ray 2    --engine ray on a 2-CPU Ray head node joined by address.
Each Ray node is started once (`ray start`, as a cluster would be), one at a time, and the local
contender of the same parallelism takes turns with it; each timed Ray run joins the node, runs and
disconnects, so joining, scheduling and the Ray Data pipeline are timed (the warm-up round also
creates Ray Data's detached helper actors, which a long-lived cluster creates once).
The node's workers run at this process's niceness (``--ray-worker-niceness 0``), as the local
contenders do; Ray's own default adds 15, which starves them whenever another job wants the CPUs.
Every generate run must write the same manifest and every score run the same scores (checked).
Ray overhead = 1 - (Ray images/s) / (local images/s at the same parallelism); the goal is <= 15 %.
Speed-up = images/s with 2 CPUs / images/s with 1 CPU, per engine.
Photos: the first N of ../shared/data/pristine/train (sorted) when present, else synthetic 500x500.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import multiprocessing
import os
import platform
import shutil
import statistics
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import time_interleaved  # noqa: E402

from rankiqa.distortion_table import select_distortions  # noqa: E402
from rankiqa.generate import find_images, generate  # noqa: E402
from rankiqa.ray_engine import local_cluster, score_with_ray  # noqa: E402
from rankiqa.score import load_model  # noqa: E402

DEFAULT_SRC = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "pristine" / "train"
REPO = Path(__file__).resolve().parents[1]


def prepare_photos(folder: Path, src: Path, count: int) -> str:
    """Link the first ``count`` photos of ``src`` into ``folder`` (synthetic ones when ``src`` is absent)."""
    folder.mkdir(parents=True)
    if src.is_dir():
        for name in find_images(src)[:count]:
            (folder / name.replace("/", "_")).symlink_to((src / name).resolve())
        return f"{src} (first {count}, sorted)"
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:500, 0:500].astype(np.float32)
    for index in range(count):
        base = np.stack([128 + 90 * np.sin(xx / (7 + index)), 128 + 90 * np.cos(yy / 9), (xx + yy) % 256], 2)
        image = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(folder / f"synthetic_{index:03d}.png")
    return f"synthetic 500x500 ({src} not found)"


def _score_part(model: str, options: dict, paths: list[str]) -> list[float]:
    import torch

    torch.set_num_threads(1)
    scorer = load_model(model, **options)
    return [result.score for result in scorer.score_many(paths)]


def score_locally(model: str, options: dict, paths: list[str], processes: int) -> list[float]:
    """Scores of ``paths`` in input order, by 1 process (this one) or ``processes`` spawned ones."""
    if processes == 1:
        return _score_part(model, options, paths)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(processes, mp_context=context) as pool:
        parts = list(pool.map(_score_part, [model] * processes, [options] * processes,
                              [paths[k::processes] for k in range(processes)]))
    scores = [0.0] * len(paths)
    for k, part in enumerate(parts):
        scores[k::processes] = part
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=DEFAULT_SRC, help="folder of pristine photos")
    parser.add_argument("--photos", type=int, default=24, help="number of photos (>= 24 for the issue's goal)")
    parser.add_argument("--distortions", default="gaussian_blur,white_noise,jpeg", help="types for generate")
    parser.add_argument("--patches", type=int, default=30, help="patches per image for score")
    parser.add_argument("--model", default="default", help="scoring model")
    parser.add_argument("--repeats", type=int, default=2, help="timed rounds (after one warm-up round)")
    parser.add_argument("--only", choices=["generate", "score"], default=None, help="run one of the two")
    parser.add_argument("--local-only", action="store_true", help="no Ray contenders (per-image times, sizes)")
    parser.add_argument("--ray-worker-niceness", type=int, default=0,
                        help="added to the Ray workers' niceness (Ray's default: 15; 0: the local contenders' priority)")
    args = parser.parse_args()

    names = select_distortions(args.distortions)
    options = dict(patches=args.patches)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    load = os.getloadavg()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, python "
          f"{platform.python_version()}, niceness {os.nice(0)} (Ray workers +{args.ray_worker_niceness}), "
          f"load average at start {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    with tempfile.TemporaryDirectory(prefix="bench_scale_") as scratch:
        source = Path(scratch) / "src"
        print(f"photos: {args.photos} from {prepare_photos(source, args.src, args.photos)}")
        paths = [str(source / name) for name in find_images(source)]
        runs_done = {"n": 0}
        manifests: set[str] = set()
        sizes = {"bytes": 0, "images": 0}
        scores: dict[str, list[float]] = {}

        def generate_with(**engine) -> None:
            runs_done["n"] += 1
            out = Path(scratch) / f"gen_{runs_done['n']}"
            generate(source, out, distortion_names=names, progress=False, log=lambda message: None, **engine)
            manifests.add(hashlib.sha256((out / "manifest.csv").read_bytes()).hexdigest())
            files = [path for path in (out / "images").rglob("*") if path.is_file()]
            sizes["bytes"], sizes["images"] = sum(path.stat().st_size for path in files), len(files)
            shutil.rmtree(out)

        def score_with(label: str, processes: int = 1, address: str | None = None) -> None:
            if address is None:
                result = score_locally(args.model, options, paths, processes)
            else:
                out = Path(scratch) / "scores.parquet"
                scorer = load_model(args.model, **options)
                rows = score_with_ray(scorer, paths, out, address=address, progress=False, log=lambda message: None)
                result = [row["score"] for row in rows]
            if label in scores:
                assert np.allclose(scores[label], result, atol=1e-5), label
            scores[label] = result

        tasks = [task for task in ("generate", "score") if args.only in (None, task)]
        times: dict[str, dict[str, list[float]]] = {task: {} for task in tasks}
        for cpus in (1, 2):  # one Ray node at a time (two on this small machine starve each other)
            with contextlib.ExitStack() as stack:
                address = None
                if not args.local_only:
                    try:
                        address = stack.enter_context(local_cluster(cpus, env=env,
                                                                    worker_niceness=args.ray_worker_niceness))
                    except RuntimeError as exc:
                        print(f"ray {cpus}: no Ray node could be started, Ray rows left out "
                              f"({str(exc).strip().splitlines()[-1]})")
                for task in tasks:
                    if task == "generate":
                        runs = {f"local {cpus}": lambda: generate_with(workers=cpus),
                                f"ray {cpus}": lambda: generate_with(engine="ray", address=address)}
                    else:
                        runs = {f"local {cpus}": lambda: score_with(f"local {cpus}", cpus),
                                f"ray {cpus}": lambda: score_with(f"ray {cpus}", address=address)}
                    if address is None:
                        del runs[f"ray {cpus}"]
                    times[task].update(time_interleaved(runs, repeats=args.repeats, warmup=1))
        for task in tasks:
            images = len(paths) * (1 + 5 * len(names)) if task == "generate" else len(paths)
            detail = f"{len(names)} types, {images} images/run" if task == "generate" else f"{args.patches} patches/image"
            print(f"\n{task}: {len(paths)} photos, {detail}; median [best] of {args.repeats} runs")
            print("| contender | seconds | images/s | Ray overhead vs local, same CPUs |")
            print("|---|---|---|---|")
            for name, seconds in times[task].items():
                median = statistics.median(seconds)
                rate = images / median
                overhead = ""
                if name.startswith("ray") and name.replace("ray", "local") in times[task]:
                    local = images / statistics.median(times[task][name.replace("ray", "local")])
                    overhead = f"{100 * (1 - rate / local):+.0f} %"
                print(f"| {name} | {median:.1f} [{min(seconds):.1f}] | {rate:.2f} | {overhead} |")
            for engine in ("local", "ray"):
                if f"{engine} 1" in times[task] and f"{engine} 2" in times[task]:
                    speedup = statistics.median(times[task][f"{engine} 1"]) / statistics.median(times[task][f"{engine} 2"])
                    print(f"{engine}: speed-up from 1 to 2 CPUs x{speedup:.2f}")
            if task == "generate":
                assert len(manifests) == 1, "runs wrote different manifests"
                print(f"all runs wrote the same manifest.csv; {sizes['bytes'] / sizes['images'] / 1e3:.1f} kB "
                      f"per generated image on average ({sizes['images']} images, PNG)")
            else:
                reference = scores["local 1"]
                worst = max(float(np.max(np.abs(np.subtract(reference, other)))) for other in scores.values())
                print(f"largest score difference between contenders: {worst:.2e}")
    load = os.getloadavg()
    print(f"\nload average at end {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")


if __name__ == "__main__":
    main()
