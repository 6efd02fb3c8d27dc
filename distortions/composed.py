"""Composed distortions: a chain of 2-3 registered types from different families, all at the same level.

Level k of a chain is every member at its own level k, applied in the given order, so level k+1 is
worse than level k for every member. Each member draws its randomness from its own generator,
seeded from ``SeedSequence(seed).spawn(len(chain))[position]`` identically at every level (common
random numbers, as in ``apply_levels``).

Two presets follow the design of the LIVE Multiply Distorted database (Jayaraman et al. 2012):
part 1, Gaussian blur then JPEG; part 2, Gaussian blur then white noise. LIVE MD crosses its blur
levels with its JPEG or noise levels (a grid, with its own parameters); here the two members step
together along the diagonal, at the members' own (KADID-10k) 5 levels.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from distortions._registry import (
    COMPOSED_FAMILY,
    NUM_LEVELS,
    apply,
    as_rgb_uint8,
    check_level,
    get,
    level_seed,
    register,
)
from distortions.errors import InvalidArgument
from distortions import blur as _blur  # noqa: F401  (the members must be registered first)
from distortions import compression as _compression  # noqa: F401
from distortions import noise as _noise  # noqa: F401

MIN_MEMBERS, MAX_MEMBERS = 2, 3
BLUR_JPEG = ("gaussian_blur", "jpeg")
BLUR_NOISE = ("gaussian_blur", "white_noise")
LIVE_MD_SOURCE = "LIVE Multiply Distorted (Jayaraman et al. 2012)"


def check_chain(names: Sequence[str]) -> tuple[str, ...]:
    """Validate a chain: 2-3 registered, non-composed type names, each from a different family."""
    if isinstance(names, str) or not isinstance(names, Sequence):
        raise TypeError(f"names must be a list of {MIN_MEMBERS}-{MAX_MEMBERS} distortion names, got {names!r}")
    chain = tuple(names)
    if not MIN_MEMBERS <= len(chain) <= MAX_MEMBERS:
        raise InvalidArgument(f"names must list {MIN_MEMBERS} or {MAX_MEMBERS} distortion types, got {len(chain)}: {chain}")
    seen: dict[str, str] = {}
    for name in chain:
        family = get(name).family
        if family == COMPOSED_FAMILY:
            raise InvalidArgument(f"{name!r} is already composed; list its members instead")
        if family in seen:
            raise InvalidArgument(f"names must come from different families: {seen[family]!r} and {name!r} are both {family!r}")
        seen[family] = name
    return chain


def _run_chain(rgb: np.ndarray, chain: tuple[str, ...], level: int, seed: int) -> np.ndarray:
    out = rgb
    for name, member_seed in zip(chain, np.random.SeedSequence(seed).spawn(len(chain))):
        out = apply(out, name, level, seed=np.random.default_rng(member_seed))
    return out


def compose(
    image: np.ndarray, names: Sequence[str], level: int, seed: int | np.random.Generator | None = None
) -> np.ndarray:
    """Level ``level`` (1 mildest .. 5 strongest) of the chain ``names``; equals ``compose_levels(...)[level - 1]``.

    Returns a new uint8 (H, W, 3) RGB array; the input is never modified.
    """
    chain = check_chain(names)
    level = check_level(level)
    return _run_chain(as_rgb_uint8(image), chain, level, level_seed(seed))


def compose_levels(
    image: np.ndarray, names: Sequence[str], seed: int | np.random.Generator | None = None
) -> list[np.ndarray]:
    """The 5 levels of a chain of 2-3 types from different families, applied in the order given.

    Level k applies every member at its level k, so each level is worse than the one before for
    every member. Each member gets its own seed, derived from ``seed`` and its position in the
    chain and identical across levels (common random numbers). The order matters: blur then JPEG
    is not JPEG then blur. The same int seed gives identical output; the input is never modified.
    The chain's quality falls with level only where no later member undoes an earlier one: white
    noise then Gaussian blur is not ordered (the blur removes noise, so SSIM can rise from level 1
    to 2); Gaussian blur then noise or JPEG is.
    """
    chain = check_chain(names)
    rgb = as_rgb_uint8(image)
    seed = level_seed(seed)
    return [_run_chain(rgb, chain, level, seed) for level in range(1, NUM_LEVELS + 1)]


def register_chain(name: str, members: tuple[str, ...], *, parameter: str, description: str, source: str) -> None:
    """Register the chain ``members`` as an ordinary type ``name`` (family "composed"); its level k is every
    member at level k, so its levels are the members' level values side by side."""
    chain = check_chain(members)

    def composed(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
        return _run_chain(image, chain, level, level_seed(rng))

    levels = tuple(zip(*(get(member).levels for member in chain)))
    register(name, family=COMPOSED_FAMILY, levels=levels, parameter=parameter, description=description, source=source)(
        composed
    )


register_chain(
    "blur_jpeg",
    BLUR_JPEG,
    parameter="(Gaussian sigma px, JPEG quality)",
    description="Gaussian blur then JPEG, both at level k (LIVE MD part 1 design; gaussian_blur and jpeg levels).",
    source=f"{LIVE_MD_SOURCE}, part 1",
)
register_chain(
    "blur_noise",
    BLUR_NOISE,
    parameter="(Gaussian sigma px, noise variance)",
    description="Gaussian blur then white noise (variance in [0,1]), both at level k (LIVE MD part 2 design).",
    source=f"{LIVE_MD_SOURCE}, part 2",
)
