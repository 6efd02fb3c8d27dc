"""The default model's measured goals, for two models side by side (e.g. v1 -> v2).

Run from the repository root (needs ../shared/data; about 10 min for two models on 2 CPU cores):

    .venv/bin/python benchmarks/compare_models.py --model v1=runs/v1.pt --model v2=rankiqa/assets/default.pt

Kodak24 (``pristine/val``, never trained on) is distorted with every single type at 5 levels
(``distortions.apply_levels``, seed from photo and type, as ``rankiqa generate --seed 0``).

1. Cross-type agreement: every Kodak24 (photo, type, level) image that has a human target
   (``rankiqa/assets/calibration_kadid10k.csv``) is scored with the scoring protocol (``--patches``
   seeded 224 px crops, mean); SRCC between score and target over all of them at once: do scores
   order a JPEG level against a blur level and one photo against another like people do?
   With a calibrated model, also PLCC and RMSE of its MOS output against the targets.
2. Within-set ranking on all 840 Kodak24 sets with the training protocol (one 160 px crop per set,
   photos downscaled to 512 px, as ``benchmarks/validate_ranking.py``): mean SRCC per set, per type.
3. Human scores that exist here: CSIQ image 1600's AWGN and BLUR series (SRCC with -DMOS, 30
   patches), and TID2013's ``i01_01_5.bmp`` (white noise level 5) against its reference ``I01.BMP``
   and our own worst white-noise level of that reference.
4. Scoring speed (``--speed-only`` measures just this): patches/s of the scoring protocol (30
   patches per 512x512 synthetic image, 4 images a run), the models taking turns, median of 5 runs.
Prints markdown tables.
"""
from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import pearsonr, spearmanr

import distortions
from rankiqa.calibration import load_targets
from rankiqa.data import RankedSets
from rankiqa.generate import distortion_seed
from rankiqa.imageio import read_rgb
from rankiqa.models import model_from_checkpoint
from rankiqa.score import Scorer
from rankiqa.train import evaluate_ranking

from check_default_model import csiq_order  # the CSIQ 1600 check of the model card, shared

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def cross_type(scorers: dict[str, Scorer], photos: list[Path], types: list[str], seed: int) -> dict[str, dict]:
    """Per model: scores and targets of every Kodak image with a target, and the agreement stats."""
    table = load_targets()
    raw: dict[str, list[float]] = {name: [] for name in scorers}
    targets: list[float] = []
    kinds: list[str] = []
    for photo in photos:
        rgb = read_rgb(photo)
        for name in types:
            wanted = [level for level in range(1, 6) if (name, level) in table]
            if not wanted:
                continue
            levels = distortions.apply_levels(rgb, name, seed=distortion_seed(seed, photo.name, name))
            images = [levels[level - 1] for level in wanted]
            targets += [table[(name, level)].mos for level in wanted]
            kinds += [name] * len(wanted)
            for label, scorer in scorers.items():
                raw[label] += scorer.score(images)
    out = {}
    target_array = np.asarray(targets)
    for label, scorer in scorers.items():
        scores = np.asarray(raw[label])
        row = {"images": len(scores), "srcc": spearmanr(scores, target_array)[0]}
        per_type = [spearmanr(scores[np.asarray(kinds) == k], target_array[np.asarray(kinds) == k])[0]
                    for k in dict.fromkeys(kinds)]
        row["within_type_srcc"] = float(np.nanmean(per_type))
        if scorer.calibration is not None:
            mos = np.asarray(scorer.to_mos(scores))
            row["plcc_mos"] = pearsonr(mos, target_array)[0]
            row["rmse_mos"] = float(np.sqrt(np.mean((mos - target_array) ** 2)))
        out[label] = row
    return out


def within_set(modules: dict[str, torch.nn.Module], root: Path, seed: int) -> dict[str, tuple[dict, list[dict]]]:
    dataset = RankedSets(root / "pristine" / "val", patch_size=160, seed=seed, max_side=512)
    return {label: evaluate_ranking(module, dataset, torch.device("cpu"), workers=1) for label, module in modules.items()}


def human_samples(scorers: dict[str, Scorer], root: Path, seed: int) -> dict[str, dict]:
    tid = root / "samples" / "tid2013"
    reference = read_rgb(tid / "I01.BMP")
    worst_noise = distortions.apply_levels(reference, "white_noise", seed=distortion_seed(seed, "I01.BMP", "white_noise"))[-1]
    out = {}
    for label, scorer in scorers.items():
        row = {series["series"]: series["srcc"] for series in csiq_order(scorer, root)}
        row["tid"] = scorer.score([reference, tid / "i01_01_5.bmp", worst_noise])
        out[label] = row
    return out


