"""The click command class of every rankiqa command: library errors name Python parameters
(``patch_size``), the command shows its own flags (``--patch-size``) and arguments (``SRC_DIR``).

A file-system error about a named file (``OSError`` with a ``filename``: permission denied, disk
full, a file where a folder should be) is the user's environment, not a bug: the command turns it
into a ``UserError`` naming the file and the reason. Any other exception passes through unchanged."""
from __future__ import annotations

import dataclasses
import inspect
import re
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Mapping

import click

from rankiqa.errors import RankiqaError, UserError


def with_flags(message: str, params: Iterable[str], flags: Mapping[str, str]) -> str:
    """``message`` with each name of ``params`` that ``flags`` maps replaced by its flag, as a whole
    word only (``patch`` is replaced in "patch must be", not inside ``patch_size`` or ``--patch``)."""
    for name in params:
        if name in flags:
            message = re.sub(rf"(?<![\w-]){re.escape(name)}(?![\w-])", lambda _: flags[name], message)
    return message


@contextmanager
def cli_flags(**flags: str) -> Iterator[None]:
    """Within the block, a ``RankiqaError``'s parameter names become ``flags`` (e.g.
    ``cli_flags(out_dir="--merge")``), for a call whose parameters a command spells differently."""
    try:
        yield
    except RankiqaError as exc:
        exc.args = (with_flags(str(exc), exc.params, flags),)
        raise


def library_defaults(source: Any) -> dict[str, Any]:
    """{name: default} of a config dataclass's fields, or of a function's keyword parameters: the
    defaults a command shows, read from the library (fields with a default factory are left out)."""
    if dataclasses.is_dataclass(source):
        return {field.name: field.default for field in dataclasses.fields(source)
                if field.default is not dataclasses.MISSING}
    return {name: parameter.default for name, parameter in inspect.signature(source).parameters.items()
            if parameter.default is not inspect.Parameter.empty}


def flag_of(param: click.Parameter) -> str:
    """How the command line spells ``param``: its long option (``--patch-size``) or ``ARGUMENT``."""
    if isinstance(param, click.Option):
        return next((opt for opt in param.opts if opt.startswith("--")), param.opts[0])
    return param.human_readable_name


class Command(click.Command):
    """A click command whose ``RankiqaError`` messages name its flags instead of the library's
    parameters. Options map by their Python name (``--patch-size`` is ``patch_size``); ``flags``
    adds the library names a command spells differently, e.g. ``{"distortion_names": "--distortions"}``.
    An ``OSError`` naming a file becomes a ``UserError`` (see the module doc).
    """

    def __init__(self, *args: Any, flags: Mapping[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.flags = dict(flags or {})

    def flag_names(self) -> dict[str, str]:
        """Library parameter name -> this command's flag."""
        return {**{param.name: flag_of(param) for param in self.params if param.name}, **self.flags}

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with cli_flags(**self.flag_names()):
                return super().invoke(ctx)
        except OSError as exc:
            if exc.filename is None:
                raise
            raise UserError(f"{exc.filename}: {exc.strerror or exc}") from exc


class Group(click.Group):
    """A click group whose subcommands are ``Command``s."""

    command_class = Command
