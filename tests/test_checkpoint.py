"""Checkpoints: atomic write, weights-only load, one-line errors for missing/corrupt/unsafe files."""
from __future__ import annotations

import pytest
import torch

from rankiqa.checkpoint import load_checkpoint, save_checkpoint
from rankiqa.errors import UserError


def test_round_trip_keeps_tensors_and_plain_values(tmp_path):
    payload = {"model_state": {"w": torch.arange(4.0)}, "step": 7, "rng": [torch.get_rng_state()], "name": "x"}
    save_checkpoint(tmp_path / "sub" / "a.pt", payload)
    loaded = load_checkpoint(tmp_path / "sub" / "a.pt")
    torch.testing.assert_close(loaded["model_state"]["w"], torch.arange(4.0))
    assert loaded["step"] == 7 and loaded["name"] == "x"
    assert torch.equal(loaded["rng"][0], torch.get_rng_state())
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["a.pt"]  # no temp file left behind


def test_failed_write_leaves_previous_file_intact(tmp_path):
    path = tmp_path / "a.pt"
    save_checkpoint(path, {"step": 1})

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        save_checkpoint(path, {"step": 2, "bad": Unpicklable()})
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]


def test_missing_folder_and_non_dict_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(UserError, match="is a folder"):
        load_checkpoint(tmp_path)
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(UserError, match="expected a dict"):
        load_checkpoint(tmp_path / "list.pt")


def test_corrupt_and_truncated_files_are_user_errors(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(UserError, match="junk.pt: corrupt"):
        load_checkpoint(tmp_path / "junk.pt")
    save_checkpoint(tmp_path / "full.pt", {"w": torch.zeros(1000)})
    data = (tmp_path / "full.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="cut.pt: corrupt"):
        load_checkpoint(tmp_path / "cut.pt")


class ArbitraryObject:
    """Any class: unpickling it would import and run code from the checkpoint's author."""


def test_arbitrary_pickled_objects_are_refused(tmp_path):
    torch.save({"model_state": {}, "extra": ArbitraryObject()}, tmp_path / "unsafe.pt")
    with pytest.raises(UserError, match="unsafe.pt: refused, the checkpoint contains arbitrary pickled objects"):
        load_checkpoint(tmp_path / "unsafe.pt")
