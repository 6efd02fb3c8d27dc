"""Benchmark `rankiqa generate`: images written per second with 1 and 2 worker processes.

Run from the repository root:

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_generate.py --limit 6

Prints one row per worker count (median over --repeats runs, each into a fresh folder) and checks
that every run wrote byte-identical manifests. --limit takes the first N photos of --src (sorted);
--distortions selects types like the CLI (default all registered).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import distortions
from rankiqa.distortion_table import select_distortions
from rankiqa.generate import find_images, generate

DEFAULT_SRC = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "pristine" / "val"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=DEFAULT_SRC, help="folder of pristine photos")
    parser.add_argument("--limit", type=int, default=6, help="use the first N photos (0 = all)")
    parser.add_argument("--distortions", default="all", help="'all', NAME,NAME or family:NAME")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--repeats", type=int, default=1, help="runs per worker count (median reported)")
    parser.add_argument("--max-side", type=int, default=None, help="downscale photos to this long side")
    parser.add_argument("--format", default="png", choices=["png", "bmp", "jpg"], help="output image format")
    args = parser.parse_args()

    photos = find_images(args.src)[: args.limit or None]
    names = select_distortions(args.distortions)
    with tempfile.TemporaryDirectory(prefix="bench_generate_") as scratch:
        source = Path(scratch) / "src"
        for photo in photos:
            (source / photo).parent.mkdir(parents=True, exist_ok=True)
            (source / photo).symlink_to((args.src / photo).resolve())
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
              f"python {platform.python_version()}")
        print(f"source: {args.src} ({len(photos)} photos), {len(names)} of {len(distortions.names())} types, "
              f"max side {args.max_side}, format {args.format}")
        print(f"{'workers':>7}  {'images':>7}  {'seconds':>8}  {'images/s':>8}  {'spread':>12}")
        manifests = set()
        for workers in (int(w) for w in args.workers.split(",")):
            rates, seconds = [], []
            for repeat in range(args.repeats):
                out = Path(scratch) / f"out_{workers}_{repeat}"
                started = time.perf_counter()
                summary = generate(source, out, distortion_names=names, workers=workers, max_side=args.max_side,
                                   image_format=args.format, progress=False, log=lambda message: None)
                seconds.append(time.perf_counter() - started)
                rates.append(summary.images_written / seconds[-1])
                manifests.add((out / "manifest.csv").read_bytes())
            spread = f"{min(rates):.1f}-{max(rates):.1f}"
            print(f"{workers:>7}  {summary.images_written:>7}  {statistics.median(seconds):>8.1f}  "
                  f"{statistics.median(rates):>8.1f}  {spread:>12}")
        print(f"manifests identical across runs: {len(manifests) == 1}")


if __name__ == "__main__":
    main()
