"""The distortion table: one frozen spec per registered name, plus input validation.

A distortion function has the signature ``fn(image, level, rng) -> image`` where ``image`` is a
uint8 (H, W, 3) RGB array (never modified), ``level`` an int in 1..5 (1 mildest, 5 strongest) and
``rng`` a ``numpy.random.Generator``. Contract for strict ordering: the random draws a function
makes must NOT depend on ``level`` (draw the full-size field / the longest ordered list, then use
the level's share of it), so that the same seed gives common random numbers across levels.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np

from distortions.errors import InvalidArgument, UnknownDistortion

NUM_LEVELS = 5
MIN_SIDE = 32
COMPOSED_FAMILY = "composed"

DistortionFn = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]
LevelsFn = Callable[[np.ndarray, np.random.Generator], list]


@dataclass(frozen=True)
class DistortionSpec:
    """One registered distortion type.

    ``levels`` holds the 5 parameter values (level 1 mildest .. level 5 strongest);
    ``parameter`` names what they are (e.g. "sigma (px)").
    """

    name: str
    family: str
    levels: tuple[Any, ...]
    description: str
    parameter: str
    fn: DistortionFn = field(repr=False, compare=False)
    source: str = ""
    levels_fn: LevelsFn | None = field(default=None, repr=False, compare=False)


_REGISTRY: dict[str, DistortionSpec] = {}


def register(
    name: str,
    *,
    family: str,
    levels: tuple[Any, ...],
    description: str,
    parameter: str,
    source: str = "",
) -> Callable[[DistortionFn], DistortionFn]:
    """Decorator that adds ``fn`` to the table under ``name``; a duplicate name is an error."""
    if len(levels) != NUM_LEVELS:
        raise ValueError(f"distortion {name!r}: levels must have {NUM_LEVELS} values, got {len(levels)}")

    def decorator(fn: DistortionFn) -> DistortionFn:
        if name in _REGISTRY:
            raise ValueError(f"distortion {name!r} is already registered")
        _REGISTRY[name] = DistortionSpec(
            name=name,
            family=family,
            levels=tuple(levels),
            description=description,
            parameter=parameter,
            fn=fn,
            source=source,
        )
        return fn

    return decorator


def register_levels(name: str) -> Callable[[LevelsFn], LevelsFn]:
    """Decorator that gives the registered type ``name`` a faster way to make all 5 levels at once:
    ``fn(image, rng) -> [level 1, ..., level 5]``, used by ``apply_levels``. It must return exactly
    what ``apply`` gives level by level with the same seed (e.g. one encode shared by the levels)."""

    def decorator(fn: LevelsFn) -> LevelsFn:
        spec = get(name)
        if spec.levels_fn is not None:
            raise ValueError(f"distortion {name!r} already has a levels function")
        _REGISTRY[name] = replace(spec, levels_fn=fn)
        return fn

    return decorator


def names(*, composed: bool = True) -> list[str]:
    """Every registered distortion name, in registration order.

    ``composed=False`` leaves out the composed presets (family "composed", chains of other types):
    the default type list of ``rankiqa generate`` / ``train`` ("all") is the single types only.
    """
    return [name for name, spec in _REGISTRY.items() if composed or spec.family != COMPOSED_FAMILY]


def families() -> list[str]:
    """The distinct families, in registration order."""
    return list(dict.fromkeys(spec.family for spec in _REGISTRY.values()))


def get(name: str) -> DistortionSpec:
    """The spec registered under ``name``; unknown names raise ``UnknownDistortion`` (a ``KeyError``)
    listing close matches."""
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), _REGISTRY, n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(_REGISTRY)}"
        raise UnknownDistortion(f"unknown distortion {name!r}{hint}") from None


def as_rgb_uint8(image: Any) -> np.ndarray:
    """Validate ``image`` (uint8, (H, W) gray or (H, W, 3) RGB, both sides >= 32) and return (H, W, 3)."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a numpy.ndarray, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise TypeError(f"image must have dtype uint8, got {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.ndim != 3 or image.shape[2] != 3:
        raise InvalidArgument(f"image must have shape (H, W, 3) or (H, W), got {image.shape}")
    height, width = image.shape[:2]
    if height < MIN_SIDE or width < MIN_SIDE:
        raise InvalidArgument(f"image must be at least {MIN_SIDE}x{MIN_SIDE} pixels, got {width}x{height}")
    return image


def check_level(level: Any) -> int:
    """Validate a level: an int in 1..5."""
    if isinstance(level, bool) or not isinstance(level, (int, np.integer)):
        raise TypeError(f"level must be an int in 1..{NUM_LEVELS}, got {level!r}")
    if not 1 <= int(level) <= NUM_LEVELS:
        raise InvalidArgument(f"level must be in 1..{NUM_LEVELS}, got {level}")
    return int(level)


def make_rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    """A Generator from an int seed, an existing Generator (used as is) or None (fresh entropy)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool)):
        return np.random.default_rng(seed)
    raise TypeError(f"seed must be an int, a numpy.random.Generator or None, got {seed!r}")


def apply(image: np.ndarray, name: str, level: int, seed: int | np.random.Generator | None = None) -> np.ndarray:
    """Distort ``image`` with type ``name`` at ``level`` (1 mildest .. 5 strongest).

    Returns a new uint8 (H, W, 3) RGB array; the input is never modified.
    The same int seed gives identical output.
    """
    spec = get(name)
    level = check_level(level)
    rgb = as_rgb_uint8(image)
    rng = make_rng(seed)
    view = rgb.view()
    view.setflags(write=False)
    return _checked(spec, spec.fn(view, level, rng), rgb)


def _checked(spec: DistortionSpec, out: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    """``out`` when it is a new writable uint8 array of ``rgb``'s shape (copied if it shares memory)."""
    if out.shape != rgb.shape or out.dtype != np.uint8:
        raise RuntimeError(f"distortion {spec.name!r} returned {out.dtype} {out.shape}, expected uint8 {rgb.shape}")
    if np.shares_memory(out, rgb) or not out.flags.writeable:
        out = out.copy()
    return out


def apply_levels(image: np.ndarray, name: str, seed: int | np.random.Generator | None = None) -> list[np.ndarray]:
    """All 5 levels of ``name`` on ``image``, sharing their random fields (common random numbers).

    Each level is drawn from a generator seeded identically, so level k+1 uses the same noise
    field, masks, angles and block lists as level k, only stronger. Equal to
    ``[apply(image, name, k, seed) for k in 1..5]``; types with a levels function (see
    ``register_levels``) make the 5 levels in one go.
    """
    spec = get(name)
    rgb = as_rgb_uint8(image)
    seed = level_seed(seed)
    if spec.levels_fn is not None:
        return _apply_all(spec, rgb, seed)
    return [apply(rgb, name, level, seed=seed) for level in range(1, NUM_LEVELS + 1)]


def level_seed(seed: int | np.random.Generator | None) -> int:
    """One int seed to give every level: ``seed`` itself, one draw from a Generator, or fresh entropy for None."""
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, 2**63 - 1))
    if seed is None:
        return int(np.random.SeedSequence().generate_state(1, dtype=np.uint64)[0] >> 1)
    make_rng(seed)
    return int(seed)


def _apply_all(spec: DistortionSpec, rgb: np.ndarray, seed: int) -> list[np.ndarray]:
    """``spec.levels_fn`` on a read-only view of ``rgb``, with ``apply``'s output checks."""
    view = rgb.view()
    view.setflags(write=False)
    outs = spec.levels_fn(view, make_rng(seed))
    if len(outs) != NUM_LEVELS:
        raise RuntimeError(f"distortion {spec.name!r} returned {len(outs)} levels, expected {NUM_LEVELS}")
    return [_checked(spec, out, rgb) for out in outs]
