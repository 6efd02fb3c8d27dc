"""``rankiqa generate``: ranked datasets (pristine + 5 levels per photo and type), resumable and sharded."""
from __future__ import annotations

import os

import click

from rankiqa.cli.command import Command, cli_flags
from rankiqa.cli.engine import engine_options


@click.command(cls=Command, flags={"distortion_names": "--distortions"})
@click.argument("src_dir", required=False, type=click.Path(file_okay=False))
@click.argument("out_dir", required=False, type=click.Path(file_okay=False))
@click.option("--distortions", "distortion_spec", default="all", show_default=True,
              help="'all' (single types; composed presets by name or family:composed), comma-separated "
                   "names, or 'family:NAME' (see `rankiqa distortions list`).")
@click.option("--seed", default=0, show_default=True, type=int, help="Base seed; per-image seeds derive from it.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1),
              help="Worker processes (--engine ray without --address: CPUs of the local Ray instance, default all).")
@click.option("--shard", default="1/1", show_default=True, metavar="K/N",
              help="Process only part K of N (one per machine), then join with --merge.")
@click.option("--max-side", type=click.IntRange(min=64), default=None, metavar="PX",
              help="Downscale photos so their long side is at most PX pixels.")
@click.option("--format", "image_format", type=click.Choice(["png", "bmp", "jpg"]), default="png", show_default=True,
              help="Output format; png and bmp are lossless, jpg re-encodes (warned).")
@click.option("--merge", "merge_dir", metavar="OUT_DIR", type=click.Path(file_okay=False), default=None,
              help="Join the finished shards of OUT_DIR into manifest.csv (no generation).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@engine_options
def generate(src_dir, out_dir, distortion_spec, seed, workers, shard, max_side, image_format, merge_dir, quiet,
             engine, address) -> None:
    """Write the pristine copy and 5 distortion levels of every photo in SRC_DIR, with OUT_DIR/manifest.csv.

    Re-run the same command after an interruption to finish what is missing. Unusable files are
    listed in OUT_DIR/skipped.csv. For N machines: run with --shard K/N (K = 1..N) into one
    OUT_DIR (or copy the OUT_DIRs together), then `rankiqa generate --merge OUT_DIR`.

    \b
    Example:
      rankiqa generate photos/ ranked/ --distortions gaussian_blur,white_noise --workers 4
      rankiqa generate photos/ ranked/ --shard 1/2   # machine 1; machine 2 runs --shard 2/2
      rankiqa generate --merge ranked/
      rankiqa generate /shared/photos /shared/ranked --engine ray --address head:6379
    """
    from rankiqa.errors import UserError
    from rankiqa.generate import generate as run_generate
    from rankiqa.generate import merge_shards, parse_shard

    if merge_dir is not None:
        if src_dir or out_dir:
            raise UserError("--merge OUT_DIR takes no SRC_DIR/OUT_DIR arguments")
        with cli_flags(out_dir="--merge"):
            click.echo(f"merged: {merge_shards(merge_dir)}")
        return
    if not src_dir or not out_dir:
        raise UserError("expected SRC_DIR and OUT_DIR (or --merge OUT_DIR); see `rankiqa generate --help`")
    from rankiqa.distortion_table import select_distortions

    if engine == "ray" and click.get_current_context().get_parameter_source("workers").name == "DEFAULT":
        workers = os.cpu_count() or 1

    summary = run_generate(
        src_dir,
        out_dir,
        distortion_names=select_distortions(distortion_spec),
        seed=seed,
        workers=workers,
        shard=parse_shard(shard),
        max_side=max_side,
        image_format=image_format,
        progress=not quiet,
        engine=engine,
        address=address,
    )
    click.echo(f"done: {summary}")
