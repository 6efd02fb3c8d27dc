"""Scoring speed on CPU: patches/s and images/s of the default model vs a ResNet-50 scorer,
with 1, 5 and 30 patches per image, and the peak memory of scoring a 24-megapixel JPEG.

Run from the repository root:

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_score.py

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
from rankiqa.score import DEFAULT_WEIGHTS, Scorer, load_module

PATCH_COUNTS = (1, 5, 30)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4, help="images per timed run")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    if DEFAULT_WEIGHTS.is_file():
        models = {"default (efficientnet_lite0)": load_module("default")}
        model_args = ["--model", "default"]
    else:
        print("NOTE: rankiqa/assets/default.pt is absent: timing a randomly initialised efficientnet_lite0 instead")
        torch.manual_seed(0)
        models = {"efficientnet_lite0 (random init)": load_module("efficientnet_lite0")}
        model_args = ["--model", "efficientnet_lite0"]
    torch.manual_seed(0)
    models["resnet50 (random init)"] = load_module("resnet50")
    images = [synthetic_photo((512, 512), seed) for seed in range(args.images)]

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores (load average {os.getloadavg()[0]:.1f}), "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.images} images of 512x512, "
          f"224 px patches; median [best] of {args.repeats} runs\n")
    print("| model | patches/image | patches/s | images/s |\n|---|---|---|---|")
    speedups = []
    for patches in PATCH_COUNTS:
        scorers = {name: Scorer(module, patches=patches) for name, module in models.items()}
        runs = time_interleaved({name: partial(scorer.score, images) for name, scorer in scorers.items()}, args.repeats)
        for name, seconds in runs.items():
            median, fastest = statistics.median(seconds), min(seconds)
            print(f"| {name} | {patches} | {args.images * patches / median:.1f} [{args.images * patches / fastest:.1f}] "
                  f"| {args.images / median:.2f} [{args.images / fastest:.2f}] |")
        ours, resnet = runs.values()
        speedups.append(f"{patches} patches {statistics.median(r / o for o, r in zip(ours, resnet)):.1f}x")
    print("\nspeed-up vs ResNet-50 (median over repeats of the paired time ratio): " + ", ".join(speedups))
    print()
    for size in (SMALL_SIZE, BIG_SIZE):
        rss, wall, nbytes = peak_rss_of_scoring(model_args, 30, size)
        print(f"{size[0]}x{size[1]} JPEG ({size[0] * size[1] / 1e6:.1f} MP, {nbytes / 2**20:.1f} MiB), "
              f"`rankiqa score {' '.join(model_args)} --patches 30`: peak RSS {rss:.0f} MiB, {wall:.1f} s wall (start included)")


if __name__ == "__main__":
    main()
