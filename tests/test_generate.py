"""rankiqa.generate and `rankiqa generate`: manifest, determinism, resume, shards, bad inputs."""
from __future__ import annotations

import hashlib
import os
import signal
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

import distortions
from _shared import make_photos, photo, tree
from rankiqa.cli import main
from rankiqa.errors import UserError
from rankiqa.generate import (
    MANIFEST_COLUMNS,
    PROGRESS_DIR,
    distortion_seed,
    generate,
    merge_shards,
    parse_shard,
)
from rankiqa.imageio import UnusableImage, load_pristine
from rankiqa.seeding import stable_seed

TYPES = ["gaussian_blur", "white_noise"]


def run(src: Path, out: Path, **options) -> object:
    options.setdefault("distortion_names", TYPES)
    return generate(src, out, progress=False, log=lambda message: None, **options)


@pytest.fixture
def src(tmp_path) -> Path:
    folder = tmp_path / "src"
    make_photos(folder, 4)
    return folder


def test_stable_seed_is_a_salt_free_hash():
    expected = int.from_bytes(hashlib.blake2b(b"0\x1fa.png\x1fgaussian_blur", digest_size=8).digest(), "big") >> 1
    assert stable_seed(0, "a.png", "gaussian_blur") == expected == distortion_seed(0, "a.png", "gaussian_blur")
    assert stable_seed(0, "a.png", "white_noise") != expected
    code = "from rankiqa.seeding import stable_seed; print(stable_seed(0, 'a.png', 'gaussian_blur'))"
    for salt in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": salt}
        result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert int(result.stdout) == expected


def test_manifest_columns_counts_and_rebuild(src, tmp_path):
    out = tmp_path / "out"
    summary = run(src, out, seed=7)
    manifest = pd.read_csv(out / "manifest.csv", keep_default_na=False, dtype={"seed": str})
    assert tuple(manifest.columns) == MANIFEST_COLUMNS
    references = sorted(p.relative_to(src).as_posix() for p in src.rglob("*.png"))
    assert len(manifest) == len(references) * (1 + 5 * len(TYPES)) == summary.images_total == summary.images_written
    assert summary.references == 4 and summary.skipped == 0
    pristine = manifest[manifest.level == 0]
    assert sorted(pristine.reference) == references and set(pristine.distortion) == {""}
    # documented row order: (reference, distortion, level), pristine ("" distortion) first
    expected_order = [(ref, name, level) for ref in references
                      for name, level in [("", 0), *[(t, k) for t in sorted(TYPES) for k in range(1, 6)]]]
    assert list(zip(manifest.reference, manifest.distortion, manifest.level)) == expected_order
    for (reference, name), group in manifest[manifest.level > 0].groupby(["reference", "distortion"]):
        assert list(group.level) == [1, 2, 3, 4, 5]
        assert set(group.seed) == {str(distortion_seed(7, reference, name))}
    row = manifest[(manifest.distortion == "white_noise") & (manifest.level == 4)].iloc[0]
    source = np.asarray(Image.open(src / row.reference).convert("RGB"))
    rebuilt = distortions.apply(source, "white_noise", 4, seed=int(row.seed))
    assert np.array_equal(np.asarray(Image.open(out / row.path)), rebuilt)
    assert np.array_equal(np.asarray(Image.open(out / pristine.iloc[0].path)), np.asarray(Image.open(src / pristine.iloc[0].reference)))
    assert (out / "skipped.csv").read_text() == "path,reason\n"


def test_same_bytes_whatever_the_worker_count(src, tmp_path):
    run(src, tmp_path / "one", workers=1)
    run(src, tmp_path / "two", workers=2)
    assert tree(tmp_path / "one") == tree(tmp_path / "two")


def test_resume_after_kill_equals_clean_run(tmp_path, killing_launcher):
    src = tmp_path / "src"
    make_photos(src, 6)
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    run(src, clean)
    command = [*killing_launcher, "generate-references", "2", "generate", str(src), str(killed),
               "--distortions", ",".join(TYPES), "--quiet"]
    # the launcher makes the child SIGKILL itself once 2 references are finished
    process = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert process.returncode == -signal.SIGKILL, process.stderr[-2000:]
    assert len(os.listdir(killed / PROGRESS_DIR)) == 2 and not (killed / "manifest.csv").exists()
    summary = run(src, killed)
    assert 0 < summary.images_written < summary.images_total
    assert tree(killed) == tree(clean)


def test_resume_redoes_a_partial_reference_and_removes_temp_files(src, tmp_path):
    clean, partial = tmp_path / "clean", tmp_path / "partial"
    run(src, clean)
    run(src, partial)
    folder = partial / "images" / "p01.png"
    (folder / "white_noise_3.png").unlink()
    (folder / ".white_noise_4.x.png.tmp").write_bytes(b"half a file")
    for marker in (partial / PROGRESS_DIR).iterdir():
        if b'"p01.png"' in marker.read_bytes():
            marker.unlink()
    (partial / "manifest.csv").unlink()
    summary = run(src, partial)
    assert summary.images_written == 11  # images without a marker cannot be tied to their source: all redone
    assert tree(partial) == tree(clean)
    assert run(src, partial).images_written == 0


