"""Build placeholder IQA database folders, in each database's shipped layout, around the REAL label
files of the shared data folder (``labels/``). Images are empty files unless ``write`` draws them.

Every builder takes ``(labels, root, write)``: ``labels`` is ``shared/data/labels``, ``write(path)``
creates one image file; the TID builders also take ``keep(reference, type) -> bool`` to build a
subset. The folder is then ready for ``load_database``.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from scipy.io import savemat

from rankiqa.data.databases import LIVE_FOLDERS

Writer = Callable[[Path], None]


def touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def png_writer(size: int = 40, seed: int = 0) -> Writer:
    """A writer drawing small random-texture images (different per file) with PIL."""
    from PIL import Image

    counter = iter(range(10**9))

    def write(path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(seed + next(counter))
        smooth = np.kron(rng.integers(0, 256, (size // 8, size // 8, 3)), np.ones((8, 8, 1)))
        noise = rng.normal(0, rng.uniform(0, 60), smooth.shape)
        Image.fromarray(np.clip(smooth + noise, 0, 255).astype(np.uint8)).save(path, format="PNG")

    return write


def _cell(names: list[str]) -> np.ndarray:
    cell = np.empty((1, len(names)), dtype=object)
    cell[0, :] = names
    return cell


def live_tables(labels: Path) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """The full 982-entry LIVE release2 tables rebuilt from the real label files:
    (relative image paths, realigned DMOS, original DMOS, orgs, reference names)."""
    from scipy.io import loadmat

    by_type = loadmat(labels / "official_format" / "LIVE2_labels_original_dmos_by_type.mat")
    realigned = loadmat(labels / "official_format" / "dmos_realigned.mat")["dmos_new"].ravel()
    listed = pd.read_csv(labels / "lists" / "LIVE.txt")
    reference_of = dict(zip(listed["dis_img_path"].str.replace("LIVE/", "", n=1), listed["ref_img_path"]))
    paths = [f"{folder}/img{i + 1}.bmp" for folder, count in LIVE_FOLDERS for i in range(count)]
    original = np.concatenate([by_type[folder].ravel() for folder, _ in LIVE_FOLDERS])
    orgs = (original == 0).astype(np.float64)
    first_reference = Path(listed["ref_img_path"].iloc[0]).name
    refnames = [Path(reference_of[p]).name if p in reference_of else first_reference for p in paths]
    return paths, realigned, original, orgs, refnames


def build_live(labels: Path, root: Path, write: Writer = touch) -> None:
    paths, realigned, original, orgs, refnames = live_tables(labels)
    root.mkdir(parents=True, exist_ok=True)
    savemat(root / "dmos_realigned.mat", {"dmos_new": realigned[None, :], "dmos_std": np.ones((1, 982)),
                                          "orgs": orgs[None, :]})
    savemat(root / "dmos.mat", {"dmos": original[None, :], "orgs": orgs[None, :]})
    savemat(root / "refnames_all.mat", {"refnames_all": _cell(refnames)})
    for path in paths:
        write(root / path)
    for name in sorted(set(refnames)):
        write(root / "refimgs" / name)


def build_tid2013(labels: Path, root: Path, write: Writer = touch, keep=None) -> None:
    """TID2013 from the reconstructed ``mos_with_names.txt``; names on disk use the release's mixed
    case (upper-case for references and for odd distortion codes) to exercise case-insensitive matching.
    ``keep(ref_number, type_number)`` keeps a subset."""
    lines = (labels / "official_format" / "tid2013_mos_with_names.RECONSTRUCTED.txt").read_text().split("\n")
    rows = [line.split() for line in lines if line.strip()]
    _write_tid(root, [(float(mos), name) for mos, name in rows], write, keep)


def build_tid2008(labels: Path, root: Path, write: Writer = touch, keep=None) -> None:
    listed = pd.read_csv(labels / "lists" / "TID2008.txt")
    _write_tid(root, [(mos, Path(p).name) for p, mos in zip(listed["dis_img_path"], listed["score"])], write, keep)


def _write_tid(root: Path, rows: list[tuple[float, str]], write: Writer, keep) -> None:
    if keep is not None:
        rows = [(mos, name) for mos, name in rows if keep(int(name[1:3]), int(name[4:6]))]
    root.mkdir(parents=True, exist_ok=True)
    (root / "mos_with_names.txt").write_text("".join(f"{mos:.5f} {name}\n" for mos, name in rows))
    for _, name in rows:
        on_disk = name.upper() if int(name[4:6]) % 2 else name.lower()
        write(root / "distorted_images" / on_disk)
    for ref in sorted({name[1:3] for _, name in rows}):
        write(root / "reference_images" / f"I{ref}.BMP")


def build_csiq(labels: Path, root: Path, write: Writer = touch) -> None:
    listed = pd.read_csv(labels / "lists" / "CSIQ.txt")
    for column in ("dis_img_path", "ref_img_path"):
        listed[column] = listed[column].str.replace("CSIQ/", "", n=1)
    root.mkdir(parents=True, exist_ok=True)
    listed.to_csv(root / "CSIQ.txt", index=False)
    for path in set(listed["dis_img_path"]) | set(listed["ref_img_path"]):
        write(root / path)


def build_kadid10k(labels: Path, root: Path, write: Writer = touch) -> None:
    table = pd.read_csv(labels / "official_format" / "kadid10k_dmos.RECONSTRUCTED.csv")
    root.mkdir(parents=True, exist_ok=True)
    table.to_csv(root / "dmos.csv", index=False)
    for name in set(table["dist_img"]) | set(table["ref_img"]):
        write(root / "images" / name)


def build_koniq10k(labels: Path, root: Path, write: Writer = touch) -> None:
    """Both the official sets file (real) and a scores_and_distributions file derived from it."""
    sets = pd.read_csv(labels / "official_format" / "koniq10k_distributions_sets.csv")
    root.mkdir(parents=True, exist_ok=True)
    sets.to_csv(root / "koniq10k_distributions_sets.csv", index=False)
    sets.drop(columns=["set"]).to_csv(root / "koniq10k_scores_and_distributions.csv", index=False)
    for name in sets["image_name"]:
        write(root / "1024x768" / name)


def build_clive(labels: Path, root: Path, write: Writer = touch) -> None:
    """AllImages/AllMOS .mat files: 7 trainer images first (as released), then the 1162 scored images."""
    table = pd.read_csv(labels / "official_format" / "clive_mos.RECONSTRUCTED.csv")
    trainers = [f"trainingImages/t{i}.bmp" for i in range(1, 8)]
    names = trainers + table["image"].tolist()
    mos = np.concatenate([np.full(7, 50.0), table["mos"].to_numpy()])
    (root / "Data").mkdir(parents=True, exist_ok=True)
    savemat(root / "Data" / "AllImages_release.mat", {"AllImages_release": _cell(names).T})
    savemat(root / "Data" / "AllMOS_release.mat", {"AllMOS_release": mos[None, :]})
    for name in table["image"]:
        write(root / "Images" / name)


def build_csv(labels: Path, root: Path, write: Writer = touch) -> None:
    """A ``path,dmos,reference,distortion`` CSV of the first 30 rows of the CSIQ list (6 references), DMOS as listed."""
    listed = pd.read_csv(labels / "lists" / "CSIQ.txt").head(30)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "scores.csv", "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["path", "dmos", "reference", "distortion"])
        for path, kind, ref, score in listed[["dis_img_path", "dis_type", "ref_img_path", "score"]].itertuples(index=False):
            out.writerow([f"images/{Path(path).name}", score, f"refs/{Path(ref).name}", kind])
            write(root / "images" / Path(path).name)
        for ref in set(listed["ref_img_path"]):
            write(root / "refs" / Path(ref).name)


BUILDERS: dict[str, Callable] = {
    "live": build_live, "tid2013": build_tid2013, "tid2008": build_tid2008, "csiq": build_csiq,
    "kadid10k": build_kadid10k, "koniq10k": build_koniq10k, "clive": build_clive, "csv": build_csv,
}


def database_root(name: str, root: Path) -> Path:
    """The ROOT argument for ``load_database`` of a built fixture (the CSV file for ``csv``)."""
    return root / "scores.csv" if name == "csv" else root


def build_noise_database(root: Path, n_references: int = 12, levels: int = 5, seed: int = 0) -> Path:
    """A learnable ``csv`` database: 40-px blocky scenes with white noise of sigma 12*level and
    MOS = 5 - level (+ small jitter), so MOS really depends on the image. Returns the CSV path."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for ref in range(n_references):
        base = np.kron(rng.integers(40, 216, (5, 5, 3)), np.ones((8, 8, 1)))
        for level in range(levels):
            name = f"r{ref:02d}_l{level}.png"
            noisy = np.clip(base + rng.normal(0, 12 * level, base.shape), 0, 255).astype(np.uint8)
            Image.fromarray(noisy).save(root / name)
            rows.append((name, 5 - level + rng.normal(0, 0.2), f"r{ref:02d}.png", "white_noise"))
    pd.DataFrame(rows, columns=["path", "mos", "reference", "distortion"]).to_csv(root / "scores.csv", index=False)
    return root / "scores.csv"
