"""How much does ``--batch-size`` change a score? Prints a table per model (issue 11, defect 15).

The same seeded patches of the bundled images are scored with every batch size in 1..MAX; the
table gives, per model, the largest difference of a per-image score (mean over its patches) and of
a single patch score against batch size 1, absolute and relative to the spread of the scores.
A difference comes from float rounding only: the convolution kernels sum in a different order for
different batch shapes.

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/batch_size_scores.py --max-batch 64
"""
from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from rankiqa.demo import BUNDLED_IMAGES
from rankiqa.score import _seeded_patches, forward_patches, load_model


def measure(model: str, images: list, patches: int, max_batch: int) -> dict[str, float]:
    torch.manual_seed(0)  # an untrained backbone name: the same random weights every run
    scorer = load_model(model, patches=patches)
    crops = np.concatenate([_seeded_patches(image, patches, scorer.patch_size, scorer.seed) for image in images])
    reference = forward_patches(scorer._fast, crops, 1)
    per_image_ref = reference.reshape(len(images), patches).mean(axis=1)
    worst_patch, worst_image, worst_batch = 0.0, 0.0, 1
    for batch in range(2, max_batch + 1):
        got = forward_patches(scorer._fast, crops, batch)
        patch_diff = float(np.abs(got - reference).max())
        image_diff = float(np.abs(got.reshape(len(images), patches).mean(axis=1) - per_image_ref).max())
        if image_diff > worst_image:
            worst_image, worst_batch = image_diff, batch
        worst_patch = max(worst_patch, patch_diff)
    return {"patch": worst_patch, "image": worst_image, "batch": worst_batch,
            "scale": float(np.abs(per_image_ref).max()), "spread": float(np.ptp(per_image_ref))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="default,efficientnet_lite0")
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--patches", type=int, default=30, help="Patches per image (the CLI default).")
    parser.add_argument("--images", type=int, default=2, help="How many bundled images (sorted by name).")
    args = parser.parse_args()
    from rankiqa.imageio import read_rgb

    names = sorted(p for p in BUNDLED_IMAGES.iterdir() if p.suffix == ".png")[: args.images]
    images = [read_rgb(path) for path in names]
    print(f"# {platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} thread(s); "
          f"{len(images)} images x {args.patches} patches, batch sizes 1..{args.max_batch} vs 1")
    print("| model | max |score diff| per image | at batch | max |diff| per patch | max |score| | score range |")
    print("|---|---|---|---|---|---|")
    for model in args.models.split(","):
        start = time.perf_counter()
        row = measure(model, images, args.patches, args.max_batch)
        print(f"| {model} | {row['image']:.2e} | {row['batch']} | {row['patch']:.2e} | {row['scale']:.3f} | "
              f"{row['spread']:.3f} |  ({time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
