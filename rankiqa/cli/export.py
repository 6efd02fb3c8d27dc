"""``rankiqa export``: a model as TorchScript, ONNX, or a stripped weights-only checkpoint."""
from __future__ import annotations

import click

from rankiqa.cli.command import Command
from rankiqa.cli.score import model_options


@click.command(cls=Command)
@model_options
@click.option("--format", "fmt", type=click.Choice(["torchscript", "onnx", "weights"]), required=True,
              help="torchscript/onnx: input float (N,3,H,W) RGB in [0,1], output (N,) scores; "
                   "weights: model config + weights only (for --weights, e.g. rankiqa/assets/default.pt).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="File to write.")
@click.option("--patch-size", default=224, show_default=True, type=click.IntRange(min=32),
              help="Side in pixels (>= 32) of the example input used to trace the model.")
@click.option("--fp32", is_flag=True, help="weights format: keep float32 (default stores float16, half the size).")
def export(model, weights, fmt, out, patch_size, fp32) -> None:
    """Export a model (higher output = better quality) for use outside rankiqa.

    \b
    Examples:
      rankiqa export --model default --format onnx --out rankiqa.onnx
      rankiqa export --weights runs/default/best.pt --format weights --out rankiqa/assets/default.pt
    """
    from rankiqa.export import export_model, strip_checkpoint
    from rankiqa.models import load_module

    if fmt == "weights":
        if weights:
            strip_checkpoint(weights, out, half=not fp32)
        else:
            module = load_module(model)
            strip_checkpoint({"model_config": module.config, "model_state": module.state_dict()}, out, half=not fp32)
    else:
        export_model(load_module(weights or model), fmt, out, patch_size=patch_size)
    click.echo(f"wrote {out} ({fmt})")
