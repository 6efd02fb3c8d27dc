"""Standalone library of image distortions at 5 strictly ordered levels (NumPy, OpenCV, Pillow only).

>>> import numpy as np, distortions
>>> img = np.zeros((64, 64, 3), np.uint8)
>>> out = distortions.apply(img, "gaussian_blur", 3, seed=0)   # same shape and dtype, input untouched
>>> out.shape, out.dtype
((64, 64, 3), dtype('uint8'))
>>> chain = distortions.compose_levels(img, ["gaussian_blur", "jpeg"], seed=0)  # 5 levels, both members rising
>>> len(chain)
5

Level 1 is the mildest, level 5 the strongest; each registered type's levels are ordered so that
a full-reference measure (PSNR, SSIM against the pristine image) strictly decreases with level,
checked on photos of 128 px and more. Size caveat: JPEG2000 cannot go below OpenJPEG's smallest
stream (~250 bytes), so on small images its strongest levels can coincide: ``jpeg2000`` needs about
0.04 megapixels, ``live_jpeg2000`` about 0.15 megapixels (LIVE's 768x512 size) for levels 4 and 5
to differ.
"""
from distortions._registry import (
    MIN_SIDE,
    NUM_LEVELS,
    DistortionSpec,
    apply,
    apply_levels,
    families,
    get,
    names,
    register,
)
from distortions.errors import DistortionError, InvalidArgument, UnknownDistortion
from distortions import blur as _blur  # noqa: F401  (importing a family module registers its types)
from distortions import color as _color  # noqa: F401
from distortions import compression as _compression  # noqa: F401
from distortions import noise as _noise  # noqa: F401
from distortions import brightness as _brightness  # noqa: F401
from distortions import spatial as _spatial  # noqa: F401
from distortions import sharpness_contrast as _sharpness_contrast  # noqa: F401
from distortions import transmission as _transmission  # noqa: F401
from distortions import live as _live  # noqa: F401
from distortions.composed import compose, compose_levels  # registers the composed presets, last

__all__ = [
    "MIN_SIDE",
    "NUM_LEVELS",
    "DistortionError",
    "DistortionSpec",
    "InvalidArgument",
    "UnknownDistortion",
    "apply",
    "apply_levels",
    "compose",
    "compose_levels",
    "families",
    "get",
    "names",
    "register",
]
