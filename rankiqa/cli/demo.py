"""``rankiqa demo``: ranked distortions of the bundled images, scored end to end."""
from __future__ import annotations

import click

from rankiqa.cli.command import Command
from rankiqa.cli.score import model_options


@click.command(cls=Command)
@click.option("--out", default="rankiqa-demo", show_default=True, type=click.Path(file_okay=False), help="Folder for the contact sheet and scores.csv.")
@model_options
@click.option("--patches", default=5, show_default=True, help="Random crops per image (the images are ~256 px).")
@click.option("--seed", default=0, show_default=True, help="Seed of the distortions and patch positions.")
def demo(out, model, weights, patches, seed) -> None:
    """Distort the bundled images at 5 levels, score them, print scores per level and SRCC.

    A good model scores pristine > level 1 > ... > level 5 (SRCC +1). Writes OUT/contact_sheet.png
    with each tile's score and OUT/scores.csv. Runs offline on CPU in well under 2 minutes.

    \b
    Example:
      rankiqa demo --out demo/
    """
    from rankiqa.demo import run_demo
    from rankiqa.errors import UserError
    from rankiqa.models import DEFAULT_WEIGHTS
    from rankiqa.score import load_model

    try:
        scorer = load_model(weights or model, patches=patches, seed=seed)
    except UserError as exc:
        if weights or model != "default" or DEFAULT_WEIGHTS.is_file():
            raise
        click.echo(f"Note: {exc}. Writing the unscored ranked sets only.", err=True)
        scorer = None
    run_demo(scorer, out, seed=seed, log=click.echo)
