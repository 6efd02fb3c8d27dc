"""Loaders for the standard IQA databases, read exactly as they ship, behind one interface.

``load_database(name, root)`` returns a ``pandas.DataFrame`` with one row per scored image:

* ``path``: absolute path of the image file (as found on disk, case-insensitive names resolved);
* ``reference``: absolute path of its pristine reference, ``""`` for authentic (in-the-wild) images;
* ``distortion``: distortion type (shared names such as ``jpeg``, ``gaussian_blur``; ``authentic``);
* ``mos``: opinion score, HIGHER IS BETTER (DMOS databases converted, see each loader);
* ``mos_raw``: the score exactly as in the label file (DMOS stays lower-is-better);
* ``set`` (KonIQ-10k only): the official ``training``/``validation``/``test`` split.

Databases are registered once in ``DATABASES`` (name, layout, download page); the CLI choices and
the parametrised tests read that table. A wrong root raises one ``UserError`` line naming the
missing file, the expected layout and where the database is downloaded from.
"""
from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from rankiqa.errors import UnknownName, UserError

COLUMNS = ("path", "reference", "distortion", "mos", "mos_raw")
AUTHENTIC = "authentic"

# LIVE release2: folders in the order of dmos.mat / refnames_all.mat, with their image counts.
LIVE_FOLDERS = (("jp2k", 227), ("jpeg", 233), ("wn", 174), ("gblur", 174), ("fastfading", 174))
LIVE_DISTORTIONS = {"jp2k": "jpeg2000", "jpeg": "jpeg", "wn": "white_noise", "gblur": "gaussian_blur",
                    "fastfading": "fast_fading"}
LIVE_DMOS_MAX = 100.0  # LIVE DMOS is on a 0..100 scale (realigned values overshoot a little).

# TID2013 distortion codes 01..24 (TID2008 uses 01..17), names after the databases' readme.txt.
TID_DISTORTIONS = (
    "white_noise", "color_noise", "correlated_noise", "masked_noise", "high_frequency_noise",
    "impulse_noise", "quantization_noise", "gaussian_blur", "denoising", "jpeg", "jpeg2000",
    "jpeg_transmission_error", "jpeg2000_transmission_error", "pattern_noise", "block_wise",
    "mean_shift", "contrast_change", "color_saturation", "multiplicative_noise", "comfort_noise",
    "noisy_image_compression", "color_quantization_dither", "chromatic_aberration", "sparse_sampling",
)

# KADID-10k distortion codes 01..25 (KADID-10k paper, Table 1).
KADID_DISTORTIONS = (
    "gaussian_blur", "lens_blur", "motion_blur", "color_diffusion", "color_shift", "color_quantization",
    "color_saturation_hsv", "color_saturation_lab", "jpeg2000", "jpeg", "white_noise", "white_noise_color",
    "impulse_noise", "multiplicative_noise", "denoising", "brighten", "darken", "mean_shift", "jitter",
    "non_eccentricity_patch", "pixelate", "quantization", "color_block", "high_sharpen", "contrast_change",
)

# CSIQ: folder under dst_imgs/ -> distortion name; and the csiq.DMOS.xlsx ``dst_type`` -> folder.
CSIQ_DISTORTIONS = {"awgn": "white_noise", "jpeg": "jpeg", "jpeg2000": "jpeg2000", "fnoise": "pink_noise",
                    "blur": "gaussian_blur", "contrast": "contrast_change"}
CSIQ_XLSX_TYPES = {"noise": ("awgn", "AWGN"), "jpeg": ("jpeg", "JPEG"), "jpeg 2000": ("jpeg2000", "jpeg2000"),
                   "fnoise": ("fnoise", "fnoise"), "blur": ("blur", "BLUR"), "contrast": ("contrast", "contrast")}
CLIVE_TRAINER_IMAGES = 7  # AllImages_release.mat starts with 7 trainer images (Images/trainingImages/).


@dataclass(frozen=True)
class DatabaseSpec:
    """A registered database: its loader, the layout it expects under ROOT and where to get it."""

    name: str
    loader: Callable[[Path], pd.DataFrame]
    layout: str
    source: str
    description: str


DATABASES: dict[str, DatabaseSpec] = {}