def scoring_speed(scorers: dict[str, Scorer], repeats: int = 5) -> dict[str, float]:
    """Median patches/s of each scorer on the same 4 synthetic 512x512 images, scorers taking turns."""
    images = [np.random.default_rng(i).integers(0, 256, (512, 512, 3), dtype=np.uint8) for i in range(4)]
    times: dict[str, list[float]] = {label: [] for label in scorers}
    for label, scorer in scorers.items():
        scorer.score(images[:1])  # warm-up
    for _ in range(repeats):
        for label, scorer in scorers.items():
            start = time.perf_counter()
            scorer.score(images)
            times[label].append(time.perf_counter() - start)
    return {label: len(images) * scorer.patches / float(np.median(times[label])) for label, scorer in scorers.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, metavar="LABEL=CHECKPOINT",
                        help="a model to measure (repeat: the first is the baseline)")
    parser.add_argument("--data", type=Path, default=SHARED)
    parser.add_argument("--patches", type=int, default=5, help="patches per image for the cross-type images")
    parser.add_argument("--limit", type=int, default=None, help="first N Kodak24 photos only (quick look)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--speed-only", action="store_true", help="measure only the scoring speed")
    args = parser.parse_args()

    start = time.perf_counter()
    modules = {label: model_from_checkpoint(path).float() for label, path in (m.split("=", 1) for m in args.model)}
    speed = scoring_speed({k: Scorer(m, patches=30, seed=args.seed) for k, m in modules.items()})
    speed_row = "| scoring speed, patches/s (30 patches, 512 px, median of 5) | " + " | ".join(
        f"{speed[k]:.1f}" for k in modules) + " |"
    if args.speed_only:
        print(f"models: {', '.join(args.model)}; torch {torch.__version__}, {torch.get_num_threads()} threads\n")
        print("| measure | " + " | ".join(modules) + " |\n|---|" + "---|" * len(modules))
        print(speed_row)
        return
    photos = sorted((args.data / "pristine" / "val").glob("*.png"))[: args.limit]
    types = distortions.names(composed=False)
    agreement = cross_type({k: Scorer(m, patches=args.patches, seed=args.seed) for k, m in modules.items()},
                           photos, types, args.seed)
    ranking = within_set(modules, args.data, args.seed)
    samples = human_samples({k: Scorer(m, patches=30, seed=args.seed) for k, m in modules.items()}, args.data, args.seed)
    labels = list(modules)

    print(f"models: {', '.join(args.model)}; {platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; {time.perf_counter() - start:.0f} s\n")
    head = "| measure | " + " | ".join(labels) + " |\n|---|" + "---|" * len(labels)
    print(head)
    first = agreement[labels[0]]
    print(f"| cross-type SRCC with human targets, Kodak24 ({first['images']} images, {args.patches} patches) | "
          + " | ".join(f"{agreement[k]['srcc']:.3f}" for k in labels) + " |")
    print("| mean within-type SRCC with targets | " + " | ".join(f"{agreement[k]['within_type_srcc']:.3f}" for k in labels) + " |")
    print("| calibrated MOS vs target: PLCC / RMSE (MOS points) | " + " | ".join(
        f"{agreement[k]['plcc_mos']:.3f} / {agreement[k]['rmse_mos']:.3f}" if "plcc_mos" in agreement[k] else "no scale"
        for k in labels) + " |")
    print(f"| within-set SRCC, all {ranking[labels[0]][0]['sets']} Kodak24 sets (patch 160) | "
          + " | ".join(f"{ranking[k][0]['srcc']:.3f}" for k in labels) + " |")
    print("| within-set pair accuracy | " + " | ".join(f"{ranking[k][0]['pair_accuracy']:.3f}" for k in labels) + " |")
    for series in ("AWGN", "BLUR"):
        print(f"| CSIQ 1600 {series}: SRCC with -DMOS | " + " | ".join(f"{samples[k][series]:.3f}" for k in labels) + " |")
    print("| TID2013 I01: reference > i01_01_5 > our white_noise L5 | " + " | ".join(
        f"{'yes' if samples[k]['tid'][0] > samples[k]['tid'][1] > samples[k]['tid'][2] else 'NO'} "
        f"({', '.join(f'{v:.2f}' for v in samples[k]['tid'])})" for k in labels) + " |")
    print(speed_row)
    print("\nWithin-set SRCC per type (all Kodak24 sets, patch 160):\n")
    print("| type | " + " | ".join(labels) + " |\n|---|" + "---|" * len(labels))
    per_type = {k: {row["distortion"]: row["srcc"] for row in ranking[k][1]} for k in labels}
    for name in per_type[labels[0]]:
        print(f"| {name} | " + " | ".join(f"{per_type[k][name]:.3f}" for k in labels) + " |")


if __name__ == "__main__":
    main()
