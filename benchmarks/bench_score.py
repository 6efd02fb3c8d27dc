"""Scoring speed on CPU: patches/s and images/s of the default model vs a ResNet-50 scorer,
with 1, 5 and 30 patches per image, and the peak memory of scoring a 24-megapixel JPEG.

Run from the repository root:

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_score.py

The default model is rankiqa/assets/default.pt; when it is absent a randomly initialised
efficientnet_lite0 is timed instead (same architecture, same speed) and the table says so.
The ResNet-50 scorer is torchvision's ResNet-50 with random weights behind the same score head and
the same scoring path (``rankiqa.score.Scorer``). Images are seeded random 512x512 arrays (speed
does not depend on content); each cell is the median of --repeats runs after one warm-up.
Peak memory: ``rankiqa score`` on a synthetic 6000x4000 JPEG (and a 600x400 one: the baseline) in a subprocess, max RSS from
``resource.getrusage(RUSAGE_CHILDREN)``, read in a small helper process that starts it: Linux
carries the parent's memory high-water mark into a child started by fork/vfork + exec, so this
(large) benchmark process must not be the direct parent.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from rankiqa.score import DEFAULT_WEIGHTS, Scorer, load_module

PATCH_COUNTS = (1, 5, 30)
BIG_SIZE = (6000, 4000)
SMALL_SIZE = (600, 400)
MEASURE = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def time_scoring(module, images: list[np.ndarray], patches: int, repeats: int) -> float:
    """Median seconds to score ``images`` with ``patches`` patches each (after one warm-up run)."""
    scorer = Scorer(module, patches=patches)
    scorer.score(images)
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        scorer.score(images)
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


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

    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"{args.images} images of 512x512, 224 px patches, median of {args.repeats}\n")
    print("| model | patches/image | patches/s | images/s |\n|---|---|---|---|")
    rates: dict[str, dict[int, float]] = {}
    for name, module in models.items():
        for patches in PATCH_COUNTS:
            seconds = time_scoring(module, images, patches, args.repeats)
            rates.setdefault(name, {})[patches] = args.images * patches / seconds
            print(f"| {name} | {patches} | {args.images * patches / seconds:.1f} | {args.images / seconds:.2f} |")
    ours, resnet = (rates[name] for name in models)
    print("\nspeed-up vs ResNet-50 (patches/s): " + ", ".join(f"{p} patches {ours[p] / resnet[p]:.1f}x" for p in PATCH_COUNTS))
    print()
    for size in (SMALL_SIZE, BIG_SIZE):
        rss, wall, nbytes = peak_rss_of_scoring(model_args, 30, size)
        print(f"{size[0]}x{size[1]} JPEG ({size[0] * size[1] / 1e6:.1f} MP, {nbytes / 2**20:.1f} MiB), "
              f"`rankiqa score {' '.join(model_args)} --patches 30`: peak RSS {rss:.0f} MiB, {wall:.1f} s wall (start included)")

if __name__ == "__main__":
    main()
