"""Measure the numbers of the default model's card: Kodak24 ranked-set SRCC per type, CSIQ order.

Run from the repository root (needs ../shared/data; all 35 types take ~20 min on 2 busy CPU cores,
use --types or --limit for a quick look):

    .venv/bin/python benchmarks/check_default_model.py                      # rankiqa/assets/default.pt
    .venv/bin/python benchmarks/check_default_model.py --weights runs/default/best.pt

1. Kodak24 ranked sets (the validation photos, never trained on): for each photo and type, the
   pristine image and its 5 levels (``distortions.apply_levels``, seed from photo and type) are
   scored with the scoring protocol (``--patches`` seeded 224 px crops, mean). SRCC of the 6 scores
   against the quality order (pristine best) per set, averaged over the 24 photos: +1 = ordered.
2. CSIQ image 1600 (``samples/csiq``): the 5 AWGN and 5 BLUR levels scored with 30 patches; SRCC
   of score against -DMOS (``labels/lists/CSIQ.txt``, lower DMOS = better) per series: +1 = the
   model orders the series like the human observers.
Prints markdown tables to paste into rankiqa/assets/MODEL_CARD.md.
"""
from __future__ import annotations

import argparse
import csv
import platform
import time
from pathlib import Path

import numpy as np
import torch

import distortions
from rankiqa.distortion_table import select_distortions
from rankiqa.generate import distortion_seed
from rankiqa.imageio import read_rgb
from rankiqa.metrics import srcc
from rankiqa.score import load_model

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CSIQ_SERIES = ("AWGN", "BLUR")
QUALITY_ORDER = -np.arange(distortions.NUM_LEVELS + 1)


def kodak_srcc_per_type(scorer, photos: list[Path], types: list[str], seed: int) -> dict[str, list[float]]:
    """Per type: one SRCC per photo between the 6 scores (pristine, levels 1..5) and quality order."""
    out: dict[str, list[float]] = {name: [] for name in types}
    for photo in photos:
        rgb = read_rgb(photo)
        pristine = scorer.score(rgb)
        for name in types:
            levels = distortions.apply_levels(rgb, name, seed=distortion_seed(seed, photo.name, name))
            out[name].append(srcc([pristine, *scorer.score(levels)], QUALITY_ORDER))
    return out


def csiq_order(scorer, root: Path) -> list[dict]:
    """Per CSIQ series: DMOS and scores by level, and SRCC(score, -DMOS)."""
    with open(root / "labels" / "lists" / "CSIQ.txt", newline="") as handle:
        dmos = {Path(row["dis_img_path"]).name: float(row["score"]) for row in csv.DictReader(handle)}
    rows = []
    for series in CSIQ_SERIES:
        names = [f"1600.{series}.{level}.png" for level in range(1, 6)]
        scores = scorer.score([root / "samples" / "csiq" / name for name in names])
        truth = [dmos[name] for name in names]
        rows.append({"series": series, "dmos": truth, "scores": scores, "srcc": srcc(scores, -np.asarray(truth))})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="default", help="checkpoint path, or 'default' (bundled)")
    parser.add_argument("--data", type=Path, default=SHARED, help="the shared data folder")
    parser.add_argument("--types", default="all", help="distortion types for the Kodak24 sets (as the CLI)")
    parser.add_argument("--patches", type=int, default=5, help="patches per image for the Kodak24 sets")
    parser.add_argument("--limit", type=int, default=None, help="first N Kodak24 photos only (quick look)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    start = time.perf_counter()
    photos = sorted((args.data / "pristine" / "val").glob("*.png"))[: args.limit]
    types = select_distortions(args.types)
    kodak = kodak_srcc_per_type(load_model(args.weights, patches=args.patches, seed=args.seed), photos, types, args.seed)
    csiq = csiq_order(load_model(args.weights, patches=30, seed=args.seed), args.data)

    print(f"weights: {args.weights}; {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; {time.perf_counter() - start:.0f} s")
    print(f"\nKodak24 ranked sets ({len(photos)} photos x pristine + 5 levels, {args.patches} patches/image, seed {args.seed}):\n")
    print("| type | SRCC mean | SRCC min | sets ordered perfectly |\n|---|---|---|---|")
    for name in types:
        values = np.asarray(kodak[name])
        print(f"| {name} | {values.mean():.3f} | {values.min():.3f} | {int((values > 0.999).sum())}/{len(values)} |")
    overall = np.mean([np.mean(v) for v in kodak.values()])
    print(f"| **all types (mean)** | **{overall:.3f}** | | |")
    print("\nCSIQ image 1600 (30 patches/image; SRCC of score vs -DMOS, +1 = same order as humans):\n")
    print("| series | DMOS L1..L5 | score L1..L5 | SRCC |\n|---|---|---|---|")
    for row in csiq:
        dmos = ", ".join(f"{v:.3f}" for v in row["dmos"])
        scores = ", ".join(f"{v:.3f}" for v in row["scores"])
        print(f"| {row['series']} | {dmos} | {scores} | {row['srcc']:.3f} |")


if __name__ == "__main__":
    main()
