"""Build rankiqa's human calibration table from KADID-10k's published MOS file.

Every registered (distortion, level) gets a row. Where our implementation follows a KADID-10k
type at KADID's own parameter value, the row carries that KADID cell's human judgement: the mean
MOS over KADID's 81 reference photos (1-5 scale, higher is better), its standard deviation over
those photos and the number of images. Every other row has an empty target and a note saying why.
Level 0 (``pristine``) carries the target of images that KADID's raters compared with their own
reference unchanged (see ``IDENTITY_CELLS``).

    python tools/build_calibration.py ../shared/data/labels/official_format/kadid10k_dmos.RECONSTRUCTED.csv \
        --out rankiqa/assets/calibration_kadid10k.csv

The mapping below is the documentation of record; ``docs/calibration.md`` explains it in prose.
"""
from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import distortions  # noqa: E402

SOURCE = "KADID-10k"
COLUMNS = ("distortion", "level", "mos", "mos_std", "images", "source", "source_type", "source_level", "note")

# our name -> (KADID type id, {our level: KADID level}); only levels whose parameter equals KADID's.
KADID_LEVELS: dict[str, tuple[int, dict[int, int]]] = {
    "gaussian_blur": (1, {1: 2, 2: 3, 3: 4, 5: 5}),          # sigma 0.5, 1, 2, 5 (our 3.5 is not a KADID level)
    "lens_blur": (2, {1: 1, 2: 2, 3: 3, 4: 4, 5: 5}),
    "motion_blur": (3, {1: 2, 2: 3, 3: 4, 4: 5}),             # length 2, 4, 6, 10 (our 14 is not a KADID level)
    "color_diffusion": (4, {1: 1, 2: 2, 3: 3, 4: 4, 5: 5}),
    "color_shift": (5, {1: 1, 2: 2, 3: 3, 4: 4, 5: 5}),
    "color_quantization": (6, {1: 1, 2: 2, 3: 3, 4: 4, 5: 5}),
    "color_saturation_decrease": (7, {2: 1, 3: 2, 4: 3, 5: 4}),  # factor 0.4, 0.2, 0.1, 0 (our 0.6 is not)
    "color_saturation_increase": (8, {2: 2, 3: 3, 4: 4, 5: 5}),  # factor 2, 3, 6, 9 (our 1.5 is not)
    "jpeg2000": (9, {1: 1, 2: 2, 3: 3, 4: 4, 5: 5}),
    "jpeg": (10, {1: 1, 2: 2, 3: 3, 4: 4, 5: 5}),
    "white_noise": (11, {1: 1, 2: 2, 3: 3, 4: 4, 5: 5}),
    "color_component_noise": (12, {1: 1, 2: 2, 3: 3, 4: 4, 5: 5}),
    "impulse_noise": (13, {1: 1, 2: 2, 3: 3, 4: 4, 5: 5}),
    "multiplicative_noise": (14, {1: 1, 2: 2, 3: 3, 4: 4, 5: 5}),
    "brighten": (16, {1: 1, 2: 2, 3: 3, 4: 4, 5: 5}),
    "darken": (17, {1: 1, 2: 2, 3: 3, 4: 4, 5: 5}),
    "jitter": (19, {1: 1, 2: 2, 3: 3, 4: 4, 5: 5}),
    "non_eccentricity_patch": (20, {1: 1, 2: 2, 3: 3, 4: 4, 5: 5}),
    "quantization": (22, {1: 1, 2: 2, 3: 3, 4: 4, 5: 5}),
    "color_block": (23, {1: 1, 2: 2, 3: 3, 4: 4, 5: 5}),
    "high_sharpen": (24, {1: 1, 2: 2, 3: 3, 4: 4, 5: 5}),
    "contrast_increase": (25, {1: 3}),                        # curve value 0.25 at 0.3 (KADID a = 0)
    "contrast_decrease": (25, {3: 5}),                        # curve value 0.40 at 0.3 (KADID a = -0.6)
}

