"""``rankiqa finetune``: regress a ranking model's score onto an IQA database's MOS."""
from __future__ import annotations

import functools

import click

from rankiqa.cli.command import Command, library_defaults
from rankiqa.data.databases import list_databases
from rankiqa.data.splits import make_splits
from rankiqa.finetune import HEAD_INITS, LOSSES, FinetuneConfig

DEFAULT = library_defaults(FinetuneConfig)


def finetune_options(command):
    """Options shared by ``finetune`` and ``benchmark --finetune`` (see ``rankiqa.finetune.FinetuneConfig``)."""
    options = [
        click.option("--loss", type=click.Choice(LOSSES), default=DEFAULT["loss"], show_default=True,
                     help="Regression loss on MOS normalised to [0, 1]."),
        click.option("--epochs", default=DEFAULT["epochs"], show_default=True, help="Passes over the training images."),
        click.option("--batch-size", default=DEFAULT["batch_size"], show_default=True, help="Images per step."),
        click.option("--lr", default=DEFAULT["lr"], show_default=True, help="Adam learning rate."),
        click.option("--val-fraction", default=DEFAULT["val_fraction"], show_default=True,
                     help="Share of the training references held out for model selection (0 = last epoch)."),
        click.option("--workers", type=click.IntRange(min=0), default=None,
                     help="Data-loading processes [default: min(4, CPUs - 1)]."),
        click.option("--head-init", type=click.Choice(HEAD_INITS), default=DEFAULT["head_init"], show_default=True,
                     help="Before training, fit the score head to the MOS by a ridge linear probe (none: keep it)."),
        click.option("--device", default=DEFAULT["device"], show_default=True, help="auto, cpu, cuda, cuda:1, mps, ..."),
    ]
    return functools.reduce(lambda wrapped, option: option(wrapped), reversed(options), command)


def finetune_config(**options):
    """A ``FinetuneConfig`` from the CLI option values (names as in ``finetune_options``)."""
    if options.get("workers") is None:
        options.pop("workers", None)  # FinetuneConfig sizes it to the machine
    return FinetuneConfig(**options)


@click.command(cls=Command, flags={"eval_patches": "--patches", "train": "--train"})
@click.option("--database", required=True, type=click.Choice(list_databases(), case_sensitive=False),
              help="Database to fine-tune on.")
@click.option("--root", required=True, type=click.Path(), help="Database folder as shipped (CSV file for 'csv').")
@click.option("--init", required=True, help="Checkpoint to start from ('default' or a backbone name also work).")
@click.option("--out", "run_dir", required=True, type=click.Path(file_okay=False), help="Run folder to write.")
@click.option("--split", default=0, show_default=True, help="Which random content-disjoint split (0-based).")
@click.option("--train", "train_fraction", default=library_defaults(make_splits)["train"], show_default=True,
              help="Share of references for training.")
@click.option("--patch-size", default=DEFAULT["patch_size"], show_default=True, help="Crop side in pixels.")
@click.option("--patches", default=DEFAULT["eval_patches"], show_default=True, help="Crops per image when scoring.")
@click.option("--seed", default=DEFAULT["seed"], show_default=True, help="Seed of the splits, crops and shuffling.")
@finetune_options
def finetune(database: str, root: str, init: str, run_dir: str, split: int, train_fraction: float,
             patch_size: int, patches: int, seed: int, **options) -> None:
    """Fine-tune a ranking model on a database's MOS and test it on a held-out split.

    Split SPLIT is the one `rankiqa benchmark --finetune` uses at the same seed; model selection
    uses references carved from the training part. Writes best.pt, test_predictions.csv,
    metrics.json and history.csv to --out; running it again resumes.

    \b
    Example:
      rankiqa finetune --database live --root ~/data/databaserelease2 \\
          --init runs/rank_live/best.pt --out runs/ft_live_split0 --split 0
    """
    from rankiqa.data import load_database
    from rankiqa.metrics import per_split_metrics, summarise, to_markdown
    from rankiqa.finetune import finetune as run_finetune

    if split < 0:
        raise click.BadParameter(f"must be >= 0, got {split}", param_hint="--split")
    frame = load_database(database, root)
    chosen = make_splits(frame, n=split + 1, train=train_fraction, seed=seed)[split]
    config = finetune_config(patch_size=patch_size, eval_patches=patches, seed=seed, **options)
    result = run_finetune(frame.iloc[chosen.train], frame.iloc[chosen.test], init, run_dir, config)
    table = summarise(per_split_metrics(result.predictions.assign(split=split)))
    click.echo(to_markdown(table, f"{database} split {split}, fine-tuned from {init}"))
    click.echo(f"wrote {result.run_dir}")
