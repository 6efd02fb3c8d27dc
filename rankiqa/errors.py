"""rankiqa's exceptions: the mistakes a user can make, each message naming the file, parameter or
value and the reason, in one line.

- ``RankiqaError``: the base of the family.
- ``UserError``: a bad input file, folder or setting (most errors are this class).
- ``InvalidOption`` (also a ``ValueError``): a parameter's value, or a combination of parameters,
  that cannot work. Messages name Python parameters (``patch_size``); ``params`` lists the names a
  message uses, so that each CLI command shows its own flags instead (``--patch-size``).
- ``UnknownName`` (also a ``KeyError`` and a ``ValueError``, as the code before this class raised
  both): a name no registry knows (backbone, loss, distortion, database, backend, ...).

``rankiqa.cli.main`` prints these, and the distortions package's ``DistortionError``, as one
``Error: ...`` line with exit code 2 (``USER_ERRORS``); any other exception is a bug and keeps its
traceback. The distortions package stays standalone: it defines its own classes.
"""
from __future__ import annotations

from typing import Any, Iterable


class RankiqaError(Exception):
    """Base of rankiqa's errors; ``str(error)`` is the one-line message. ``params``: the Python
    parameter names the message uses (the CLI replaces them with its flags)."""

    def __init__(self, message: str = "", *, params: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.params = tuple(params)

    def __str__(self) -> str:  # the message as given, never KeyError's quoted repr
        return str(self.args[0]) if self.args else ""


class UserError(RankiqaError):
    """A bad input or setting; the message names the file, folder or parameter and the reason."""


class InvalidOption(UserError, ValueError):
    """A parameter value, or a combination of parameters, that cannot work; names them in ``params``."""


class UnknownName(InvalidOption, KeyError):
    """A name that no registry knows; the message lists close matches or the known names."""


def check_choice(param: str, value: Any, choices: Iterable[Any]) -> None:
    """``UnknownName`` naming ``param`` unless ``value`` is one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        raise UnknownName(f"{param} must be one of {', '.join(map(str, choices))}, got {value!r}", params=(param,))


def __getattr__(name: str) -> Any:
    """``USER_ERRORS``: the exceptions the CLI reports as one ``Error: ...`` line (exit code 2),
    ``(RankiqaError, distortions.DistortionError)``; anything else is a bug and keeps its traceback.
    Built on first use, so that importing this module does not import the distortions package."""
    if name == "USER_ERRORS":
        from distortions.errors import DistortionError

        return (RankiqaError, DistortionError)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