# why a type (or the levels missing above) has no target
NO_TARGET: dict[str, str] = {
    "gaussian_blur": "sigma 3.5 px is not a KADID level (KADID: 0.1, 0.5, 1, 2, 5)",
    "motion_blur": "length 14 px is not a KADID level (KADID: 1, 2, 4, 6, 10)",
    "color_saturation_decrease": "factor 0.6 is not a KADID level (KADID: 0.4, 0.2, 0.1, 0, -0.4)",
    "color_saturation_increase": "factor 1.5 is not a KADID level (KADID: 1, 2, 3, 6, 9)",
    "contrast_increase": "KADID's contrast levels are curve values 0.175, 0.2125, 0.25, 0.35, 0.40 at 0.3; "
                         "only 0.25 is one of ours",
    "contrast_decrease": "KADID's contrast levels are curve values 0.175, 0.2125, 0.25, 0.35, 0.40 at 0.3; "
                         "only 0.40 is one of ours",
    "denoise": "different denoiser (non-local means, not DnCNN) and noise variances (ours 0.002-0.04, KADID 0.01-0.15)",
    "mean_shift_up": "KADID re-stretches every output to [0, 1], which undoes most of a mean shift; ours does not",
    "mean_shift_down": "KADID re-stretches every output to [0, 1], which undoes most of a mean shift; ours does not",
    "pixelate": "different operation and scale (block averaging, blocks of 2-8 px; KADID resizes by 0.89-0.29)",
    "chromatic_aberration": "TID2013 #23 is a uniform channel shift whose parameters TID2013 does not publish; ours is radial",
    "correlated_noise": "TID2013 #3: TID2013 does not publish its noise variances, so no level can be matched",
    "high_frequency_noise": "TID2013 #5: TID2013 does not publish its noise variances, so no level can be matched",
    "jpeg_transmission_errors": "TID2013 #12: simulated in the pixel domain; TID2013's error rates are not published",
    "live_gaussian_blur": "RankIQA's LIVE generator; LIVE's own images use per-image parameters, not these levels",
    "live_white_noise": "RankIQA's LIVE generator; LIVE's own images use per-image parameters, not these levels",
    "live_jpeg": "RankIQA's LIVE generator; LIVE's own images use per-image parameters, not these levels",
    "live_jpeg2000": "RankIQA's LIVE generator; LIVE's own images use per-image parameters, not these levels",
    "blur_jpeg": "composed chain: KADID-10k rates single distortions only (LIVE MD rates chains, on a DMOS scale "
                 "with other parameters)",
    "blur_noise": "composed chain: KADID-10k rates single distortions only (LIVE MD rates chains, on a DMOS scale "
                  "with other parameters)",
}
DEFAULT_NO_TARGET = "no human-rated database image was made with these parameters"

# KADID cells whose distortion is the identity (or numerically so): a photo judged against itself.
# gaussian blur sigma 0.1 (kernel weights off-centre < 1e-21), saturation factor 1 (exact identity),
# mean shift 0 (identity before KADID's re-stretch). Their pooled MOS is the pristine target.
IDENTITY_CELLS = ((1, 1), (8, 1), (18, 3))


def read_kadid(path: str | Path) -> dict[tuple[int, int], np.ndarray]:
    """MOS values per (KADID type, level) from KADID's ``dmos.csv`` (``dist_img,ref_img,dmos,var``)."""
    cells: dict[tuple[int, int], list[float]] = {}
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"dist_img", "dmos"} - set(reader.fieldnames or ())
        if missing:
            raise SystemExit(f"{path}: not KADID-10k's dmos.csv (missing column(s) {', '.join(sorted(missing))})")
        for line, row in enumerate(reader, start=2):
            stem = Path(row["dist_img"]).stem  # I01_01_01
            parts = stem.split("_")
            try:
                key = (int(parts[1]), int(parts[2]))
                mos = float(row["dmos"])
            except (IndexError, ValueError):
                raise SystemExit(f"{path}:{line}: cannot read {row['dist_img']!r} / {row['dmos']!r}") from None
            if not (1.0 <= mos <= 5.0):
                raise SystemExit(f"{path}:{line}: MOS {mos} outside KADID's 1-5 scale")
            cells.setdefault(key, []).append(mos)
    if len(cells) != 125:
        raise SystemExit(f"{path}: expected 25 types x 5 levels, found {len(cells)} cells")
    return {key: np.asarray(values) for key, values in cells.items()}


def build_rows(kadid: dict[tuple[int, int], np.ndarray]) -> list[dict[str, str]]:
    """One row per registered (distortion, level) plus the pristine row (level 0)."""
    identity = np.concatenate([kadid[cell] for cell in IDENTITY_CELLS])
    cells = ";".join(f"{t:02d}/{l}" for t, l in IDENTITY_CELLS)
    rows = [_row("pristine", 0, identity, "pristine", cells,
                 "images KADID's raters saw unchanged against their reference (pooled identity cells)")]
    for name in distortions.names():
        type_id, levels = KADID_LEVELS.get(name, (None, {}))
        for level in range(1, distortions.NUM_LEVELS + 1):
            if level in levels:
                values = kadid[(type_id, levels[level])]
                rows.append(_row(name, level, values, f"{type_id:02d}", str(levels[level]), ""))
            else:
                rows.append({"distortion": name, "level": str(level), "mos": "", "mos_std": "", "images": "0",
                             "source": "", "source_type": "", "source_level": "",
                             "note": NO_TARGET.get(name, DEFAULT_NO_TARGET)})
    return rows


def _row(name: str, level: int, values: np.ndarray, source_type: str, source_level: str, note: str) -> dict[str, str]:
    return {"distortion": name, "level": str(level), "mos": f"{values.mean():.4f}",
            "mos_std": f"{values.std(ddof=1):.4f}", "images": str(len(values)), "source": SOURCE,
            "source_type": source_type, "source_level": source_level, "note": note}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kadid_csv", help="KADID-10k dmos.csv (dist_img,ref_img,dmos,var)")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "rankiqa/assets/calibration_kadid10k.csv"))
    args = parser.parse_args(argv)
    rows = build_rows(read_kadid(args.kadid_csv))
    from rankiqa.csvio import write_rows_atomic

    write_rows_atomic(args.out, COLUMNS, rows)
    targets = sum(1 for row in rows if row["mos"])
    print(f"wrote {args.out}: {len(rows)} rows, {targets} with a target")
    if not math.isfinite(float(rows[0]["mos"])):
        raise SystemExit("pristine target is not finite")


if __name__ == "__main__":
    main()
