"""Zero-shot, ridge probe and fine-tune on the CSIQ samples (10 human-scored images), one table.

The samples are CSIQ image 1600 with white noise and blur at 5 levels each; their DMOS come from
the CSIQ list. They hold ONE reference, so content-disjoint splits are impossible: the CSV gives
every image its own ``reference`` key, which splits by image (train and test share the scene).
Each protocol runs through ``rankiqa benchmark`` with the same ``--patches``/``--seed``; the
zero-shot scores are also evaluated on each split's test images, so all rows compare like with like.

    PYTHONPATH=. .venv/bin/python benchmarks/tiny_protocols.py --data ../shared/data --out /tmp/tiny_bench
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd


def build_csv(data: Path, out: Path) -> Path:
    listed = pd.read_csv(data / "labels" / "lists" / "CSIQ.txt")
    names = listed["dis_img_path"].str.split("/").str[-1]
    samples = data.resolve() / "samples" / "csiq"  # the CSV is read from its own folder: absolute paths
    keep = names.map(lambda name: (samples / name).is_file())
    rows = pd.DataFrame({"path": [str(samples / name) for name in names[keep]], "dmos": listed["score"][keep],
                         "reference": names[keep],  # a group key per image: splits by image
                         "distortion": listed["dis_type"][keep]})
    out.mkdir(parents=True, exist_ok=True)
    rows.to_csv(out / "csiq_samples.csv", index=False)
    return out / "csiq_samples.csv"


def run(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "rankiqa", "benchmark", *args], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the shared data folder (labels/, samples/)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--model", default="default")
    parser.add_argument("--splits", type=int, default=10)
    parser.add_argument("--train", type=float, default=0.5)
    parser.add_argument("--patches", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    csv_path = build_csv(args.data, args.out)
    common = ["--database", "csv", "--root", str(csv_path), "--model", args.model, "--patches", str(args.patches),
              "--splits", str(args.splits), "--train", str(args.train), "--cache", str(args.out / "cache"),
              "--device", "cpu"]
    seconds = {
        "zero-shot": run([*common, "--out", str(args.out / "zero_shot")]),
        "ridge probe": run([*common, "--probe", "ridge", "--out", str(args.out / "ridge")]),
        "fine-tune (linear-probe init)": run([*common, "--probe", "finetune", "--epochs", str(args.epochs),
                                               "--batch-size", "5", "--val-fraction", "0", "--workers", "0",
                                               "--out", str(args.out / "finetune")]),
    }
    from rankiqa.data import load_database, make_splits
    from rankiqa.metrics import srcc

    frame = load_database("csv", csv_path)
    zero = pd.read_csv(args.out / "zero_shot" / "predictions.csv")
    same_splits = [srcc(zero["pred"].to_numpy()[s.test], zero["mos"].to_numpy()[s.test])
                   for s in make_splits(frame, n=args.splits, train=args.train, seed=0)]
    print(f"CSIQ samples: {len(frame)} images, MOS = -DMOS, MOS std {frame['mos'].std(ddof=0):.4f}, "
          f"range {frame['mos'].min():.3f}..{frame['mos'].max():.3f}")
    print()
    print("| protocol | test images per split | SRCC median (mean ± std) | PLCC median | RMSE median (MOS units) | seconds |")
    print("|---|---|---|---|---|---|")
    print(f"| zero-shot, same test halves | {len(make_splits(frame, 1, args.train)[0].test)} | "
          f"{np.median(same_splits):.3f} ({np.mean(same_splits):.3f} ± {np.std(same_splits):.3f}) | – | – | – |")
    for name, folder in (("zero-shot, all images", "zero_shot"), ("ridge probe", "ridge"),
                         ("fine-tune (linear-probe init)", "finetune")):
        row = pd.read_csv(args.out / folder / "table.csv").set_index("subset").loc["ALL"]
        key = name if name in seconds else "zero-shot"
        rmse = "–" if not np.isfinite(row["RMSE_median"]) else f"{row['RMSE_median']:.4f}"
        print(f"| {name} | {row['n_images']:.0f} | {row['SRCC_median']:.3f} ({row['SRCC_mean']:.3f} ± "
              f"{row['SRCC_std']:.3f}) | {row['PLCC_median']:.3f} | {rmse} | {seconds[key]:.0f} |")


if __name__ == "__main__":
    main()
