"""Compared pairs per second: efficient Siamese ``batch-ranking`` vs naive two-pass ``pairwise``.

Both losses see the same batches and compare the same 15 ordered pairs per ranked set, with the
same shared-weight backbone; ``batch-ranking`` forwards each image once (6 per set), ``pairwise``
forwards both images of every pair (30 per set). Each timed step = forward + backward + Adam step,
on synthetic images (data loading excluded), the two losses' steps interleaved so that a busy
machine slows both alike. Prints a markdown table: median and range over repeats.

    python benchmarks/bench_train.py --backbone efficientnet_lite0 --patch 128 --batch-sets 4
"""
from __future__ import annotations

import argparse
import platform
import statistics
from typing import Callable

import torch

from _timing import time_interleaved
from rankiqa.models import create_model
from rankiqa.train import SiameseRanker

LEVELS_PER_SET = 6
PAIRS_PER_SET = LEVELS_PER_SET * (LEVELS_PER_SET - 1) // 2


def synthetic_batch(batch_sets: int, patch: int, seed: int) -> dict[str, torch.Tensor]:
    """A collated batch in ``RankedSets`` format with random images (timing does not depend on content)."""
    generator = torch.Generator().manual_seed(seed)
    return {
        "images": torch.rand(batch_sets, LEVELS_PER_SET, 3, patch, patch, generator=generator),
        "levels": torch.arange(LEVELS_PER_SET).repeat(batch_sets, 1),
        "reference_id": torch.arange(batch_sets),
        "distortion_id": torch.zeros(batch_sets, dtype=torch.long),
    }


def training_step(loss: str, backbone: str, batch: dict, seed: int) -> Callable[[], None]:
    """One forward + backward + Adam step of a fresh ``loss`` ranker on ``batch`` (weights seeded)."""
    torch.manual_seed(seed)
    model = create_model(backbone)
    ranker = SiameseRanker(model, loss, margin=1.0).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step() -> None:
        value = ranker(batch)
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--patch", type=int, default=128)
    parser.add_argument("--batch-sets", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    batch = synthetic_batch(args.batch_sets, args.patch, args.seed)
    pairs = args.batch_sets * PAIRS_PER_SET
    forwarded = {"batch-ranking": args.batch_sets * LEVELS_PER_SET, "pairwise": 2 * pairs}
    steps = {loss: training_step(loss, args.backbone, batch, args.seed) for loss in ("pairwise", "batch-ranking")}
    times = time_interleaved(steps, args.repeats, args.warmup)
    rows = {loss: (statistics.median(t), min(t), max(t)) for loss, t in times.items()}
    print(f"backbone {args.backbone}, patch {args.patch}, {args.batch_sets} sets/step = {pairs} compared pairs/step, "
          f"{args.threads} threads, median of {args.repeats} steps; {platform.processor() or platform.machine()}, "
          f"torch {torch.__version__}")
    print()
    print("| loss | images forwarded/step | pairs/step | s/step median (min-max) | pairs/s | speed-up |")
    print("|---|---|---|---|---|---|")
    baseline = pairs / rows["pairwise"][0]
    for loss, (median, low, high) in rows.items():
        rate = pairs / median
        print(f"| {loss} | {forwarded[loss]} | {pairs} | {median:.3f} ({low:.3f}-{high:.3f}) | {rate:.1f} | "
              f"{rate / baseline:.2f}x |")


if __name__ == "__main__":
    main()
