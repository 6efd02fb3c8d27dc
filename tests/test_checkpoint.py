"""Checkpoints: atomic write, weights-only load, one-line errors for missing/corrupt/unsafe files."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from rankiqa.checkpoint import load_checkpoint, refusal_message, save_checkpoint
from bad_inputs import full_disk_save
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
    with pytest.raises(UserError, match=r"junk.pt: not a PyTorch checkpoint \(the file is text\)"):
        load_checkpoint(tmp_path / "junk.pt")
    save_checkpoint(tmp_path / "full.pt", {"w": torch.zeros(1000)})
    data = (tmp_path / "full.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="cut.pt: corrupt") as exc:
        load_checkpoint(tmp_path / "cut.pt")
    assert "weights_only" not in str(exc.value) and "\n" not in str(exc.value)


class ArbitraryObject:
    """Any class: unpickling it would import and run code from the checkpoint's author."""


class WritesMarker:
    """A REAL malicious payload: unpickling calls ``function(argument)``, which creates ``marker``."""

    def __init__(self, function, argument):
        self.function, self.argument = function, argument

    def __reduce__(self):
        return (self.function, (self.argument,))


def _malicious_payloads(marker):
    return {
        "os.system": WritesMarker(os.system, f"touch {marker}"),  # a blocked module
        "builtins.exec": WritesMarker(exec, f"open({str(marker)!r}, 'w').write('pwned')"),  # a not-allowed global
        "plain class": ArbitraryObject(),  # no code, still an arbitrary object
    }


def _assert_refused(path, message):
    assert message == refusal_message(path)
    assert "\n" not in message and "weights_only=False" not in message and "corrupt" not in message
    assert message.startswith(f"{path}: refused for safety: the file contains arbitrary Python objects")


@pytest.mark.parametrize("kind", ["os.system", "builtins.exec", "plain class"])
def test_arbitrary_python_objects_are_refused_and_never_run(tmp_path, kind):
    marker = tmp_path / "marker"
    path = tmp_path / "unsafe.pt"
    torch.save({"model_state": {}, "extra": _malicious_payloads(marker)[kind]}, path)
    with pytest.raises(UserError) as exc:
        load_checkpoint(path)
    _assert_refused(path, str(exc.value))
    assert not marker.exists()
    if kind != "plain class":  # control: the payload is real, an unsafe load runs it
        torch.load(path, weights_only=False)
        assert marker.exists()


def test_the_cli_refuses_a_malicious_checkpoint_in_one_line(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pt"
    torch.save({"model_config": {"backbone": "tiny"}, "model_state": _malicious_payloads(marker)["os.system"]}, path)
    Image.fromarray(np.full((40, 40, 3), 128, np.uint8)).save(tmp_path / "a.png")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("RANKIQA_DEBUG", None)
    for args in (["score", str(tmp_path / "a.png"), "--weights", str(path)],
                 ["export", "--weights", str(path), "--format", "onnx", "--out", str(tmp_path / "m.onnx")]):
        done = subprocess.run([sys.executable, "-m", "rankiqa", *args], capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip() == f"Error: {refusal_message(path)}"
        assert not marker.exists()


@pytest.mark.parametrize("content, described", [
    (b"step,loss\n1,0.5\n", "text"),
    (b"\x89PNG\r\n\x1a\n" + bytes(40), "a PNG image"),
    (b"\xff\xd8\xff\xe0" + bytes(40), "a JPEG image"),
    (b"", "empty"),
])
def test_non_checkpoint_files_are_named_one_line_errors(tmp_path, content, described):
    (tmp_path / "x.pt").write_bytes(content)
    with pytest.raises(UserError, match=rf"x.pt: not a PyTorch checkpoint \(the file is {described}\)"):
        load_checkpoint(tmp_path / "x.pt")


def test_zip_with_a_damaged_pickle_is_a_user_error(tmp_path):
    import zipfile

    with zipfile.ZipFile(tmp_path / "bad.pt", "w") as archive:
        archive.writestr("bad/data.pkl", b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01s.")  # SETITEMS on an empty stack
        archive.writestr("bad/version", b"3\n")
    with pytest.raises(UserError, match="bad.pt: corrupt or truncated checkpoint"):
        load_checkpoint(tmp_path / "bad.pt")


@pytest.mark.parametrize("payload, message", [
    ({"model_config": {"backbone": "tiny", 1: 2}, "model_state": {}}, "model_config key 1 is not a string"),
    ({"model_config": {"backbone": "tiny"}, "model_state": [1, 2]}, "'model_state' is a list, expected dict"),
    ({"model_config": {"backbone": "tiny"}, "model_state": {"w": 3}}, "entry 'w' is a int, expected a tensor"),
    ({"model_config": [1], "model_state": {}}, "'model_config' is a list, expected dict"),
    ({"model_config": {"backbone": 7}, "model_state": {}}, "no 'backbone' name"),
    ({"model_config": {"backbone": "tiny", "dropout": "x"}, "model_state": {}}, "model_config does not describe"),
    ({"model_config": {"backbone": "tiny", "width": 3}, "model_state": {}}, "model_config does not describe"),
    ({"model_state": {}}, "missing 'model_config'"),
])
def test_model_checkpoints_of_the_wrong_shape_are_user_errors(tmp_path, payload, message):
    from rankiqa.models import model_from_checkpoint

    torch.save(payload, tmp_path / "odd.pt")
    with pytest.raises(UserError, match=rf"odd.pt: .*{message}"):
        model_from_checkpoint(tmp_path / "odd.pt")


def test_disk_full_is_a_user_error_naming_the_file_and_keeps_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"step": 1, "w": torch.zeros(10)})
    monkeypatch.setattr(torch, "save", full_disk_save(room=200))
    with pytest.raises(UserError, match=r"last.pt: could not write the checkpoint: No space left on device "
                                        r"\(the previous file is unchanged\)"):
        save_checkpoint(path, {"step": 2, "w": torch.zeros(10_000)})
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]