def test_a_failing_type_leaves_its_reference_out_and_a_rerun_retries_it(src, tmp_path, monkeypatch):
    clean, flaky = tmp_path / "clean", tmp_path / "flaky"
    run(src, clean)
    real = distortions.apply_levels
    broken_seed = distortion_seed(0, "p01.png", "white_noise")

    def failing_once(image, name, seed=None):
        if seed == broken_seed:
            raise RuntimeError("simulated bug")
        return real(image, name, seed=seed)

    monkeypatch.setattr(distortions, "apply_levels", failing_once)
    summary = run(src, flaky)
    assert summary.skipped == 1 and summary.images_total == 3 * 11
    assert "white_noise failed (RuntimeError: simulated bug)" in (flaky / "skipped.csv").read_text()
    monkeypatch.setattr(distortions, "apply_levels", real)
    assert run(src, flaky).images_written == 5
    assert tree(flaky) == tree(clean)


def test_changed_options_are_refused(src, tmp_path):
    run(src, tmp_path / "out", seed=1)
    with pytest.raises(UserError, match="seed"):
        run(src, tmp_path / "out", seed=2)


@pytest.mark.parametrize("content", ["[1, 2]", "{not json", "null"])
def test_a_settings_file_that_is_no_json_object_is_a_user_error(src, tmp_path, content):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "generate.json").write_text(content)
    with pytest.raises(UserError, match=r"generate.json: corrupt settings file \(expected a JSON object\)"):
        run(src, tmp_path / "out")


def test_shards_merge_into_the_single_run(src, tmp_path):
    (src / "broken.png").write_bytes(b"not a png")
    single, sharded = tmp_path / "single", tmp_path / "sharded"
    run(src, single)
    with pytest.raises(UserError, match="no manifest-shard"):
        merge_shards(sharded.parent)
    for index in (1, 2, 3):
        run(src, sharded, shard=(index, 3), workers=2 if index == 2 else 1)
        if index == 2:
            with pytest.raises(UserError, match="3/3"):
                merge_shards(sharded)
    merged = merge_shards(sharded)
    assert merged.images_total == 4 * 11 and merged.skipped == 1
    for name in ("manifest.csv", "skipped.csv"):
        assert (sharded / name).read_bytes() == (single / name).read_bytes()
    assert {k: v for k, v in tree(sharded).items() if k.startswith("images/")} == {
        k: v for k, v in tree(single).items() if k.startswith("images/")
    }
    assert parse_shard("2/3") == (2, 3)
    for bad in ("0/3", "4/3", "x"):
        with pytest.raises(UserError, match="^shard "):
            parse_shard(bad)


