"""IQA database loaders on placeholder folders built around the REAL label files, and splits."""
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from _shared import require_shared
from iqa_fixtures import BUILDERS, build_live, build_tid2013, database_root
from rankiqa.data import list_databases, load_database, make_splits
from rankiqa.data.databases import COLUMNS, DATABASES
from rankiqa.data.splits import content_groups, holdout
from rankiqa.errors import UserError

# name -> (rows, distinct references (0 = authentic), list file, list score is higher-is-better)
EXPECTED = {
    "live": (779, 29, "LIVE.txt", False),
    "tid2013": (3000, 25, "TID2013.txt", True),
    "tid2008": (1700, 25, "TID2008.txt", True),
    "csiq": (866, 30, "CSIQ.txt", False),
    "kadid10k": (10125, 81, "KADID-10k.txt", True),
    "koniq10k": (10073, 0, "KonIQ-10k.txt", True),
    "clive": (1162, 0, "LIVE_Challenge.txt", True),
    "csv": (30, 6, "CSIQ.txt", False),
}


@pytest.fixture(scope="module")
def labels():
    return require_shared("labels")


@pytest.fixture(scope="module")
def built(labels, tmp_path_factory):
    """Build each database folder once per module, on demand."""
    cache = {}

    def get(name):
        if name not in cache:
            root = tmp_path_factory.mktemp(name)
            BUILDERS[name](labels, root)
            cache[name] = load_database(name, database_root(name, root))
        return cache[name]

    return get


def _key(path: str, name: str) -> str:
    parts = Path(path).parts
    return "/".join(parts[-2:]).lower() if name in ("live", "csiq") else parts[-1].lower()


def test_every_registered_database_has_a_fixture_and_expectation():
    assert set(list_databases()) == set(BUILDERS) == set(EXPECTED)
    for spec in DATABASES.values():
        assert spec.layout and spec.source and spec.description


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_counts_directions_and_references_match_real_labels(name, built, labels):
    rows, n_refs, list_file, list_higher_better = EXPECTED[name]
    df = built(name)
    assert list(df.columns[:5]) == list(COLUMNS)
    assert len(df) == rows
    assert df["path"].is_unique
    assert all(Path(p).is_file() for p in df["path"].head(50))
    references = set(df["reference"]) - {""}
    assert len(references) == n_refs
    assert all(Path(r).is_file() for r in references)

    listed = pd.read_csv(labels / "lists" / list_file)
    listed_score = dict(zip((_key(p, name) for p in listed["dis_img_path"]), listed["score"]))
    keys = [_key(p, name) for p in df["path"]]
    matched = [i for i, k in enumerate(keys) if k in listed_score]
    assert len(matched) >= min(rows, len(listed)) - 1
    list_scores = np.array([listed_score[keys[i]] for i in matched])
    # The direction convention: mos is higher-is-better whatever the list uses.
    rho = stats.spearmanr(df["mos"].to_numpy()[matched], list_scores).statistic
    # KonIQ: the list holds the 1..5 mean, the sets file a rescaled MOS (1..100), not exactly order-equivalent.
    tolerance = 0.01 if name == "koniq10k" else 1e-9
    assert rho == pytest.approx(1.0 if list_higher_better else -1.0, abs=tolerance)
    if n_refs:  # reference assignment agrees with the list
        listed_ref = dict(zip((_key(p, name) for p in listed["dis_img_path"]), listed["ref_img_path"]))
        assert all(Path(df["reference"][i]).name.lower() == Path(listed_ref[keys[i]]).name.lower() for i in matched)


