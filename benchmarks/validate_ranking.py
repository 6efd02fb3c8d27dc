"""Validation SRCC of a rank-trained model on ranked sets, per distortion type (training protocol).

Every (photo, type) set of ``--pristine`` (pristine + 5 levels, all cropped at the same seeded
``--patch`` px location, as ``rankiqa train`` validates) is scored once; SRCC between the 6 scores and
the quality order, averaged over sets (+1 = every set perfectly ordered). Prints a markdown table.

    .venv/bin/python benchmarks/validate_ranking.py --weights runs/default/best.pt \\
        --pristine ../shared/data/pristine/val --patch 160 --max-side 512
"""
from __future__ import annotations

import argparse
import time

import torch

from rankiqa.data import RankedSets
from rankiqa.models import model_from_checkpoint
from rankiqa.train import evaluate_ranking


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True, help="a rankiqa checkpoint")
    parser.add_argument("--pristine", required=True, help="folder of validation photos (never trained on)")
    parser.add_argument("--patch", type=int, default=224)
    parser.add_argument("--max-side", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()

    start = time.perf_counter()
    model = model_from_checkpoint(args.weights).float()
    dataset = RankedSets(args.pristine, patch_size=args.patch, seed=args.seed, max_side=args.max_side)
    overall, per_type = evaluate_ranking(model, dataset, torch.device("cpu"), workers=args.workers)
    print(f"weights {args.weights}: {len(dataset)} sets ({len(dataset.references)} photos x "
          f"{len(dataset.distortion_names)} types), patch {args.patch}, {time.perf_counter() - start:.0f} s\n")
    print("| type | sets | SRCC | pair accuracy |\n|---|---|---|---|")
    for row in per_type:
        print(f"| {row['distortion']} | {row['sets']} | {row['srcc']:.3f} | {row['pair_accuracy']:.3f} |")
    print(f"| **all** | {overall['sets']} | **{overall['srcc']:.3f}** | **{overall['pair_accuracy']:.3f}** |")


if __name__ == "__main__":
    main()
