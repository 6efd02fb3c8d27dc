"""`rankiqa generate` resume and locking under hostile conditions (issue 11: defects 2 and 14).

Resume: a reference's images are reused only when its marker records the same source content, so a
photo replaced after a kill -9 (even mid-reference, even with its old size and mtime) is redone.
Lock: a second process on the same OUT_DIR stops with the first one's pid and exit code 2.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

import pytest
from PIL import Image
from _shared import make_photos, photo, tree
from test_generate import TYPES, run

from rankiqa.cli import main
from rankiqa.folderlock import folder_lock

PER_REFERENCE = 1 + 5 * len(TYPES)


def killed_run(launcher: list[str], src, out, images: int) -> None:
    """Run `rankiqa generate` in a child (``launcher``: the ``killing_launcher`` fixture) that is
    SIGKILLed after writing ``images`` images."""
    command = [*launcher, "generate-images", str(images), "generate", str(src), str(out),
               "--distortions", ",".join(TYPES), "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]


def test_a_photo_replaced_after_a_kill_mid_reference_is_redone(tmp_path, killing_launcher):
    src = tmp_path / "src"
    references = make_photos(src, 3)
    killed = tmp_path / "killed"
    killed_run(killing_launcher, src, killed, PER_REFERENCE + 4)  # the first reference finished, 4 images of the second written
    second = src / references[1]
    Image.fromarray(photo(99)).save(second)  # another photo under the same name
    summary = run(src, killed)
    run(src, tmp_path / "clean")
    assert tree(killed) == tree(tmp_path / "clean")  # no image of the old photo survives
    assert summary.images_written == 2 * PER_REFERENCE  # the replaced reference is redone from scratch


def test_a_partial_reference_of_an_unchanged_photo_is_resumed(tmp_path, killing_launcher):
    src = tmp_path / "src"
    make_photos(src, 3)
    killed = tmp_path / "killed"
    killed_run(killing_launcher, src, killed, PER_REFERENCE + 6)  # then the second one's pristine copy and first type's 5 levels
    summary = run(src, killed)
    assert summary.images_written == 3 * PER_REFERENCE - (PER_REFERENCE + 6)  # only the missing images
    run(src, tmp_path / "clean")
    assert tree(killed) == tree(tmp_path / "clean")


def test_a_replaced_photo_with_the_old_size_and_mtime_is_redone(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for index in range(2):
        Image.fromarray(photo(index)).save(src / f"p{index}.bmp")  # BMP: same size for the same dimensions
    out = tmp_path / "out"
    run(src, out)
    target = src / "p1.bmp"
    old = target.stat()
    replacement = tmp_path / "new.bmp"
    Image.fromarray(photo(50)).save(replacement)
    assert replacement.stat().st_size == old.st_size
    os.replace(replacement, target)
    os.utime(target, ns=(old.st_atime_ns, old.st_mtime_ns))  # as `cp -p` or `rsync -a` would leave it
    assert run(src, out).images_written == PER_REFERENCE
    run(src, tmp_path / "clean")
    assert tree(out) == tree(tmp_path / "clean")


def test_a_copied_src_dir_with_the_same_photos_is_not_redone(tmp_path):
    src = tmp_path / "src"
    make_photos(src, 2)
    out = tmp_path / "out"
    run(src, out)
    copy = tmp_path / "copy"
    shutil.copytree(src, copy)  # new inodes and times, same contents: the content hashes match
    assert run(copy, out).images_written == 0


# --- defect 14: one process per OUT_DIR ------------------------------------------------------------

HOLD = ("import sys, time\nfrom rankiqa.folderlock import folder_lock\n"
        "part = tuple(map(int, sys.argv[2].split('/'))) if len(sys.argv) > 2 else None\n"
        "with folder_lock(sys.argv[1], part):\n    print('ready', flush=True)\n    time.sleep(120)\n")


@pytest.fixture
def holder(tmp_path):
    """Start a process that holds an OUT_DIR's lock (optionally a shard's) until it is killed."""
    started = []

    def start(out, part: str | None = None) -> subprocess.Popen:
        process = subprocess.Popen([sys.executable, "-c", HOLD, str(out), *([part] if part else [])],
                                   stdout=subprocess.PIPE, text=True)
        started.append(process)
        assert process.stdout.readline().strip() == "ready"
        return process

    yield start
    for process in started:
        process.kill()
        process.wait()


def generate_cli(capsys, *args) -> tuple[int, str]:
    try:
        main(["generate", *map(str, args), "--distortions", ",".join(TYPES), "--quiet"])
    except SystemExit as exc:
        return exc.code, capsys.readouterr().err
    return 0, capsys.readouterr().err


def test_a_second_process_on_out_dir_is_refused_with_the_pid_and_the_lock_dies_with_it(tmp_path, holder, capsys):
    src = tmp_path / "src"
    make_photos(src, 2)
    out = tmp_path / "out"
    first = holder(out)
    code, err = generate_cli(capsys, src, out)
    assert code == 2 and "Traceback" not in err
    assert err.strip() == (f"Error: OUT_DIR {out} is in use by another process (pid {first.pid}); "
                           "wait for it to finish or stop it, or choose another folder")
    assert not (out / "manifest.csv").exists() and not (out / "images").exists()
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert generate_cli(capsys, src, out)[0] == 0  # the kernel released the lock of the killed process
    assert (out / "manifest.csv").exists()


def test_shards_run_side_by_side_but_never_twice_nor_with_a_whole_run(tmp_path, holder, capsys):
    src = tmp_path / "src"
    make_photos(src, 2)
    out = tmp_path / "out"
    first = holder(out, "1/2")
    assert generate_cli(capsys, src, out, "--shard", "2/2")[0] == 0
    for args in (("--shard", "1/2"), ()):
        code, err = generate_cli(capsys, src, out, *args)
        assert code == 2 and f"in use by another process (pid {first.pid})" in err


def test_the_lock_is_released_after_a_run_and_after_an_error(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with folder_lock(out):
            raise RuntimeError("boom")
    with folder_lock(out):
        pass
    assert int((out / ".lock").read_text()) == os.getpid()


def test_merge_waits_for_no_shard(tmp_path, holder, capsys):
    src = tmp_path / "src"
    make_photos(src, 2)
    out = tmp_path / "out"
    assert generate_cli(capsys, src, out, "--shard", "1/2")[0] == 0
    running = holder(out, "2/2")
    with pytest.raises(SystemExit) as caught:
        main(["generate", "--merge", str(out)])
    assert caught.value.code == 2 and f"--merge {out} is in use by another process (pid {running.pid})" in capsys.readouterr().err
