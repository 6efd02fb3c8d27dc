"""``rankiqa train``: Siamese rank pre-training on ranked distortion sets (resumable, multi-GPU)."""
from __future__ import annotations

import sys

import click

from rankiqa.calibration import TARGET_SETS
from rankiqa.cli.command import Command, library_defaults
from rankiqa.models import list_backbones
from rankiqa.train import DEFAULT_STEPS, LOSSES, SCHEDULES, TARGET_LOSSES, TARGET_MARGIN_FLOOR, TrainConfig

DEFAULT = library_defaults(TrainConfig)


@click.command(cls=Command, flags={"distortions": "--distortions"})
@click.option("--data", type=click.Path(), default=None, help="A generated OUT_DIR (with manifest.csv).")
@click.option("--pristine", type=click.Path(), default=None, help="A folder of photos, distorted on the fly.")
@click.option("--backbone", default=DEFAULT["backbone"], show_default=True, help=", ".join(list_backbones()) + ".")
@click.option("--pretrained", is_flag=True, help="Start from ImageNet weights (efficientnet_lite0: offline).")
@click.option("--loss", type=click.Choice(LOSSES), default=DEFAULT["loss"], show_default=True,
              help="Ranking objective (see rankiqa.losses).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run folder to write.")
@click.option("--steps", type=int, default=None, help=f"Optimiser steps [default: {DEFAULT_STEPS} unless --epochs].")
@click.option("--epochs", type=int, default=None, help="Passes over the training sets (if --steps is not given).")
@click.option("--lr", type=float, default=DEFAULT["lr"], show_default=True,
              help="Adam learning rate (cosine decay to 1%).")
@click.option("--schedule", type=click.Choice(SCHEDULES), default=DEFAULT["schedule"], show_default=True)
@click.option("--weight-decay", type=float, default=DEFAULT["weight_decay"], show_default=True)
@click.option("--batch-sets", type=int, default=DEFAULT["batch_sets"], show_default=True,
              help="Ranked sets (6 images each) per step and process.")
@click.option("--patch", type=int, default=DEFAULT["patch"], show_default=True, help="Patch side in pixels.")
@click.option("--margin", type=float, default=DEFAULT["margin"], show_default=True,
              help="Hinge margin in score units (trained scores end up ~margin apart per level).")
@click.option("--cross-reference", is_flag=True, help="batch-ranking: also rank across references of one type.")
@click.option("--dropout", type=float, default=DEFAULT["dropout"], show_default=True, help="Dropout before the score head.")
@click.option("--distortions", "distortion_spec", default="all", show_default=True,
              help="'all' (single types; composed presets by name or family:composed), comma-separated "
                   "names, or 'family:NAME' (see `rankiqa distortions list`).")
@click.option("--max-side", type=int, default=None, metavar="PX", help="--pristine: downscale photos to PX first.")
@click.option("--distort-crops", is_flag=True, help="--pristine: distort only the patch (much faster).")
@click.option("--val-fraction", type=float, default=DEFAULT["val_fraction"], show_default=True,
              help="Share of references held out for validation (0 = none).")
@click.option("--val-data", type=click.Path(), default=None, help="Validate on this generated OUT_DIR instead.")
@click.option("--val-pristine", type=click.Path(), default=None, help="Validate on this photo folder instead.")
@click.option("--val-every", type=int, default=DEFAULT["val_every"], show_default=True,
              help="Validate and checkpoint every N steps.")
@click.option("--val-sets", type=int, default=None, help="Validate on at most N sets (evenly spaced).")
@click.option("--workers", type=int, default=DEFAULT["workers"], show_default=True, help="DataLoader worker processes.")
@click.option("--device", default=DEFAULT["device"], show_default=True, help="auto, cpu, cuda, cuda:1, mps, ...")
@click.option("--threads", type=int, default=None, help="torch threads [default: cores / local processes].")
@click.option("--targets", type=click.Choice(sorted(TARGET_SETS)), default=DEFAULT["targets"],
              help="Also rank images of different sets by human MOS targets (KADID-10k; see docs/calibration.md) "
                   "and fit a calibrated 1-5 output scale.")
@click.option("--target-loss", type=click.Choice(TARGET_LOSSES), default=DEFAULT["target_loss"], show_default=True,
              help="--targets: hinge with a margin growing with the MOS difference, or regression onto the MOS.")
@click.option("--target-weight", type=float, default=DEFAULT["target_weight"], show_default=True,
              help="--targets: weight of that term.")
@click.option("--target-scale", type=float, default=DEFAULT["target_scale"], show_default=True,
              help="--targets: score units per MOS point (margin per MOS point of difference).")
@click.option("--target-margins", is_flag=True,
              help="--targets with batch-ranking: within-set margins follow the MOS difference (scale x difference, "
                   f"at least {TARGET_MARGIN_FLOOR} x --margin) instead of a uniform --margin.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from last.pt.")
@click.option("--seed", type=int, default=DEFAULT["seed"], show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train(distortion_spec: str, quiet: bool, **options) -> None:
    """Train a quality model to rank distortion levels (RankIQA pre-training).

    Writes OUT/config.json, metrics.csv, val_per_type.csv, last.pt, best.pt and curves.png.
    Resume after a crash with the same command plus --resume. Multi-GPU or multi-node:
    `torchrun --nproc_per_node=N -m rankiqa train ...` (each process takes --batch-sets sets).

    \b
    Example:
      rankiqa train --pristine photos/ --backbone efficientnet_lite0 --pretrained \\
          --loss batch-ranking --steps 2000 --patch 224 --out runs/rank
    """
    from rankiqa.distortion_table import select_distortions
    from rankiqa.train import train as run_training

    distortions = None if distortion_spec.strip() == "all" else tuple(select_distortions(distortion_spec))
    result = run_training(TrainConfig(distortions=distortions, **options), progress=not quiet)
    if result.interrupted:
        click.echo(f"interrupted at step {result.step}/{result.total_steps}; continue with --resume", err=True)
        sys.exit(130)
    if result.rank:
        return
    best = "n/a" if result.best_srcc is None else f"{result.best_srcc:.4f}"
    what = "best val (SRCC + SRCC with targets)/2" if options.get("targets") else "best val SRCC"
    click.echo(f"done: {result.step} steps, {result.sets_per_second:.2f} sets/s, {what} {best}, "
               f"run in {result.run_dir}")
