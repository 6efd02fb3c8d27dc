"""The ``rankiqa`` command line: a click group whose subcommands are imported only when used.

Each subcommand lives in ``rankiqa/cli/<name>.py``, parses its options and calls the library.
User mistakes (``rankiqa.errors.USER_ERRORS``: ``rankiqa.errors.RankiqaError`` and
``distortions.DistortionError``) become one ``Error: ...`` line and exit code 2, naming the
command's flags (``rankiqa.cli.command.Command``); set ``RANKIQA_DEBUG=1`` to see the traceback.
Any other exception is a bug and keeps its traceback; Ctrl-C is "Aborted." and exit code 130.
"""
from __future__ import annotations

import importlib
import os
import sys

import click

from rankiqa import __version__

COMMANDS: dict[str, tuple[str, str]] = {
    "score": ("rankiqa.cli.score", "Score images, folders or globs with a quality model (higher = better)."),
    "demo": ("rankiqa.cli.demo", "Score ranked distortions of the bundled images end to end; contact sheet."),
    "export": ("rankiqa.cli.export", "Export a model to TorchScript, ONNX or a stripped weights checkpoint."),
    "distortions": ("rankiqa.cli.distortions", "List the distortion types or draw a contact sheet."),
    "finetune": ("rankiqa.cli.finetune", "Fine-tune a ranking model on an IQA database's MOS (one split)."),
    "benchmark": ("rankiqa.cli.benchmark", "The paper's table: SRCC/PLCC/KRCC/RMSE on IQA databases, zero-shot or fine-tuned."),
    "generate": ("rankiqa.cli.generate", "Generate ranked datasets (pristine + 5 levels), resumable and sharded."),
    "train": ("rankiqa.cli.train", "Siamese rank pre-training on ranked sets (resumable, multi-GPU)."),
}


class LazyGroup(click.Group):
    """A group that imports a subcommand's module only when that subcommand is run or listed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module = importlib.import_module(COMMANDS[name][0])
        return getattr(module, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rankiqa")
def cli() -> None:
    """rankiqa: learn image quality from rankings.

    \b
    Example:
      rankiqa demo
    """


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the CLI, turning user mistakes (``USER_ERRORS``) into one error line
    (exit code 2); anything else propagates with its traceback."""
    from rankiqa.errors import USER_ERRORS

    try:
        exit_code = cli.main(args=argv, prog_name="rankiqa", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except USER_ERRORS as exc:
        if os.environ.get("RANKIQA_DEBUG"):
            raise
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    if isinstance(exit_code, int) and exit_code:
        sys.exit(exit_code)
