"""``rankiqa score``: quality scores for image files, folders and globs."""
from __future__ import annotations

import click

from rankiqa.backends import PRECISIONS, list_backends
from rankiqa.cli.command import Command, library_defaults
from rankiqa.cli.engine import engine_options
from rankiqa.score import AGGREGATES, Scorer

DEFAULT = library_defaults(Scorer)

MODEL_HELP = (
    "'default' (the bundled model), or a backbone name for an UNTRAINED model: random score head, "
    "random backbone, or ImageNet backbone with NAME:pretrained (e.g. efficientnet_lite0:pretrained)."
)


def model_options(command):
    """--model and --weights, shared by score, demo and export."""
    command = click.option("--weights", type=click.Path(dir_okay=False), help="A rankiqa checkpoint (.pt); overrides --model.")(command)
    return click.option("--model", default="default", show_default=True, help=MODEL_HELP)(command)


@click.command(cls=Command)
@click.argument("paths", nargs=-1, required=True)
@model_options
@click.option("--patches", default=DEFAULT["patches"], show_default=True,
              help="Random crops per image (the paper uses 30).")
@click.option("--patch-size", default=DEFAULT["patch_size"], show_default=True,
              help="Crop side in pixels; smaller images are upscaled to it.")
@click.option("--aggregate", type=click.Choice(AGGREGATES), default=DEFAULT["aggregate"], show_default=True,
              help="How patch scores become one score.")
@click.option("--batch-size", default=DEFAULT["batch_size"], show_default=True,
              help="Patches per forward pass (memory and speed; changes a score by float rounding only, ~1e-6, "
                   "below the 6 decimals printed in csv/json except for the last digit now and then).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--output", type=click.Path(dir_okay=False),
              help="Write the results to this file instead of the terminal (--engine ray: .csv, .json or .parquet).")
@click.option("--recursive", is_flag=True, help="Also take images in sub-folders of folder arguments.")
@click.option("--heatmap", type=click.Path(file_okay=False), help="Folder for one PNG per image: per-patch scores on a grid.")
@click.option("--seed", default=DEFAULT["seed"], show_default=True, help="Seed of the patch positions (mixed with each image's size, never its pixels or name).")
@click.option("--report", type=click.Path(dir_okay=False),
              help="Also write an offline HTML report here (cards worst first, heat maps; pictures in REPORT_files/).")
@click.option("--backend", type=click.Choice(list_backends()), default=DEFAULT["backend"], show_default=True,
              help="Inference engine; onnxruntime and openvino need pip install \"rankiqa[onnx]\" / \"rankiqa[openvino]\" "
                   "and are faster on CPU (docs/performance.md).")
@click.option("--precision", type=click.Choice(PRECISIONS), default=DEFAULT["precision"], show_default=True,
              help="fp32 (scores as torch within 1e-4), or the faster approximations bf16 (torch, openvino) and int8 "
                   "(onnxruntime, openvino).")
@engine_options
@click.option("--actors", type=click.IntRange(min=1), default=None,
              help="--engine ray: model replicas (default: one per cluster CPU, or per GPU share).")
@click.option("--gpus-per-actor", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="--engine ray: GPUs per model replica (e.g. 1, or 0.5 to share one).")
def score(paths, model, weights, patches, patch_size, aggregate, batch_size, fmt, output, recursive, heatmap, seed,
          report, backend, precision, engine, address, actors, gpus_per_actor) -> None:
    """Score images: one row per image with its score (higher = better) and spread over patches.

    PATHS are image files, folders or globs ("photos/*.jpg"). Each image is scored on --patches
    random crops at native resolution; positions are seeded by --seed and the image's size, so a
    score does not depend on the file name, and the batch size or the other images change it by
    float rounding only (~1e-6). Unreadable or too small files, and images the model gives a
    non-finite score, are reported and skipped; the exit code is non-zero only if nothing was scored.

    \b
    Examples:
      rankiqa score photos/ --recursive --format csv --output scores.csv
      rankiqa score photos/ --report report.html
      rankiqa score photos/ --backend openvino --precision bf16
      rankiqa score /shared/photos --recursive --engine ray --address head:6379 --gpus-per-actor 1 --output s.parquet
    """
    from rankiqa.errors import UserError
    from rankiqa.score import load_model, report_scores

    if engine == "local" and (address or actors or gpus_per_actor):
        raise UserError("--address, --actors and --gpus-per-actor need --engine ray")
    if engine == "ray":
        from rankiqa.ray_engine import import_ray, score_with_ray

        import_ray()
        if not output or heatmap or report:
            raise UserError("--engine ray writes --output FILE (.csv, .json or .parquet) and draws no --heatmap "
                            "or --report")
    scorer = load_model(weights or model, patches=patches, patch_size=patch_size, aggregate=aggregate, batch_size=batch_size,
                        seed=seed, backend=backend, precision=precision)
    if engine == "ray":
        score_with_ray(scorer, paths, output, recursive=recursive, address=address, actors=actors,
                       gpus_per_actor=gpus_per_actor, log=lambda line: click.echo(line, err=True))
        return
    text = report_scores(scorer, paths, recursive=recursive, fmt=fmt, heatmap_dir=heatmap, output=output,
                         log=lambda line: click.echo(line, err=True), report=report)
    if text:
        click.echo(text)
