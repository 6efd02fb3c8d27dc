"""Scoring speed on CPU: patches/s and images/s of the default model on every backend and
precision (rankiqa.backends) and of a ResNet-50 scorer, with 1, 5 and 30 patches per image;
end-to-end images/s of ``rankiqa score`` on a folder of 12-megapixel JPEGs (decoding included);
and the peak memory of scoring a 24-megapixel JPEG.

Run from the repository root:

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_score.py
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_score.py --baseline /tmp/base   # + today's code

Backends whose packages are absent (or bf16 on a CPU without it) are left out and listed.
``--baseline`` is another checkout of rankiqa (e.g. ``git worktree add /tmp/base 12d6dda``):
its ``rankiqa score`` is timed on the same folder, taking turns with this checkout's, and the
end-to-end ratios are printed. Exported/quantised graphs are built before timing (first use of a
model; ``rankiqa.backends.cache_dir()``), so the end-to-end runs find them cached.

The default model is rankiqa/assets/default.pt; when it is absent a randomly initialised
efficientnet_lite0 is timed instead (same architecture, same speed) and the table says so.
The ResNet-50 scorer is torchvision's ResNet-50 with random weights behind the same score head and
the same scoring path (``rankiqa.score.Scorer``). Images are seeded synthetic 512x512 photos.
Each cell is the median [and best] of --repeats runs after one warm-up; the two models take
turns in every repeat, and the speed-up is the median of the paired time ratios (robust to load
from other processes on a shared machine; the load average is printed).

Peak memory: ``rankiqa score`` on a synthetic 6000x4000 JPEG (and on a 600x400 one, the baseline
of torch itself) in a subprocess; max RSS from ``resource.getrusage(RUSAGE_CHILDREN)``, read in a
small helper process that starts it, because Linux carries the parent's memory high-water mark
into a child started by fork/vfork + exec, so this large process must not be the direct parent.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from _timing import time_interleaved
from rankiqa import backends
from rankiqa.errors import UserError
from rankiqa.score import DEFAULT_WEIGHTS, Scorer, load_module

PATCH_COUNTS = (1, 5, 30)
CONTENDERS = (("torch", "fp32"), ("torch", "bf16"), ("onnxruntime", "fp32"), ("onnxruntime", "int8"),
              ("openvino", "fp32"), ("openvino", "bf16"), ("openvino", "int8"))
FOLDER_SIZE = (4000, 3000)  # 12 megapixels
BIG_SIZE = (6000, 4000)
SMALL_SIZE = (600, 400)
MEASURE = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def synthetic_photo(size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A smooth colour gradient with mild noise (compresses like a photo, unlike pure noise)."""
    width, height = size
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    out = np.empty((height, width, 3), np.uint8)
    for channel, field in enumerate((x + 0 * y, y + 0 * x, (x + y) / 2)):
        out[:, :, channel] = np.clip(field + rng.normal(0, 6, (height, width)).astype(np.float32), 0, 255)
    return out


def peak_rss_of_scoring(model_args: list[str], patches: int, size: tuple[int, int]) -> tuple[float, float, int]:
    """(peak RSS in MiB, wall seconds, file size in bytes) of ``rankiqa score`` on a JPEG of ``size`` (w, h)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.jpg"
        Image.fromarray(synthetic_photo(size)).save(path, quality=90)
        command = [sys.executable, "-m", "rankiqa", "score", str(path), *model_args, "--patches", str(patches)]
        start = time.perf_counter()
        helper = subprocess.run([sys.executable, "-c", MEASURE, *command], check=True, capture_output=True, text=True)
        wall = time.perf_counter() - start
        size = path.stat().st_size
    return int(helper.stdout.split()[-1]) / 1024, wall, size


def end_to_end(folder: Path, runs: dict[str, tuple[str, list[str]]], repeats: int) -> dict[str, list[tuple[float, float]]]:
    """(wall seconds, peak RSS MiB) of each ``rankiqa score FOLDER ...`` command per round, turns taken.

    ``runs``: name -> (PYTHONPATH of the checkout to run, extra arguments)."""
    out: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, (root, extra) in runs.items():
            env = {**os.environ, "PYTHONPATH": root}
            command = [sys.executable, "-m", "rankiqa", "score", str(folder), "--format", "csv", *extra]
            start = time.perf_counter()
            helper = subprocess.run([sys.executable, "-c", MEASURE, *command], check=True, capture_output=True, text=True, env=env)
            out[name].append((time.perf_counter() - start, int(helper.stdout.split()[-1]) / 1024))
    return out


def make_folder(folder: Path, count: int) -> Path:
    """``count`` seeded synthetic 12-MP JPEGs (quality 90) in ``folder``, reused when already there."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        path = folder / f"photo{index:03d}.jpg"
        if not path.is_file():
            Image.fromarray(synthetic_photo(FOLDER_SIZE, index)).save(path, quality=90)
    return folder


