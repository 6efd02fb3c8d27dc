"""The distortions package's own exceptions (it stays standalone: no rankiqa import).

- ``DistortionError``: the base.
- ``UnknownDistortion`` (also a ``KeyError``, what ``distortions.get`` raised before): no type of that name.
- ``InvalidArgument`` (also a ``ValueError``): an image, level or list of names that cannot be used.

A wrong argument *type* (a list instead of an array, a float level) stays a ``TypeError``.
"""
from __future__ import annotations


class DistortionError(Exception):
    """Base of the distortions package's errors; ``str(error)`` is the one-line message."""

    def __str__(self) -> str:  # the message as given, never KeyError's quoted repr
        return str(self.args[0]) if self.args else ""


class UnknownDistortion(DistortionError, KeyError):
    """No distortion type is registered under the name; the message lists close matches."""


class InvalidArgument(DistortionError, ValueError):
    """An image, level or list of names that cannot be used; the message says which and why."""