def register(name: str, *, layout: str, source: str) -> Callable:
    """Decorator: register ``loader(root: Path) -> DataFrame`` under ``name`` (names are unique)."""

    def decorator(loader: Callable[[Path], pd.DataFrame]) -> Callable[[Path], pd.DataFrame]:
        if name in DATABASES:
            raise ValueError(f"database {name!r} is already registered")
        description = (loader.__doc__ or "").strip().splitlines()[0]
        DATABASES[name] = DatabaseSpec(name, loader, layout, source, description)
        return loader

    return decorator


def list_databases() -> list[str]:
    """Names accepted by ``load_database``, in registration order."""
    return list(DATABASES)


def get_database(name: str) -> DatabaseSpec:
    """The spec registered under ``name`` (case-insensitive); ``UnknownName`` with a suggestion otherwise."""
    key = name.lower().replace("-", "")
    if key not in DATABASES:
        close = difflib.get_close_matches(key, DATABASES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UnknownName(f"unknown database {name!r}{hint}; choose from {', '.join(DATABASES)}")
    return DATABASES[key]


def load_database(name: str, root: str | os.PathLike) -> pd.DataFrame:
    """Load database ``name`` from ``root`` (a folder; for ``csv`` the CSV file) as described above."""
    spec = get_database(name)
    root = Path(root).expanduser()
    if not root.exists():
        raise UserError(_layout_message(spec, root, "not found"))
    frame = spec.loader(root)
    frame["mos"] = frame["mos"].astype(np.float64)
    frame["mos_raw"] = frame["mos_raw"].astype(np.float64)
    return frame.reset_index(drop=True)


def _layout_message(spec: DatabaseSpec, path: Path, reason: str) -> str:
    return f"{spec.name}: {path} {reason}; expected layout: {spec.layout}; download: {spec.source}"


def _require(name: str, root: Path, *candidates: str) -> Path:
    """The first of ``candidates`` (relative to root) that exists, else a one-line layout error."""
    for candidate in candidates:
        if (root / candidate).exists():
            return root / candidate
    raise UserError(_layout_message(DATABASES[name], root / candidates[0], "not found"))


def _resolve_files(name: str, folder: Path, file_names: list[str], label_file: Path) -> list[str]:
    """Absolute paths of ``file_names`` inside ``folder``, matching names case-insensitively."""
    if not folder.is_dir():
        raise UserError(_layout_message(DATABASES[name], folder, "is not a folder"))
    on_disk = {entry.lower(): entry for entry in os.listdir(folder)}
    missing = [file_name for file_name in file_names if file_name.lower() not in on_disk]
    if missing:
        raise UserError(f"{name}: {len(missing)} of {len(file_names)} images listed in {label_file} are missing "
                        f"from {folder}, e.g. {missing[0]}; download: {DATABASES[name].source}")
    return [str((folder / on_disk[file_name.lower()]).resolve()) for file_name in file_names]


def _frame(path, reference, distortion, mos, mos_raw, **extra) -> pd.DataFrame:
    columns = dict(path=path, reference=reference, distortion=distortion, mos=mos, mos_raw=mos_raw, **extra)
    return pd.DataFrame(columns)


def _read_mat(name: str, path: Path) -> dict:
    from scipy.io import loadmat

    try:
        return loadmat(path)
    except (OSError, ValueError, TypeError, NotImplementedError) as exc:
        raise UserError(f"{name}: {path} is not a readable MATLAB file ({exc})") from None


def _mat_vector(name: str, mat: dict, key: str, path: Path) -> np.ndarray:
    if key not in mat:
        keys = ", ".join(k for k in mat if not k.startswith("__"))
        raise UserError(f"{name}: {path} has no variable {key!r} (found: {keys})")
    return np.asarray(mat[key]).ravel()


def _mat_strings(values: np.ndarray) -> list[str]:
    """A MATLAB cell array of strings as loaded by scipy (nested object arrays) -> list of str."""
    return [str(np.asarray(value).ravel()[0]) for value in values]


@register("live", layout="ROOT/{jp2k,jpeg,wn,gblur,fastfading,refimgs}/, ROOT/dmos_realigned.mat or "
          "ROOT/dmos.mat, ROOT/refnames_all.mat (LIVE IQA release 2)",
          source="https://live.ece.utexas.edu/research/quality/subjective.htm")
def load_live(root: Path) -> pd.DataFrame:
    """LIVE release 2: 779 distorted images of 29 references, 5 types; DMOS, mos = 100 - DMOS.

    Uses ``dmos_realigned.mat`` (``dmos_new``, ``orgs``) when present, else ``dmos.mat`` (``dmos``,
    ``orgs``); both hold 982 entries in folder order jp2k, jpeg, wn, gblur, fastfading with files
    ``imgN.bmp`` numbered per folder; ``orgs == 1`` marks the 203 reference copies, which are dropped.
    Verified against the real realigned DMOS, the original per-type DMOS file and the LIVE list
    (same 779 images, values and references); the fixture .mat files are rebuilt from them.
    """
    refnames_path = _require("live", root, "refnames_all.mat")
    dmos_path = _require("live", root, "dmos_realigned.mat", "dmos.mat")
    dmos_mat = _read_mat("live", dmos_path)
    dmos_key = "dmos_new" if dmos_path.name == "dmos_realigned.mat" else "dmos"
    dmos = _mat_vector("live", dmos_mat, dmos_key, dmos_path).astype(np.float64)
    orgs = _mat_vector("live", dmos_mat, "orgs", dmos_path).astype(bool)
    refnames = _mat_strings(_mat_vector("live", _read_mat("live", refnames_path), "refnames_all", refnames_path))
    expected = sum(count for _, count in LIVE_FOLDERS)
    for label, values, source in (("dmos", dmos, dmos_path), ("orgs", orgs, dmos_path),
                                  ("refnames_all", refnames, refnames_path)):
        if len(values) != expected:
            raise UserError(f"live: {source} variable {label!r} has {len(values)} entries, expected {expected} "
                            "(LIVE release 2 order: jp2k 227, jpeg 233, wn 174, gblur 174, fastfading 174)")
    folders = [folder for folder, count in LIVE_FOLDERS for _ in range(count)]
    numbers = [index + 1 for _, count in LIVE_FOLDERS for index in range(count)]
    keep = np.flatnonzero(~orgs)
    paths: list[str] = []
    for folder, _ in LIVE_FOLDERS:
        names = [f"img{numbers[i]}.bmp" for i in keep if folders[i] == folder]
        paths += _resolve_files("live", root / folder, names, dmos_path)
    references = _resolve_files("live", root / "refimgs", [refnames[i] for i in keep], refnames_path)
    return _frame(paths, references, [LIVE_DISTORTIONS[folders[i]] for i in keep],
                  LIVE_DMOS_MAX - dmos[keep], dmos[keep])


def _load_tid(name: str, root: Path, n_types: int) -> pd.DataFrame:
    label_path = _require(name, root, "mos_with_names.txt")
    try:
        table = pd.read_csv(label_path, sep=r"\s+", header=None, names=["mos", "file"], dtype={"file": str},
                            encoding="latin-1")
    except (ValueError, pd.errors.ParserError) as exc:
        raise UserError(f"{name}: {label_path} is not 'MOS filename' per line ({exc})") from None
    parts = table["file"].str.extract(r"^[iI](\d\d)_(\d\d)_(\d)\.", expand=True)
    if parts.isna().any().any() or table["mos"].isna().any():
        bad = table["file"][parts.isna().any(axis=1) | table["mos"].isna()].iloc[0]
        raise UserError(f"{name}: {label_path}: line for {bad!r} is not 'MOS iNN_TT_L.bmp'")
    codes = parts[1].astype(int)
    if codes.min() < 1 or codes.max() > n_types:
        raise UserError(f"{name}: {label_path}: distortion codes must be 01..{n_types:02d}")
    paths = _resolve_files(name, root / "distorted_images", table["file"].tolist(), label_path)
    references = _resolve_files(name, root / "reference_images", [f"I{ref}.BMP" for ref in parts[0]], label_path)
    mos = table["mos"].to_numpy(np.float64)
    return _frame(paths, references, [TID_DISTORTIONS[code - 1] for code in codes], mos, mos)


@register("tid2013", layout="ROOT/mos_with_names.txt, ROOT/distorted_images/, ROOT/reference_images/",
          source="https://www.ponomarenko.info/tid2013.htm")
def load_tid2013(root: Path) -> pd.DataFrame:
    """TID2013: 3000 images of 25 references, 24 types x 5 levels; MOS 0..9, higher is better.

    ``mos_with_names.txt`` holds ``MOS filename`` per line; file names are matched case-insensitively
    (the release mixes ``i01_01_1.bmp`` and ``I01.BMP``). Verified against the reconstructed official
    label file (3000 lines) and the TID2013 list (same MOS and references).
    """
    return _load_tid("tid2013", root, n_types=24)


@register("tid2008", layout="ROOT/mos_with_names.txt, ROOT/distorted_images/, ROOT/reference_images/",
          source="https://www.ponomarenko.info/tid2008.htm")
def load_tid2008(root: Path) -> pd.DataFrame:
    """TID2008: 1700 images of 25 references, 17 types x 4 levels; MOS 0..9, higher is better.

    Same layout as TID2013 (per the TID2008 readme). Not verified against a shipped
    ``mos_with_names.txt``: the test fixture is built from the TID2008 list (names and MOS).
    """
    return _load_tid("tid2008", root, n_types=17)


@register("csiq", layout="ROOT/dst_imgs/{awgn,blur,contrast,fnoise,jpeg,jpeg2000}/, ROOT/src_imgs/, and "
          "ROOT/csiq.DMOS.xlsx or ROOT/CSIQ.txt (dis_img_path,dis_type,ref_img_path,score)",
          source="https://s2.smu.edu/~eclarson/csiq.html")
def load_csiq(root: Path) -> pd.DataFrame:
    """CSIQ: 866 images of 30 references, 6 types; DMOS 0..1, mos = 1 - DMOS.

    Reads ``CSIQ.txt`` (the common list format, paths relative to the folder holding ``dst_imgs``;
    verified: the fixture is the real list) or else the official ``csiq.DMOS.xlsx`` (sheet
    ``all_by_image``: ``image, dst_type, dst_lev, dmos``; needs openpyxl; NOT verified against a
    real file, its column and type names follow the CSIQ release notes).
    """
    label_path = _require("csiq", root, "CSIQ.txt", "csiq.DMOS.xlsx")
    if label_path.suffix == ".txt":
        table = _read_list(label_path, ["dis_img_path", "ref_img_path", "score"])
        dist = [Path(p) for p in table["dis_img_path"]]
        folders = [p.parent.name.lower() for p in dist]
        dst_names = [p.name for p in dist]
        src_names = [Path(p).name for p in table["ref_img_path"]]
        dmos = table["score"].to_numpy(np.float64)
    else:
        try:
            table = pd.read_excel(label_path, sheet_name="all_by_image")
        except ImportError:
            raise UserError(f"csiq: reading {label_path} needs openpyxl (pip install openpyxl), "
                            "or provide CSIQ.txt") from None
        types = table["dst_type"].astype(str).str.strip().str.lower()
        unknown = sorted(set(types) - set(CSIQ_XLSX_TYPES))
        if unknown:
            raise UserError(f"csiq: {label_path}: unknown dst_type {unknown[0]!r}")
        folders = [CSIQ_XLSX_TYPES[t][0] for t in types]
        images = table["image"].astype(str).str.strip()
        dst_names = [f"{image}.{CSIQ_XLSX_TYPES[t][1]}.{int(level)}.png"
                     for image, t, level in zip(images, types, table["dst_lev"])]
        src_names = [f"{image}.png" for image in images]
        dmos = table["dmos"].to_numpy(np.float64)
    unknown_folders = sorted(set(folders) - set(CSIQ_DISTORTIONS))
    if unknown_folders:
        raise UserError(f"csiq: {label_path}: unknown distortion folder {unknown_folders[0]!r}")
    dst_root = _require("csiq", root, "dst_imgs")
    on_disk = {entry.lower(): entry for entry in os.listdir(dst_root)}
    paths = np.empty(len(dst_names), dtype=object)
    for folder in sorted(set(folders)):
        rows = [i for i, f in enumerate(folders) if f == folder]
        paths[rows] = _resolve_files("csiq", dst_root / on_disk.get(folder, folder),
                                     [dst_names[i] for i in rows], label_path)
    references = _resolve_files("csiq", root / "src_imgs", src_names, label_path)
    return _frame(list(paths), references, [CSIQ_DISTORTIONS[f] for f in folders], 1.0 - dmos, dmos)


@register("kadid10k", layout="ROOT/dmos.csv (dist_img,ref_img,dmos,var), ROOT/images/",
          source="https://database.mmsp-kn.de/kadid-10k-database.html")
def load_kadid10k(root: Path) -> pd.DataFrame:
    """KADID-10k: 10125 images of 81 references, 25 types x 5 levels; MOS 1..5 (column ``dmos``), higher is better.

    Verified against the reconstructed official ``dmos.csv`` and the KADID-10k list.
    """
    label_path = _require("kadid10k", root, "dmos.csv")
    table = _read_list(label_path, ["dist_img", "ref_img", "dmos"])
    codes = table["dist_img"].astype(str).str.extract(r"^I\d+_(\d\d)_\d\d\.", expand=False)
    if codes.isna().any():
        raise UserError(f"kadid10k: {label_path}: image name {table['dist_img'][codes.isna()].iloc[0]!r} "
                        "is not INN_TT_LL.png")
    paths = _resolve_files("kadid10k", root / "images", table["dist_img"].tolist(), label_path)
    references = _resolve_files("kadid10k", root / "images", table["ref_img"].tolist(), label_path)
    mos = table["dmos"].to_numpy(np.float64)
    return _frame(paths, references, [KADID_DISTORTIONS[int(code) - 1] for code in codes], mos, mos)


@register("koniq10k", layout="ROOT/koniq10k_scores_and_distributions.csv (image_name,...,MOS,...) and/or "
          "ROOT/koniq10k_distributions_sets.csv (adds the official 'set' column), ROOT/1024x768/",
          source="https://database.mmsp-kn.de/koniq-10k-database.html")
def load_koniq10k(root: Path) -> pd.DataFrame:
    """KonIQ-10k: 10073 authentic images (no references); MOS column as shipped, higher is better.

    The ``set`` column (training/validation/test, from ``koniq10k_distributions_sets.csv``) is the
    official split. Verified against the real ``koniq10k_distributions_sets.csv``; the
    ``scores_and_distributions`` fixture is derived from it (same ``image_name`` and ``MOS`` columns).
    """
    label_path = _require("koniq10k", root, "koniq10k_scores_and_distributions.csv", "koniq10k_distributions_sets.csv")
    table = _read_list(label_path, ["image_name", "MOS"])
    sets_path = root / "koniq10k_distributions_sets.csv"
    extra = {}
    if sets_path.exists():
        sets = _read_list(sets_path, ["image_name", "set"]).set_index("image_name")["set"]
        missing = ~table["image_name"].isin(sets.index)
        if missing.any():
            raise UserError(f"koniq10k: {sets_path} has no 'set' for {table['image_name'][missing].iloc[0]!r}")
        extra["set"] = sets.loc[table["image_name"]].to_numpy()
    paths = _resolve_files("koniq10k", root / "1024x768", table["image_name"].tolist(), label_path)
    mos = table["MOS"].to_numpy(np.float64)
    return _frame(paths, "", AUTHENTIC, mos, mos, **extra)


@register("clive", layout="ROOT/Data/AllMOS_release.mat, ROOT/Data/AllImages_release.mat, ROOT/Images/",
          source="https://live.ece.utexas.edu/research/ChallengeDB/index.html")
def load_clive(root: Path) -> pd.DataFrame:
    """LIVE In the Wild Challenge: 1162 authentic images; MOS 0..100, higher is better.

    ``AllImages_release`` (cell of file names) and ``AllMOS_release`` (MOS) are aligned; their first
    7 entries are the trainer images (in ``Images/trainingImages/``) and are dropped. The .mat layout
    follows the ChallengeDB release notes (NOT verified against the real files); the fixture uses
    the real image names and MOS of the reconstructed label file.
    """
    images_path = _require("clive", root, "Data/AllImages_release.mat")
    mos_path = _require("clive", root, "Data/AllMOS_release.mat")
    names = _mat_strings(_mat_vector("clive", _read_mat("clive", images_path), "AllImages_release", images_path))
    mos = _mat_vector("clive", _read_mat("clive", mos_path), "AllMOS_release", mos_path).astype(np.float64)
    if len(names) != len(mos):
        raise UserError(f"clive: {images_path} lists {len(names)} images but {mos_path} has {len(mos)} scores")
    names, mos = names[CLIVE_TRAINER_IMAGES:], mos[CLIVE_TRAINER_IMAGES:]
    paths = _resolve_files("clive", root / "Images", names, images_path)
    return _frame(paths, "", AUTHENTIC, mos, mos)


@register("csv", layout="a CSV file with columns path and mos (higher is better) or dmos (lower is better), "
          "optional reference (a content group key) and distortion; relative paths are relative to the CSV's folder",
          source="(your own data)")
def load_csv(root: Path) -> pd.DataFrame:
    """Any ``path,mos[,reference][,distortion]`` CSV; a ``dmos`` column instead of ``mos`` is negated.

    ``mos_raw`` keeps the file's value; with ``dmos``, ``mos = -dmos`` (an order-preserving flip).
    Refused with one line naming the file and row: no data rows, an empty path or score, a score that
    is not a finite number, an image listed twice (paths compared after resolving them against the
    CSV's folder, so ``a.png`` and ``./a.png`` are one image), a missing image.
    ``reference`` is a content group key (splits never put one key on both sides): any string,
    kept as written; a value naming an existing file (absolute, or relative to the CSV's folder) is
    stored as that file's absolute path, so two spellings of one file are one group. An empty cell
    (or no column) makes the image a group of its own.
    """
    if root.is_dir():
        raise UserError(_layout_message(DATABASES["csv"], root, "is a folder, expected the CSV file"))
    try:
        table = pd.read_csv(root, dtype={"path": str, "reference": str, "distortion": str})
    except (ValueError, pd.errors.ParserError) as exc:  # also empty files and undecodable bytes
        raise UserError(f"csv: {root}: not a readable CSV file ({str(exc).strip().splitlines()[0]})") from None
    score_column = "mos" if "mos" in table.columns else "dmos"
    _check_columns(root, table, ["path", score_column])
    if table.empty:
        raise UserError(f"csv: {root}: no images listed (only a header)")
    if table[score_column].isna().any() or table["path"].isna().any():
        raise UserError(f"csv: {root}: empty path or {score_column} in row {int(table.isna().any(axis=1).argmax()) + 2}")
    numbers = pd.to_numeric(table[score_column], errors="coerce").to_numpy(np.float64)
    if not np.isfinite(numbers).all():
        row = int(np.argmin(np.isfinite(numbers)))
        raise UserError(f"csv: {root}: {score_column} {str(table[score_column].iloc[row])!r} in row {row + 2} is not a "
                        "finite number")
    table[score_column] = numbers
    base = root.resolve().parent

    def absolute(value: str) -> str:
        return str(base / value) if value else ""

    paths = [absolute(value) for value in table["path"]]
    _refuse_duplicates(root, [os.path.normpath(path) for path in paths])
    missing = [path for path in paths if not Path(path).is_file()]
    if missing:
        raise UserError(f"csv: {len(missing)} of {len(paths)} images listed in {root} are missing, e.g. {missing[0]}")
    references = [_reference_key(base, value) for value in table.get("reference", pd.Series([""] * len(table))).fillna("")]
    distortions = table.get("distortion", pd.Series([AUTHENTIC] * len(table))).fillna(AUTHENTIC)
    raw = table[score_column].to_numpy(np.float64)
    return _frame(paths, references, distortions.tolist(), raw if score_column == "mos" else -raw, raw)


def _refuse_duplicates(root: Path, paths: list[str]) -> None:
    """``UserError`` naming the first image listed more than once and its rows (1 = the header)."""
    rows: dict[str, list[int]] = {}
    for row, path in enumerate(paths, start=2):
        rows.setdefault(path, []).append(row)
    repeated = [(path, found) for path, found in rows.items() if len(found) > 1]
    if repeated:
        path, found = repeated[0]
        raise UserError(f"csv: {root}: {len(repeated)} image(s) listed more than once, e.g. {path} in rows "
                        f"{', '.join(map(str, found))}; list each image once (average its scores if needed)")


def _reference_key(base: Path, value: str) -> str:
    """A csv ``reference`` cell as a group key: the absolute path when it names an existing file, else as written."""
    value = str(value).strip()
    if not value:
        return ""
    try:
        candidate = base / Path(value).expanduser()
        return str(candidate.resolve()) if candidate.is_file() else value
    except (OSError, ValueError):  # not a usable path (too long, NUL byte): a plain key
        return value


def _check_columns(path: Path, table: pd.DataFrame, required: list[str]) -> None:
    missing = [column for column in required if column not in table.columns]
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(map(str, table.columns))}")


def _read_list(path: Path, required: list[str]) -> pd.DataFrame:
    try:
        table = pd.read_csv(path)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a readable CSV file ({exc})") from None
    _check_columns(path, table, required)
    return table