def available(module) -> dict[str, Scorer]:
    """A 1-patch scorer per contender that runs here (building graphs into the cache), by name."""
    scorers = {}
    for backend, precision in CONTENDERS:
        try:
            scorers[f"{backend} {precision}"] = Scorer(module, patches=1, backend=backend, precision=precision)
        except UserError as exc:
            print(f"left out {backend} {precision}: {exc}")
    return scorers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4, help="images per timed run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-resnet", action="store_true", help="leave the ResNet-50 scorer out")
    parser.add_argument("--folder-images", type=int, default=48, help="12-MP JPEGs in the end-to-end folder (0: skip)")
    parser.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()) / "rankiqa-bench-12mp",
                        help="where the synthetic 12-MP JPEGs are kept between runs")
    parser.add_argument("--e2e-repeats", type=int, default=2)
    parser.add_argument("--e2e-backend", default="openvino bf16", help="backend and precision timed end to end besides torch fp32")
    parser.add_argument("--baseline", help="root of another rankiqa checkout (today's code) to time end to end")
    parser.add_argument("--skip-table", action="store_true", help="only the end-to-end and memory parts")
    args = parser.parse_args()

    if DEFAULT_WEIGHTS.is_file():
        module, label = load_module("default"), "default (efficientnet_lite0)"
        model_args = ["--model", "default"]
    else:
        print("NOTE: rankiqa/assets/default.pt is absent: timing a randomly initialised efficientnet_lite0 instead")
        torch.manual_seed(0)
        module, label = load_module("efficientnet_lite0"), "efficientnet_lite0 (random init)"
        model_args = ["--model", "efficientnet_lite0"]
    scorers = available(module)
    if not args.no_resnet:
        torch.manual_seed(0)
        resnet = load_module("resnet50")
    images = [synthetic_photo((512, 512), seed) for seed in range(args.images)]

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores (load average {os.getloadavg()[0]:.1f}), "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.images} images of 512x512, "
          f"224 px patches; median [best] of {args.repeats} runs, contenders interleaved\n")
    print(f"model: {label}\n\n| backend precision | patches/image | patches/s | images/s | x torch fp32 |\n|---|---|---|---|---|")
    for patches in () if args.skip_table else PATCH_COUNTS:
        timed = {name: Scorer(module, patches=patches, backend=s.backend, precision=s.precision) for name, s in scorers.items()}
        if not args.no_resnet:
            timed["resnet50 torch fp32"] = Scorer(resnet, patches=patches)
        runs = time_interleaved({name: partial(scorer.score, images) for name, scorer in timed.items()}, args.repeats)
        reference = runs["torch fp32"]
        for name, seconds in runs.items():
            median, fastest = statistics.median(seconds), min(seconds)
            ratio = statistics.median(r / o for o, r in zip(seconds, reference))
            print(f"| {name} | {patches} | {args.images * patches / median:.1f} [{args.images * patches / fastest:.1f}] "
                  f"| {args.images / median:.2f} [{args.images / fastest:.2f}] | {ratio:.2f}x |")
    print("\nx torch fp32: median over rounds of the paired time ratio (torch fp32 eager time / this time)")
    print()
    if args.folder_images:
        folder = make_folder(args.folder, args.folder_images)
        here = str(Path(__file__).resolve().parents[1])
        backend, precision = args.e2e_backend.split()
        runs = {"this checkout, torch fp32": (here, model_args),
                f"this checkout, {backend} {precision}": (here, [*model_args, "--backend", backend, "--precision", precision])}
        if args.baseline:
            runs = {"baseline (today), torch fp32": (str(Path(args.baseline).resolve()), model_args), **runs}
        results = end_to_end(folder, runs, args.e2e_repeats)
        print(f"end to end: `rankiqa score FOLDER` on {args.folder_images} synthetic {FOLDER_SIZE[0]}x{FOLDER_SIZE[1]} JPEGs "
              f"(30 patches, start-up and decoding included), median of {args.e2e_repeats} rounds, load average "
              f"{os.getloadavg()[0]:.1f}\n\n| run | images/s | wall s | peak RSS MiB | x first row |\n|---|---|---|---|---|")
        first = next(iter(results.values()))
        for name, rounds in results.items():
            wall = statistics.median(w for w, _ in rounds)
            ratio = statistics.median(f[0] / r[0] for f, r in zip(first, rounds))
            print(f"| {name} | {args.folder_images / wall:.2f} | {wall:.1f} | {max(m for _, m in rounds):.0f} | {ratio:.2f}x |")
        print()
    for size in (SMALL_SIZE, BIG_SIZE):
        rss, wall, nbytes = peak_rss_of_scoring(model_args, 30, size)
        print(f"{size[0]}x{size[1]} JPEG ({size[0] * size[1] / 1e6:.1f} MP, {nbytes / 2**20:.1f} MiB), "
              f"`rankiqa score {' '.join(model_args)} --patches 30`: peak RSS {rss:.0f} MiB, {wall:.1f} s wall (start included)")


if __name__ == "__main__":
    main()