def test_live_conversion_distortions_and_dmos_variants(built, labels, tmp_path):
    df = built("live")
    np.testing.assert_allclose(df["mos"], 100.0 - df["mos_raw"])
    assert df["distortion"].value_counts().to_dict() == {
        "jpeg": 175, "jpeg2000": 169, "white_noise": 145, "gaussian_blur": 145, "fast_fading": 145}
    listed = pd.read_csv(labels / "lists" / "LIVE.txt")
    assert df["mos_raw"].to_numpy() == pytest.approx(
        listed.set_index(listed["dis_img_path"].str.lower())["score"].loc[
            ["live/" + _key(p, "live") for p in df["path"]]].to_numpy())
    build_live(labels, tmp_path)
    (tmp_path / "dmos_realigned.mat").unlink()
    original = load_database("live", tmp_path)  # falls back to dmos.mat (original DMOS)
    assert len(original) == 779 and not np.allclose(original["mos_raw"], df["mos_raw"])
    assert stats.spearmanr(original["mos_raw"], df["mos_raw"]).statistic > 0.9


def test_live_modified_mat_files_give_one_clear_line(labels, tmp_path):
    """The shared, MODIFIED dmos_realigned.mat/refnames_all.mat (779 entries) are not the release layout."""
    build_live(labels, tmp_path)
    shutil.copy(labels / "official_format" / "dmos_realigned.mat", tmp_path / "dmos_realigned.mat")
    with pytest.raises(UserError, match=r"dmos_realigned.mat variable 'orgs' has 779 entries, expected 982"):
        load_database("live", tmp_path)
    build_live(labels, tmp_path)
    shutil.copy(labels / "official_format" / "refnames_all.mat", tmp_path / "refnames_all.mat")
    with pytest.raises(UserError, match=r"refnames_all.mat variable 'refnames_all' has 779 entries, expected 982"):
        load_database("live", tmp_path)


def test_tid2013_matches_list_and_handles_case(built, labels):
    df = built("tid2013")
    assert df["distortion"].nunique() == 24
    assert (df.groupby("reference").size() == 120).all()
    assert any(Path(p).name.isupper() for p in df["path"]) and any(Path(p).name.islower() for p in df["path"])
    assert df["mos"].between(0.24, 7.22).all()
    assert (df["mos"] == df["mos_raw"]).all()


def test_kadid_distortion_names_are_one_to_one_with_the_list(built, labels):
    df = built("kadid10k")
    listed = pd.read_csv(labels / "lists" / "KADID-10k.txt")
    pairs = set(zip(df["distortion"], listed.set_index(listed["dis_img_path"].map(lambda p: Path(p).name))
                    ["dis_type"].loc[[Path(p).name for p in df["path"]]]))
    assert len(pairs) == 25 == len({a for a, _ in pairs}) == len({b for _, b in pairs})


def test_koniq_official_split_and_clive_drops_trainers(built):
    koniq = built("koniq10k")
    assert koniq["set"].value_counts().to_dict() == {"training": 7058, "test": 2015, "validation": 1000}
    assert (koniq["distortion"] == "authentic").all() and (koniq["reference"] == "").all()
    clive = built("clive")
    assert not clive["path"].str.contains("trainingImages").any()
    assert clive["mos"].between(0, 100).all()


