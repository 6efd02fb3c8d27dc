"""rankiqa.data.RankedSets (generated and on the fly) and split_references."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from _shared import photo
from rankiqa.data import RankedSets, split_references
from rankiqa.errors import UserError
from rankiqa.generate import generate

TYPES = ["gaussian_blur", "white_noise"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> tuple[Path, Path]:
    """(photos, generated OUT_DIR): three photos, one smaller than the 80 px patch used below."""
    root = tmp_path_factory.mktemp("ranked")
    photos = root / "photos"
    (photos / "sub").mkdir(parents=True)
    Image.fromarray(photo(0, height=96, width=120)).save(photos / "a.png")
    Image.fromarray(photo(1, height=112, width=96)).save(photos / "sub" / "b.png")
    Image.fromarray(photo(2, height=66, width=72)).save(photos / "small.png")
    (photos / "broken.jpg").write_text("not an image")
    generate(photos, root / "out", distortion_names=TYPES, seed=5, progress=False, log=lambda message: None)
    return photos, root / "out"


def locate(patch: np.ndarray, image: np.ndarray) -> list[tuple[int, int]]:
    """Every (top, left) where ``patch`` occurs exactly in ``image`` (brute force)."""
    size = patch.shape[0]
    height, width = image.shape[:2]
    return [(top, left) for top in range(height - size + 1) for left in range(width - size + 1)
            if np.array_equal(image[top : top + size, left : left + size], patch)]


def as_uint8(images: torch.Tensor) -> np.ndarray:
    return np.rint(images.permute(0, 2, 3, 1).numpy() * 255).astype(np.uint8)


def test_generated_items_have_the_documented_layout(folders):
    _, out = folders
    ds = RankedSets(out, patch_size=64, seed=0)
    assert ds.references == ["a.png", "small.png", "sub/b.png"] and ds.distortion_names == TYPES
    assert len(ds) == 6
    item = ds[5]
    assert item["images"].shape == (6, 3, 64, 64) and item["images"].dtype == torch.float32
    assert 0 <= item["images"].min() and item["images"].max() <= 1
    assert item["levels"].tolist() == [0, 1, 2, 3, 4, 5] and item["levels"].dtype == torch.int64
    assert (item["reference_id"], item["distortion_id"]) == (2, 1)
    patches = as_uint8(item["images"])
    folder = out / "images" / "sub" / "b.png"
    files = ["pristine.png"] + [f"white_noise_{level}.png" for level in range(1, 6)]
    full = [np.asarray(Image.open(folder / name)) for name in files]
    (top, left), *_ = locate(patches[5], full[5])
    for patch, image in zip(patches, full):
        assert np.array_equal(patch, image[top : top + 64, left : left + 64])
    with pytest.raises(IndexError):
        ds[6]


def test_crops_are_deterministic_and_move_with_the_epoch(folders):
    _, out = folders
    first, again = RankedSets(out, patch_size=48, seed=3), RankedSets(out, patch_size=48, seed=3)
    assert torch.equal(first[0]["images"], again[0]["images"])
    first.set_epoch(1)
    moved = sum(not torch.equal(first[i]["images"], again[i]["images"]) for i in range(len(first)))
    assert moved >= len(first) - 1
    assert torch.equal(first[0]["images"], RankedSets(out, patch_size=48, seed=3, epoch=1)[0]["images"])


def test_on_the_fly_sets_equal_generated_sets(folders):
    photos, out = folders
    for epoch in (0, 1):
        generated = RankedSets(out, patch_size=80, seed=5, epoch=epoch)
        on_the_fly = RankedSets(photos, patch_size=80, seed=5, epoch=epoch, distortions=TYPES)
        assert on_the_fly.references == generated.references and on_the_fly.skipped[0][0] == "broken.jpg"
        for index in range(len(generated)):
            expected, actual = generated[index], on_the_fly[index]
            assert torch.equal(expected["images"], actual["images"]), (epoch, index)
            assert expected["reference_id"] == actual["reference_id"]
    small = as_uint8(generated[2]["images"])
    assert small.shape == (6, 80, 80, 3)


def test_distort_crops_mode_gives_ordered_sets_of_the_same_location(folders):
    photos, _ = folders
    ds = RankedSets(photos, patch_size=64, seed=1, distortions=["gaussian_blur"], distort_crops=True)
    patches = as_uint8(ds[0]["images"]).astype(float)
    pristine = np.asarray(Image.open(photos / "a.png"))
    assert len(locate(patches[0].astype(np.uint8), pristine)) == 1
    errors = [np.mean((patch - patches[0]) ** 2) for patch in patches[1:]]
    assert errors == sorted(errors) and errors[0] > 0


def test_loader_workers_give_the_same_batches(folders):
    _, out = folders
    ds = RankedSets(out, patch_size=48, seed=2)
    serial = [batch["images"] for batch in DataLoader(ds, batch_size=2)]
    parallel = [batch["images"] for batch in DataLoader(ds, batch_size=2, num_workers=2, multiprocessing_context="spawn")]
    assert all(torch.equal(a, b) for a, b in zip(serial, parallel)) and len(serial) == len(parallel) == 3


def test_a_generated_file_that_fails_to_decode_is_replaced_and_reported(folders, tmp_path, capfd):
    _, out = folders
    damaged = tmp_path / "out"
    shutil.copytree(out, damaged)
    (damaged / "images" / "a.png" / "white_noise_3.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    ds = RankedSets(damaged, patch_size=48, seed=0)
    replaced, intact = ds[1], RankedSets(out, patch_size=48, seed=0)[3]  # a.png/white_noise -> small.png/white_noise
    assert (replaced["reference_id"], replaced["distortion_id"]) == (1, 1)
    assert torch.equal(replaced["images"], intact["images"])
    assert torch.equal(ds[0]["images"], RankedSets(out, patch_size=48, seed=0)[0]["images"])  # other type kept
    assert [ref for ref, _ in ds.skipped] == ["a.png"] and "white_noise_3.png" in ds.skipped[0][1]
    ds[1]
    assert len(ds.skipped) == 1 and capfd.readouterr().err.count("skipped a.png / white_noise") == 1
    fresh = RankedSets(damaged, patch_size=48, seed=0)
    batches = list(DataLoader(fresh, batch_size=3, num_workers=1, multiprocessing_context="spawn"))
    assert [batch["reference_id"].tolist() for batch in batches] == [[0, 1, 1], [1, 2, 2]]
    assert "skipped a.png / white_noise" in capfd.readouterr().err


def test_a_photo_truncated_after_its_header_is_skipped_on_the_fly(folders, tmp_path):
    photos, _ = folders
    shutil.copytree(photos, tmp_path / "photos")
    data = (tmp_path / "photos" / "a.png").read_bytes()
    (tmp_path / "photos" / "a.png").write_bytes(data[: len(data) // 2])
    ds = RankedSets(tmp_path / "photos", patch_size=48, seed=0, distortions=TYPES)
    assert ds.references[0] == "a.png"  # the header looked fine at start-up
    items = [batch for batch in DataLoader(ds, batch_size=2, num_workers=1, multiprocessing_context="spawn")]
    assert [batch["reference_id"].tolist() for batch in items] == [[1, 1], [1, 1], [2, 2]]
    with pytest.raises(UserError, match="no readable gaussian_blur set left"):
        RankedSets(tmp_path / "photos", patch_size=48, references=["a.png"], distortions=TYPES)[0]


def test_reference_and_distortion_subsets(folders):
    _, out = folders
    ds = RankedSets(out, patch_size=48, references=["sub/b.png", "a.png"], distortions=["white_noise"])
    assert ds.references == ["a.png", "sub/b.png"] and len(ds) == 2
    with pytest.raises(UserError, match="nope.png"):
        RankedSets(out, references=["nope.png"])
    with pytest.raises(UserError, match="jpeg"):
        RankedSets(out, distortions=["jpeg"])
    with pytest.raises(ValueError, match="patch_size"):
        RankedSets(out, patch_size=8)


def test_split_references_holds_out_whole_references():
    references = [f"r{i:02d}.png" for i in range(20)] * 3
    train, val = split_references(references, 0.25, seed=0)
    assert len(val) == 5 and len(train) == 15 and not set(train) & set(val)
    assert sorted(train + val) == sorted(set(references))
    assert split_references(reversed(references), 0.25, seed=0) == (train, val)
    assert split_references(references, 0.25, seed=1) != (train, val)
    assert split_references(["a", "b"], 0.01, seed=0)[1] != []
    assert split_references(["a", "b"], 0.0, seed=0) == (["a", "b"], [])
    with pytest.raises(ValueError, match="val_fraction"):
        split_references(references, 1.0, seed=0)


def test_on_the_fly_sets_of_a_composed_preset_are_ordered(folders):
    photos, _ = folders
    ds = RankedSets(photos, patch_size=64, seed=4, distortions=["blur_noise"])
    assert len(ds) == len(ds.references) == 3 and ds.distortion_names == ["blur_noise"]
    assert "blur_noise" not in RankedSets(photos, patch_size=64).distortion_names  # default: single types only
    for index in range(len(ds)):
        assert ds.distortion_names[ds[index]["distortion_id"]] == "blur_noise"
        patches = as_uint8(ds[index]["images"]).astype(float)
        errors = [np.mean((patch - patches[0]) ** 2) for patch in patches[1:]]
        assert all(np.diff(errors) > 0) and errors[0] > 0, (index, errors)