def png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG that declares ``width`` x ``height`` pixels but holds no pixel data (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


@pytest.fixture
def messy(tmp_path) -> Path:
    """A folder with one file of every awkward kind, plus two ordinary photos."""
    folder = tmp_path / "messy"
    folder.mkdir()
    Image.fromarray(photo(1)).save(folder / "good.png")
    Image.fromarray(photo(2)).save(folder / "café ü 写真.png")
    (folder / "empty.png").write_bytes(b"")
    Image.fromarray(photo(3)).save(folder / "whole.jpg", quality=90)
    data = (folder / "whole.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (folder / "whole.jpg").unlink()
    Image.fromarray(photo(4)).save(folder / "whole.png")
    data = (folder / "whole.png").read_bytes()
    (folder / "truncated.png").write_bytes(data[: len(data) // 2])
    (folder / "whole.png").unlink()
    (folder / "text.jpg").write_text("this is not an image")
    Image.fromarray(photo(5, height=90, width=60)).save(folder / "tiny.png")
    frames = [Image.fromarray(photo(6 + i)) for i in range(3)]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:])
    Image.fromarray((photo(9)[:, :, 0].astype(np.uint16) * 257)).save(folder / "gray16.png")
    cv2.imwrite(str(folder / "rgb16.png"), photo(10).astype(np.uint16) * 257)
    Image.fromarray(np.dstack([photo(11), np.full((80, 96), 128, np.uint8)])).save(folder / "rgba.png")
    Image.fromarray(photo(12)[:, :, 1]).save(folder / "gray.png")
    Image.fromarray(photo(13)).convert("CMYK").save(folder / "cmyk.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(photo(14)).save(folder / "rotated.jpg", exif=exif)
    png_header_only(folder / "bomb.png", 20_000, 20_000)
    (folder / "notes.txt").write_text("not an image extension: ignored")
    return folder


def test_every_bad_input_is_skipped_or_converted(messy, tmp_path):
    out = tmp_path / "out"
    log: list[str] = []
    summary = generate(messy, out, distortion_names=["gaussian_blur"], progress=False, log=log.append)
    skipped = pd.read_csv(out / "skipped.csv")
    reasons = dict(zip(skipped.path, skipped.reason))
    assert set(reasons) == {"empty.png", "truncated.jpg", "truncated.png", "text.jpg", "tiny.png", "bomb.png"}
    assert "empty" in reasons["empty.png"] and "not an image" in reasons["text.jpg"]
    assert "truncated" in reasons["truncated.jpg"] and "truncated" in reasons["truncated.png"]
    assert "too small" in reasons["tiny.png"] and "decompression bomb" in reasons["bomb.png"]
    manifest = pd.read_csv(out / "manifest.csv", keep_default_na=False)
    used = {"good.png", "café ü 写真.png", "animated.gif", "gray16.png", "rgb16.png", "rgba.png", "gray.png", "cmyk.jpg", "rotated.jpg"}
    assert set(manifest.reference) == used and summary.references == 9 and summary.skipped == 6
    assert len(manifest) == 9 * 6
    notes = "\n".join(log)
    for reference, note in [("animated.gif", "first frame"), ("gray16.png", "16-bit"), ("rgb16.png", "16-bit"),
                            ("rgba.png", "alpha"), ("gray.png", "grayscale"), ("cmyk.jpg", "CMYK")]:
        assert f"{reference}: " in notes and note in notes
    sizes = manifest[manifest.level == 0].set_index("reference")[["width", "height"]]
    assert tuple(sizes.loc["rotated.jpg"]) == (80, 96)
    assert tuple(sizes.loc["good.png"]) == (96, 80)
    gray16 = np.asarray(Image.open(out / "images/gray16.png/pristine.png"))
    assert np.array_equal(gray16[:, :, 2], photo(9)[:, :, 0])
    rgba = np.asarray(Image.open(out / "images/rgba.png/pristine.png")).astype(int)
    assert np.abs(rgba - (photo(11).astype(int) * 128 + 255 * 127) / 255).max() <= 1


def test_load_pristine_limits(tmp_path):
    path = tmp_path / "big.png"
    Image.fromarray(photo(0, height=150, width=200)).save(path)
    with pytest.raises(UnusableImage, match="decompression bomb"):
        load_pristine(path, max_pixels=5000)
    assert load_pristine(path, max_side=100).image.shape == (75, 100, 3)
    with pytest.raises(UnusableImage, match="after downscaling"):
        load_pristine(path, max_side=80)


def test_cli_errors_are_one_line(messy, tmp_path, capsys):
    bad_only = tmp_path / "bad_only"
    bad_only.mkdir()
    (bad_only / "a.jpg").write_text("nope")
    (tmp_path / "empty_dir").mkdir()
    cases = [
        ([str(tmp_path / "missing"), str(tmp_path / "o1")], "folder not found"),
        ([str(bad_only), str(tmp_path / "o2")], "no usable image"),
        ([str(tmp_path / "empty_dir"), str(tmp_path / "o3")], "no image files"),
        ([str(messy), str(tmp_path / "o4"), "--distortions", "no_such_type"], "no_such_type"),
        ([str(messy), str(tmp_path / "o5"), "--shard", "5/2"], "--shard"),
        (["--merge", str(tmp_path / "o6")], "--merge"),
        ([str(messy)], "SRC_DIR and OUT_DIR"),
    ]
    for args, message in cases:
        with pytest.raises(SystemExit) as exc:
            main(["generate", *args, "--quiet"])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        last = err.strip().splitlines()[-1]
        assert "Traceback" not in err and message in last and last.startswith("Error:"), err


def test_cli_jpg_warns_and_shards_merge(src, tmp_path, capsys):
    out = tmp_path / "out"
    for index in (1, 2):
        main(["generate", str(src), str(out), "--distortions", "white_noise", "--shard", f"{index}/2",
              "--format", "jpg", "--max-side", "80", "--quiet"])
    captured = capsys.readouterr()
    assert "Warning: --format jpg" in captured.err and "images/s" in captured.out
    main(["generate", "--merge", str(out)])
    manifest = pd.read_csv(out / "manifest.csv", keep_default_na=False)
    assert len(manifest) == 4 * 6 and manifest.path.str.endswith(".jpg").all()
    assert set(manifest.width.where(manifest.width > manifest.height, manifest.height)) == {80}


def test_cli_generates_a_composed_preset_by_name(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    make_photos(src, 2)
    run(src, tmp_path / "default", distortion_names=None)  # the default ("all") is the single types only
    default = pd.read_csv(tmp_path / "default" / "manifest.csv", keep_default_na=False)
    assert set(default.distortion) == {"", *distortions.names(composed=False)}
    main(["generate", str(src), str(out), "--distortions", "blur_jpeg", "--seed", "3", "--quiet"])
    manifest = pd.read_csv(out / "manifest.csv", keep_default_na=False, dtype={"seed": str})
    assert len(manifest) == 2 * 6 and set(manifest.distortion) == {"", "blur_jpeg"}
    for row in manifest[manifest.level > 0].itertuples():
        source = np.asarray(Image.open(src / row.reference).convert("RGB"))
        blurred = distortions.apply(source, "gaussian_blur", row.level)
        expected = distortions.apply(blurred, "jpeg", row.level)  # blur then JPEG, both at the row's level
        assert np.array_equal(np.asarray(Image.open(out / row.path)), expected), row.path
