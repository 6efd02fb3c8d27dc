"""Database loaders on tiny synthetic folders (no shared data needed: these always run).

CSIQ ships its DMOS (0..1, LOWER is better) as ``csiq.DMOS.xlsx``; the common list format is
``CSIQ.txt``. Both must give ``mos = 1 - DMOS`` (higher is better) for the same images.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rankiqa.data import load_database
from rankiqa.errors import UserError

# (image, xlsx dst_type, folder, file tag, level, DMOS): DMOS made up, lower = better, as in CSIQ
CSIQ_ROWS = [
    ("1600", "noise", "awgn", "AWGN", 1, 0.062),
    ("1600", "noise", "awgn", "AWGN", 4, 0.371),
    ("1600", "blur", "blur", "BLUR", 2, 0.180),
    ("cactus", "jpeg 2000", "jpeg2000", "jpeg2000", 3, 0.254),
    ("cactus", "jpeg", "jpeg", "JPEG", 5, 0.719),
    ("cactus", "contrast", "contrast", "contrast", 1, 0.011),
    ("cactus", "fnoise", "fnoise", "fnoise", 2, 0.140),
]
CSIQ_NAMES = {"awgn": "white_noise", "blur": "gaussian_blur", "jpeg2000": "jpeg2000", "jpeg": "jpeg",
              "contrast": "contrast_change", "fnoise": "pink_noise"}


@pytest.fixture
def csiq_images(tmp_path) -> Path:
    root = tmp_path / "CSIQ"
    for image, _, folder, tag, level, _ in CSIQ_ROWS:
        (root / "dst_imgs" / folder).mkdir(parents=True, exist_ok=True)
        (root / "dst_imgs" / folder / f"{image}.{tag}.{level}.png").touch()
        (root / "src_imgs").mkdir(exist_ok=True)
        (root / "src_imgs" / f"{image}.png").touch()
    return root


def _expected(root: Path) -> pd.DataFrame:
    return pd.DataFrame({
        "path": [str((root / "dst_imgs" / f / f"{i}.{t}.{lv}.png").resolve()) for i, _, f, t, lv, _ in CSIQ_ROWS],
        "reference": [str((root / "src_imgs" / f"{i}.png").resolve()) for i, *_ in CSIQ_ROWS],
        "distortion": [CSIQ_NAMES[f] for _, _, f, *_ in CSIQ_ROWS],
        "mos": [1.0 - d for *_, d in CSIQ_ROWS],
        "mos_raw": [d for *_, d in CSIQ_ROWS],
    })


def _write_xlsx(path: Path, rows) -> None:
    pytest.importorskip("openpyxl")
    table = pd.DataFrame([(i, kind, lv, d) for i, kind, _, _, lv, d in rows], columns=["image", "dst_type", "dst_lev", "dmos"])
    with pd.ExcelWriter(path) as writer:
        pd.DataFrame({"note": ["other sheets are ignored"]}).to_excel(writer, sheet_name="readme", index=False)
        table.to_excel(writer, sheet_name="all_by_image", index=False)


def test_csiq_list_file_turns_dmos_into_higher_is_better(csiq_images):
    pd.DataFrame({
        "dis_img_path": [f"dst_imgs/{f}/{i}.{t}.{lv}.png" for i, _, f, t, lv, _ in CSIQ_ROWS],
        "dis_type": [t for _, _, _, t, _, _ in CSIQ_ROWS],
        "ref_img_path": [f"src_imgs/{i}.png" for i, *_ in CSIQ_ROWS],
        "score": [d for *_, d in CSIQ_ROWS],
    }).to_csv(csiq_images / "CSIQ.txt", index=False)
    df = load_database("csiq", csiq_images)
    pd.testing.assert_frame_equal(df, _expected(csiq_images))
    # the least distorted image (lowest DMOS) has the highest mos
    assert df["mos"].idxmax() == int(np.argmin([d for *_, d in CSIQ_ROWS]))


def test_csiq_official_xlsx_gives_the_same_frame(csiq_images):
    _write_xlsx(csiq_images / "csiq.DMOS.xlsx", CSIQ_ROWS)
    df = load_database("csiq", csiq_images)
    pd.testing.assert_frame_equal(df, _expected(csiq_images))


def test_csiq_xlsx_with_an_unknown_type_is_one_line(csiq_images):
    _write_xlsx(csiq_images / "csiq.DMOS.xlsx", [("1600", "gamma", "awgn", "AWGN", 1, 0.1)])
    with pytest.raises(UserError) as exc:
        load_database("csiq", csiq_images)
    assert str(exc.value) == f"csiq: {csiq_images / 'csiq.DMOS.xlsx'}: unknown dst_type 'gamma'"


def test_csiq_xlsx_missing_image_names_the_label_file(csiq_images):
    _write_xlsx(csiq_images / "csiq.DMOS.xlsx", CSIQ_ROWS)
    (csiq_images / "dst_imgs" / "blur" / "1600.BLUR.2.png").unlink()
    with pytest.raises(UserError, match=r"1 of 1 images listed in .*csiq.DMOS.xlsx are missing .*1600.BLUR.2.png"):
        load_database("csiq", csiq_images)
