"""COFW's image cache (PNGs written next to the .mat and reused): a write that fails midway leaves
no partial PNG for later runs to reuse."""

from __future__ import annotations

import errno

import cv2
import numpy as np
import pytest

from odn_lightning import atomic
from odn_lightning.atomic import OutputWriteError
from odn_lightning.data.formats import read_cofw_mat

from ..helpers.formats import write_cofw


def test_a_write_failing_midway_leaves_no_partial_png(tmp_path, monkeypatch):
    mat = tmp_path / "COFW_train_color.mat"
    write_cofw(mat, "train", 4, version="7")
    cache = tmp_path / "cache"
    opened = []

    class HalfWritten:
        """The third image's file: half its bytes reach the disk, then the disk is full."""

        def __init__(self, file):
            self.file = file

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

        def write(self, data):
            self.file.write(data[: len(data) // 2])
            self.file.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

    def failing_open(fd, mode, **kwargs):
        file = open(fd, mode, **kwargs)
        opened.append(file)
        return HalfWritten(file) if len(opened) == 3 else file

    monkeypatch.setattr(atomic, "open", failing_open, raising=False)
    with pytest.raises(OutputWriteError) as err:
        read_cofw_mat(mat, cache)
    assert str(err.value).startswith(
        f"cannot write {cache / 'cofw_train_0002.png'} (No space left on device)"
    )
    assert "\n" not in str(err.value) and "writable, with free space" in str(err.value)
    assert sorted(p.name for p in cache.iterdir()) == ["cofw_train_0000.png", "cofw_train_0001.png"]
    monkeypatch.undo()

    kept = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    records = read_cofw_mat(mat, cache)
    assert len(records) == 4 and sorted(p.name for p in cache.iterdir()) == [
        f"cofw_train_{i:04d}.png" for i in range(4)
    ]
    assert {name: (cache / name).stat().st_mtime_ns for name in kept} == kept  # reused, not rewritten
    written = cv2.cvtColor(cv2.imread(str(cache / "cofw_train_0002.png")), cv2.COLOR_BGR2RGB)
    expected = np.random.default_rng(2).integers(
        0, 255, written.shape, dtype=np.uint8
    )  # write_cofw's image 2
    assert np.array_equal(written, expected)
