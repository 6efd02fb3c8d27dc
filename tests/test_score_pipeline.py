"""The overlapped scoring pipeline: decoding runs ahead in threads, in order, bounded, same scores."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from PIL import Image

from rankiqa.score import Scorer, load_module, read_ahead


def test_read_ahead_keeps_the_order_when_reads_finish_out_of_order():
    def read(item, index):
        time.sleep(0.02 * (5 - item % 5) / 5)  # later items finish first
        return item, index

    assert list(read_ahead(range(12), read, workers=3)) == [(i, i) for i in range(12)]
    assert list(read_ahead(range(12), read, workers=0)) == [(i, i) for i in range(12)]


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_read_ahead_runs_at_most_workers_plus_one_items_ahead(workers):
    lock = threading.Lock()
    started, consumed, most_ahead = [0], [0], [0]

    def read(item, index):
        with lock:
            started[0] += 1
            most_ahead[0] = max(most_ahead[0], started[0] - consumed[0])
        return item

    for _ in read_ahead(iter(range(30)), read, workers):
        time.sleep(0.002)  # the consumer (the model) is busy while the pool reads ahead
        consumed[0] += 1
    assert 1 <= most_ahead[0] <= workers + 1


def test_read_ahead_reraises_a_readers_bug():
    def read(item, index):
        if item == 3:
            raise ZeroDivisionError("a bug keeps its traceback")
        return item

    with pytest.raises(ZeroDivisionError):
        list(read_ahead(range(6), read, workers=2))


def test_decode_workers_do_not_change_scores_or_errors(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for index in range(7):
        path = tmp_path / f"{index}.png"
        Image.fromarray(rng.integers(0, 256, (40 + 9 * index, 70, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    (tmp_path / "bad.png").write_bytes(b"not an image")
    paths.insert(3, str(tmp_path / "bad.png"))
    module = load_module("tiny")
    serial = list(Scorer(module, patches=3, patch_size=32, batch_size=4, decode_workers=0).score_many(paths))
    for workers in (1, 3):
        overlapped = list(Scorer(module, patches=3, patch_size=32, batch_size=4, decode_workers=workers).score_many(paths))
        assert [r.path for r in overlapped] == [r.path for r in serial]
        assert [r.score for r in overlapped] == [r.score for r in serial]
        assert [r.error for r in overlapped] == [r.error for r in serial]
    assert serial[3].error and all(r.score is not None for i, r in enumerate(serial) if i != 3)


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_decode_workers_must_be_a_non_negative_int(bad):
    with pytest.raises(ValueError, match="decode_workers"):
        Scorer(load_module("tiny"), decode_workers=bad)
