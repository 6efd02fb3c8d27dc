"""Content-disjoint splits and stable seeds on synthetic frames (no shared data needed: always run).

The expectations are computed independently of ``rankiqa``: seeds with ``hashlib`` as documented
in ``rankiqa.seeding``, held-out references with NumPy as documented in ``rankiqa.data.splits``.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from rankiqa.data import make_splits
from rankiqa.data.splits import Split, content_groups, holdout
from rankiqa.seeding import stable_seed


def synthetic_database(n_references: int, per_reference: int = 3, authentic: int = 0) -> pd.DataFrame:
    """``n_references`` references with ``per_reference`` distorted images each, then ``authentic``
    images without a reference; rows interleaved so that positions do not follow the references."""
    rows = [(f"dist/r{r:02d}_{k}.png", f"refs/r{r:02d}.png") for k in range(per_reference) for r in range(n_references)]
    rows += [(f"wild/{i:03d}.jpg", None) for i in range(authentic)]
    return pd.DataFrame(rows, columns=["path", "reference"]).assign(mos=np.arange(len(rows), dtype=float))


def blake_seed(*parts) -> int:
    """stable_seed's documented recipe: BLAKE2b-64 of the parts joined by U+001F, top bit dropped."""
    text = "\x1f".join(str(part) for part in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big") >> 1


def expected_test_references(references: list[str], fraction: float, seed: int) -> set[str]:
    """Held-out references: sorted unique references permuted by default_rng(seed); the last
    n - floor((1 - fraction) n) of the permutation are held out (at least 1, never all)."""
    unique = sorted(set(references))
    n_keep = min(max(int(np.floor((1 - fraction) * len(unique) + 1e-9)), 1), len(unique) - 1)
    order = np.random.default_rng(seed).permutation(len(unique))
    return {unique[i] for i in order[n_keep:]}


def test_stable_seed_follows_its_documented_recipe():
    assert stable_seed(0, "a.png", "gaussian_blur") == blake_seed(0, "a.png", "gaussian_blur")
    assert stable_seed(7, "split", 3) == blake_seed(7, "split", 3)
    assert stable_seed() == blake_seed()
    # separators matter: ("ab", "c") and ("a", "bc") must not collide
    assert stable_seed("ab", "c") != stable_seed("a", "bc")
    assert 2**62 <= max(stable_seed(i) for i in range(64)) < 2**63  # the full 63-bit range, nothing above


def test_content_groups_use_the_reference_or_else_the_image_path():
    df = pd.DataFrame({"path": ["a.png", "b.png", "c.jpg", "d.jpg"], "reference": ["r1", "r1", "", None]})
    assert list(content_groups(df)) == ["r1", "r1", "c.jpg", "d.jpg"]


@pytest.mark.parametrize(("n_references", "train", "expected"), [(29, 0.8, (23, 6)), (25, 0.8, (20, 5)), (10, 0.8, (8, 2)),
                                                                  (30, 0.5, (15, 15)), (2, 0.99, (1, 1)), (2, 0.01, (1, 1)),
                                                                  (3, 0.1, (1, 2)), (3, 0.99, (2, 1))])
def test_split_counts_follow_the_documented_floor(n_references, train, expected):
    df = synthetic_database(n_references)
    for split in make_splits(df, n=3, train=train, seed=1):
        train_refs, test_refs = set(df["reference"][split.train]), set(df["reference"][split.test])
        assert (len(train_refs), len(test_refs)) == expected
        assert not train_refs & test_refs


def test_each_split_uses_its_own_documented_seed_and_is_content_disjoint():
    df = synthetic_database(29)
    splits = make_splits(df, n=10, train=0.8, seed=5)
    assert len(splits) == 10
    held_out = []
    for index, split in enumerate(splits):
        expected = expected_test_references(list(df["reference"]), 0.2, blake_seed(5, "split", index))
        assert set(df["reference"][split.test]) == expected
        assert set(df["reference"][split.train]) == set(df["reference"]) - expected
        # every row lands in exactly one part, rows are given as sorted positions
        assert sorted([*split.train, *split.test]) == list(range(len(df)))
        assert list(split.train) == sorted(split.train) and list(split.test) == sorted(split.test)
        held_out.append(frozenset(expected))
    assert len(set(held_out)) == 10  # ten different test sets, not one seed reused


def test_defaults_are_ten_splits_80_20_seed_0_and_one_split_works():
    df = synthetic_database(10)
    splits = make_splits(df)
    assert len(splits) == 10
    for index, split in enumerate(splits):
        assert set(df["reference"][split.test]) == expected_test_references(list(df["reference"]), 0.2, blake_seed(0, "split", index))
    single = make_splits(df, n=1)
    assert len(single) == 1 and np.array_equal(single[0].test, splits[0].test)


def test_the_held_out_part_is_never_empty_nor_everything():
    df = synthetic_database(3)
    # a fraction so small that floor((1 - f) * 3) rounds to 3: still one reference held out
    split = holdout(df, 1e-12, seed=0)
    assert (len(set(df["reference"][split.train])), len(set(df["reference"][split.test]))) == (2, 1)


def test_a_split_is_immutable():
    split = make_splits(synthetic_database(5), n=1)[0]
    with pytest.raises(AttributeError):
        split.test = np.arange(3)  # type: ignore[misc]


def test_splits_are_reproducible_and_prefix_stable():
    df = synthetic_database(25)
    first = make_splits(df, n=4, seed=2)
    again = make_splits(df, n=7, seed=2)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a.test, b.test)
        np.testing.assert_array_equal(a.train, b.train)
    other = make_splits(df, n=4, seed=3)
    assert any(not np.array_equal(a.test, b.test) for a, b in zip(first, other))


def test_authentic_images_are_split_one_by_one():
    df = synthetic_database(0, authentic=10)
    split = holdout(df, 0.2, seed=0)
    assert isinstance(split, Split) and (len(split.train), len(split.test)) == (8, 2)
    assert set(df["path"][split.test]) == expected_test_references(list(df["path"]), 0.2, 0)
    mixed = synthetic_database(4, per_reference=2, authentic=6)  # 4 references + 6 single images = 10 contents
    split = holdout(mixed, 0.3, seed=4)
    groups = content_groups(mixed)
    assert (len(set(groups[split.train])), len(set(groups[split.test]))) == (7, 3)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"n": 0}, "n .*at least 1, got 0"),
    ({"train": 0.0}, "train must be between 0 and 1"),
    ({"train": 1.0}, "train must be between 0 and 1"),
])
def test_split_argument_errors_name_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_splits(synthetic_database(5), **kwargs)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_holdout_fraction_must_be_strictly_between_0_and_1(fraction):
    with pytest.raises(ValueError, match=f"fraction must be between 0 and 1 .*got {fraction}"):
        holdout(synthetic_database(5), fraction, seed=0)


def test_one_content_cannot_be_split():
    with pytest.raises(ValueError, match="need at least 2 reference contents to split, found 1"):
        holdout(synthetic_database(1), 0.2, seed=0)
