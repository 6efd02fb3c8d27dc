"""``rankiqa distortions``: list the registered types, draw a contact sheet."""
from __future__ import annotations

import click

from rankiqa.cli.command import Group


@click.group(cls=Group)
def distortions() -> None:
    """List the distortion types or draw a contact sheet of their 5 levels."""


@distortions.command("list")
@click.option("--format", "fmt", type=click.Choice(["table", "markdown", "csv"]), default="table", show_default=True)
def list_(fmt: str) -> None:
    """Print every distortion type: name, family, the 5 level values, the human MOS target of each
    level (KADID-10k, 1-5, higher is better; '-' where no database image was made with it), description.

    \b
    Example:
      rankiqa distortions list --format markdown
    """
    from rankiqa.distortion_table import distortion_table

    click.echo(distortion_table(fmt))


@distortions.command()
@click.argument("image", type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="PNG file to write.")
@click.option("--names", default="all", show_default=True, help="Comma-separated types, 'family:NAME' or 'all'.")
@click.option("--seed", default=0, show_default=True, help="Random seed for the random fields.")
@click.option("--tile", default=160, show_default=True, type=click.IntRange(16, 2048), help="Thumbnail long side in pixels (16-2048).")
def show(image: str, out: str, names: str, seed: int, tile: int) -> None:
    """Write a contact sheet: rows are types, columns are pristine + levels 1..5; each tile's caption
    gives the level's parameter and its human MOS target (KADID-10k, 1-5, higher is better).

    \b
    Example:
      rankiqa distortions show photo.png --out sheet.png --names gaussian_blur,white_noise
    """
    from distortions.sheet import contact_sheet, level_captions
    from rankiqa.distortion_table import human_targets, mos_caption, select_distortions
    from rankiqa.imageio import read_rgb, write_image

    if tile < 16:
        raise click.BadParameter(f"must be at least 16 pixels, got {tile}", param_hint="--tile")
    selected = select_distortions(names)
    targets = human_targets()
    captions = {(name, 0): mos_caption(targets.get(("pristine", 0))) for name in selected}
    captions.update({key: f"{value} | {mos_caption(targets.get(key))}" for key, value in level_captions(selected).items()})
    rgb = read_rgb(image)
    write_image(out, contact_sheet(rgb, selected, seed=seed, tile=tile, captions=captions))
    click.echo(f"wrote {out} ({len(selected)} types x 5 levels)")
