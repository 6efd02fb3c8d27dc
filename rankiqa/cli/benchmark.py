"""``rankiqa benchmark``: the RankIQA paper's evaluation table for one or two IQA databases."""
from __future__ import annotations

import click

from rankiqa.benchmark import PROBES, run_benchmark
from rankiqa.cli.command import Command, library_defaults
from rankiqa.cli.finetune import finetune_config, finetune_options
from rankiqa.data.databases import list_databases

DEFAULT = library_defaults(run_benchmark)


@click.command(cls=Command, flags={"databases": "--database", "eval_patches": "--patches", "train": "--train"})
@click.option("--database", "names", required=True, multiple=True,
              type=click.Choice(list_databases(), case_sensitive=False),
              help="Database; give it twice for cross-database evaluation (train on the first, test on the second).")
@click.option("--root", "roots", required=True, multiple=True, type=click.Path(),
              help="Database folder as shipped (CSV file for 'csv'); one per --database, same order.")
@click.option("--weights", type=click.Path(dir_okay=False), help="Checkpoint to evaluate (or to fine-tune from).")
@click.option("--model", help="Named model instead of --weights: 'default' or a backbone name (e.g. tiny).")
@click.option("--probe", type=click.Choice(PROBES, case_sensitive=False), default=None,
              help="Protocol: none (zero-shot, the default), ridge (frozen features + ridge regression per split) "
                   "or finetune (fine-tune per split).")
@click.option("--finetune", "finetune_models", is_flag=True, help="Same as --probe finetune.")
@click.option("--splits", default=DEFAULT["splits"], show_default=True,
              help="Random content-disjoint splits (ridge, finetune).")
@click.option("--train", "train_fraction", default=DEFAULT["train_fraction"], show_default=True,
              help="Share of references for training.")
@click.option("--patches", default=DEFAULT["patches"], show_default=True, help="Crops per image when scoring.")
@click.option("--patch-size", default=DEFAULT["patch_size"], show_default=True, help="Crop side in pixels.")
@click.option("--seed", default=DEFAULT["seed"], show_default=True, help="Seed of the splits and crops.")
@click.option("--out", "out_dir", default="benchmark_out", show_default=True, type=click.Path(file_okay=False),
              help="Folder for table.md, table.csv, per_split.csv, predictions.csv, scatter.png, runs/.")
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False),
              help="Zero-shot prediction and probe feature cache [default: $RANKIQA_CACHE or ~/.cache/rankiqa/predictions].")
@click.option("--report", is_flag=True, help="Also write OUT/report.html: table, scatter plot, per-type SRCC bars, CSV links.")
@finetune_options
def benchmark(names: tuple[str, ...], roots: tuple[str, ...], weights: str | None, model: str | None,
              probe: str | None, finetune_models: bool, splits: int, train_fraction: float, patches: int,
              patch_size: int, seed: int, out_dir: str, cache_dir: str | None, report: bool, **options) -> None:
    """Score a database zero-shot, probe frozen features with ridge regression, or fine-tune per
    split, and print the paper's table.

    Metrics: SRCC, KRCC, PLCC and RMSE (raw, and after the 5-parameter logistic); overall and per
    distortion type; median and mean ± std over splits. Zero-shot predictions and probe features
    are cached. Warnings are listed under the table and written to OUT/warnings.txt.

    \b
    Examples:
      rankiqa benchmark --database tid2013 --root ~/data/tid2013 --weights rank_tid2013.pt
      rankiqa benchmark --database live --root ~/data/databaserelease2 --model default --probe ridge
      rankiqa benchmark --database live --root ~/data/databaserelease2 --weights rank_live.pt --finetune --splits 10
      rankiqa benchmark --database kadid10k --root ~/data/kadid10k --database tid2013 --root ~/data/tid2013 \\
          --weights rank.pt --finetune
    """
    if (weights is None) == (model is None):
        raise click.UsageError("give exactly one of --weights CHECKPOINT or --model NAME")
    if len(names) != len(roots):
        raise click.UsageError(f"give one --root per --database ({len(names)} databases, {len(roots)} roots)")
    result = run_benchmark(
        list(zip(names, roots)), weights or model, out_dir, probe=probe, finetune_models=finetune_models, splits=splits,
        train_fraction=train_fraction, patches=patches, patch_size=patch_size, seed=seed,
        finetune_config=finetune_config(**options), cache_dir=cache_dir, report=report)
    click.echo(result.markdown)
    click.echo(f"wrote {out_dir}/table.md, table.csv, per_split.csv, predictions.csv, scatter.png, warnings.txt"
               + (", report.html" if report else ""))