def test_csv_database_negates_dmos(built):
    df = built("csv")
    np.testing.assert_allclose(df["mos"], -df["mos_raw"])
    assert set(df["distortion"]) >= {"AWGN"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_wrong_root_is_one_line_naming_file_layout_and_source(name, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError) as exc:
        load_database(name, tmp_path / "empty")
    message = str(exc.value)
    assert "\n" not in message
    assert str(tmp_path / "empty") in message
    if name != "csv":
        assert "expected layout" in message and DATABASES[name].source in message


def test_missing_image_and_unknown_name(labels, tmp_path):
    build_tid2013(labels, tmp_path, keep=lambda ref, kind: ref <= 2)
    next((tmp_path / "distorted_images").iterdir()).unlink()
    with pytest.raises(UserError, match=r"1 of 240 images listed in .*mos_with_names.txt are missing"):
        load_database("tid2013", tmp_path)
    with pytest.raises(UserError, match="did you mean 'tid2013'"):
        load_database("tid2031", tmp_path)


def test_splits_are_content_disjoint_and_reproducible(built):
    df = built("tid2013")
    splits = make_splits(df, n=10, train=0.8, seed=3)
    groups = content_groups(df)
    seen_test = set()
    for split in splits:
        train_refs, test_refs = set(groups[split.train]), set(groups[split.test])
        assert not train_refs & test_refs
        assert (len(train_refs), len(test_refs)) == (20, 5)
        assert len(split.train) + len(split.test) == len(df)
        seen_test |= test_refs
    assert len(seen_test) > 10  # different seeds, different test contents
    again = make_splits(df, n=2, train=0.8, seed=3)
    np.testing.assert_array_equal(again[1].test, splits[1].test)


def test_splits_live_counts_and_authentic_by_image(built):
    live = built("live")
    split = make_splits(live, n=1, seed=0)[0]
    assert len(set(live["reference"][split.train])) == 23 and len(set(live["reference"][split.test])) == 6
    authentic = pd.DataFrame({"path": [f"{i}.jpg" for i in range(10)], "reference": "", "mos": range(10)})
    split = holdout(authentic, 0.2, seed=0)
    assert (len(split.train), len(split.test)) == (8, 2)


def test_split_argument_errors():
    df = pd.DataFrame({"path": ["a", "b"], "reference": ["r", "r"]})
    with pytest.raises(ValueError, match="at least 2 reference"):
        make_splits(df, n=1)
    with pytest.raises(ValueError, match="train must be"):
        make_splits(df, train=1.2)


@pytest.mark.parametrize("text, message", [
    ("path,mos\n", r"no images listed \(only a header\)"),
    ("", "not a readable CSV file"),
    ("path,mos\na.png,1\nb.png,2\n./a.png,3\n", r"1 image\(s\) listed more than once, e.g. .*a.png in rows 2, 4"),
    ("path,mos\na.png,1\nb.png,abc\n", "mos 'abc' in row 3 is not a finite number"),
    ("path,mos\na.png,1\nb.png,inf\n", "mos 'inf' in row 3 is not a finite number"),
    ("path,mos\na.png,1\nb.png,\n", "empty path or mos in row 3"),
    ("path,score\na.png,1\n", "missing column"),
    ("path,mos\na.png,1\nmissing.png,2\n", "1 of 2 images listed in .* are missing"),
])
def test_bad_csv_databases_are_one_line_errors(tmp_path, text, message):
    for name in ("a.png", "b.png"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "db.csv").write_text(text)
    with pytest.raises(UserError, match=message) as exc:
        load_database("csv", tmp_path / "db.csv")
    assert "\n" not in str(exc.value) and "db.csv" in str(exc.value)


def test_csv_reference_is_a_group_key_or_an_existing_file(tmp_path):
    from PIL import Image

    for name in ("a", "b", "c", "d", "e", "ref"):
        Image.fromarray(np.full((40, 40, 3), 100, np.uint8)).save(tmp_path / f"{name}.png")
    pd.DataFrame({"path": ["a.png", "b.png", "c.png", "d.png", "e.png"], "mos": [1, 2, 3, 4, 5],
                  "reference": ["stream.bmp", "stream.bmp", "ref.png", str(tmp_path / "ref.png"), None]}
                 ).to_csv(tmp_path / "db.csv", index=False)
    df = load_database("csv", tmp_path / "db.csv")
    absolute = str((tmp_path / "ref.png").resolve())
    assert df["reference"].tolist() == ["stream.bmp", "stream.bmp", absolute, absolute, ""]
    groups = content_groups(df)
    assert len(set(groups)) == 3 and groups[4] == df["path"][4]  # empty: the image is its own group
    for split in make_splits(df, n=5, train=0.5, seed=0):
        assert not set(groups[split.train]) & set(groups[split.test])
