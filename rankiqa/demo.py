"""The demo: distort the bundled images at 5 levels, score every version, check the order.

A good model scores pristine > level 1 > ... > level 5 for every distortion type; the SRCC
between score and quality order (pristine best) is then +1. Everything runs in memory on the
small images in ``rankiqa/assets/images/``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rankiqa.errors import UserError
from rankiqa.models import ASSETS
from rankiqa.score import Scorer

BUNDLED_IMAGES = ASSETS / "images"
PREFERRED_TYPES = ("gaussian_blur", "white_noise", "jpeg", "jpeg2000", "contrast_decrease", "pixelate")
DEMO_TYPE_COUNT = 4
SHEET_IMAGE = "kodim23.png"


def demo_distortions(count: int = DEMO_TYPE_COUNT) -> list[str]:
    """Up to ``count`` registered distortion types: the preferred well-known ones first."""
    import distortions

    registered = distortions.names()
    ordered = [name for name in PREFERRED_TYPES if name in registered]
    ordered += [name for name in registered if name not in ordered]
    return ordered[:count]


def bundled_images() -> dict[str, np.ndarray]:
    """The bundled demo images as uint8 RGB arrays, by file name (sorted)."""
    from rankiqa.imageio import read_rgb, walk_images

    return {path.name: read_rgb(path) for path in walk_images(BUNDLED_IMAGES, recursive=False)[0]}


@dataclass
class DemoResult:
    """``scores[(image, type)]``: 6 scores (pristine, levels 1..5), higher = better."""

    images: list[str]
    types: list[str]
    scores: dict[tuple[str, str], list[float]]

    def srcc(self, image: str, name: str) -> float:
        """SRCC between scores and quality order (pristine best): +1 = perfectly ordered."""
        from rankiqa.metrics import srcc

        return srcc(self.scores[(image, name)], -np.arange(6))

    def table(self) -> str:
        """Per type: mean score over images at each level, and mean SRCC over images."""
        header = f"{'type':<18}" + "".join(f"{c:>10}" for c in ["pristine", "L1", "L2", "L3", "L4", "L5", "SRCC"])
        lines = [header]
        for name in self.types:
            levels = np.mean([self.scores[(image, name)] for image in self.images], axis=0)
            mean_srcc = np.mean([self.srcc(image, name) for image in self.images])
            lines.append(f"{name:<18}" + "".join(f"{v:>10.3f}" for v in levels) + f"{mean_srcc:>10.3f}")
        return "\n".join(lines)


def score_ranked_sets(scorer: Scorer, images: dict[str, np.ndarray], types: list[str], seed: int = 0) -> DemoResult:
    """Score each image and its 5 levels of each type (distortions seeded with ``seed``)."""
    import distortions

    scores = {}
    for image_name, rgb in images.items():
        pristine = scorer.score(rgb)
        for name in types:
            scores[(image_name, name)] = [pristine, *scorer.score(distortions.apply_levels(rgb, name, seed=seed))]
    return DemoResult(list(images), list(types), scores)


def run_demo(scorer: Scorer | None, out_dir: str | os.PathLike, seed: int = 0, log=print) -> DemoResult | None:
    """Score the bundled ranked sets, print the table, write ``contact_sheet.png`` and ``scores.csv``.

    With ``scorer=None`` (no model available) only the unscored contact sheet is written.
    """
    from distortions.sheet import contact_sheet
    from rankiqa.csvio import write_rows_atomic
    from rankiqa.imageio import write_image

    out_dir = Path(out_dir)
    images = bundled_images()
    if not images:
        raise UserError(f"{BUNDLED_IMAGES}: no bundled demo images; reinstall rankiqa")
    types = demo_distortions()
    sheet_name = SHEET_IMAGE if SHEET_IMAGE in images else next(iter(images))
    if scorer is None:
        write_image(out_dir / "contact_sheet.png", contact_sheet(images[sheet_name], types, seed=seed))
        log(f"wrote {out_dir / 'contact_sheet.png'} (unscored)")
        return None
    result = score_ranked_sets(scorer, images, types, seed=seed)
    log(f"{len(images)} bundled images x {len(types)} types x (pristine + 5 levels), {scorer.patches} patches each")
    log(result.table())
    captions = {(name, level): f"{score:.2f}" for name in types for level, score in enumerate(result.scores[(sheet_name, name)])}
    write_image(out_dir / "contact_sheet.png", contact_sheet(images[sheet_name], types, seed=seed, captions=captions))
    rows = [dict(image=image, type=name, level=level, score=f"{score:.6f}")
            for (image, name), values in result.scores.items() for level, score in enumerate(values)]
    write_rows_atomic(out_dir / "scores.csv", ("image", "type", "level", "score"), rows)
    log(f"wrote {out_dir / 'contact_sheet.png'} (scores of {sheet_name} on each tile) and {out_dir / 'scores.csv'}")
    return result
