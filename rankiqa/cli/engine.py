"""Options shared by the commands that can run on a Ray cluster (``generate``, ``score``)."""
from __future__ import annotations

import click

ENGINE_HELP = 'local: this machine; ray: a Ray cluster (pip install "rankiqa[ray]"), see docs/scale-out.md.'
ADDRESS_HELP = ("With --engine ray: the cluster to join, auto, HOST:PORT (head's GCS port) or ray://HOST:PORT "
                "(default: start a local Ray instance).")


def engine_options(command):
    """--engine local|ray and --address."""
    command = click.option("--address", default=None, metavar="ADDR", help=ADDRESS_HELP)(command)
    return click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
                        help=ENGINE_HELP)(command)
