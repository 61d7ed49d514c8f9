"""Atomic outputs: whole or not at all, failures on one line naming the file, any file name kept."""

from __future__ import annotations

import csv
import errno
import os

import pytest

from odn_lightning import atomic
from odn_lightning.atomic import OutputWriteError, atomic_open, atomic_write_bytes, atomic_write_text


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_writes_the_whole_file_and_creates_folders(tmp_path):
    path = atomic_write_text(tmp_path / "a" / "b" / "report.md", "line 1\nline 2\n")
    assert path.read_text() == "line 1\nline 2\n"
    atomic_write_bytes(tmp_path / "x.bin", b"\x00\xff\x10")
    assert (tmp_path / "x.bin").read_bytes() == b"\x00\xff\x10"
    with atomic_open(tmp_path / "t.csv", newline="") as f:
        csv.writer(f).writerows([["a", "b"], ["1", "2"]])
    assert (tmp_path / "t.csv").read_bytes() == b"a,b\r\n1,2\r\n"
    assert leftovers(tmp_path) == [] and leftovers(tmp_path / "a" / "b") == []


def test_final_file_takes_the_umask_mode_not_a_private_one(tmp_path):
    umask = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "m.txt", "x")
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644


def test_a_writer_failing_midway_leaves_the_old_file(tmp_path):
    path = tmp_path / "predictions.csv"
    path.write_text("old content\n")
    with pytest.raises(RuntimeError, match="boom"), atomic_open(path) as f:
        f.write("half of the new")
        raise RuntimeError("boom")
    assert path.read_text() == "old content\n"
    assert leftovers(tmp_path) == []


def test_a_full_disk_while_writing_leaves_the_old_file(tmp_path):
    path = tmp_path / "report.md"
    path.write_text("old\n")
    with pytest.raises(OutputWriteError) as caught, atomic_open(path) as f:
        f.write("new")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    message = str(caught.value)
    assert str(path) in message and "no space left on device" in message and "free space" in message
    assert "\n" not in message and caught.value.errno == errno.ENOSPC
    assert path.read_text() == "old\n" and leftovers(tmp_path) == []


@pytest.mark.parametrize("call", ["fsync", "replace"])
def test_fsync_or_rename_failing_leaves_the_old_file(tmp_path, monkeypatch, call):
    path = tmp_path / "metrics.json"
    path.write_text("{}\n")

    def fail(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, call, fail)
    with pytest.raises(OutputWriteError, match="no space left on device"):
        atomic_write_text(path, '{"a": 1}\n')
    monkeypatch.undo()
    assert path.read_text() == "{}\n" and leftovers(tmp_path) == []


def test_a_folder_that_cannot_be_made_is_one_line_naming_folder_and_file(tmp_path):
    (tmp_path / "run").write_text("a file where a folder should be")
    with pytest.raises(OutputWriteError) as caught:
        atomic_write_bytes(tmp_path / "run" / "sub" / "ced.png", b"x")
    message = str(caught.value)
    assert f"cannot create folder {tmp_path / 'run' / 'sub'}" in message
    assert str(tmp_path / "run" / "sub" / "ced.png") in message and "\n" not in message


def test_permission_denied_says_so_also_as_root(tmp_path, monkeypatch):
    def deny(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(atomic.os, "open", deny)
    with pytest.raises(OutputWriteError) as caught:
        atomic_write_text(tmp_path / "table4.md", "x")
    assert str(caught.value) == (
        f"cannot write {tmp_path / 'table4.md'}: permission denied; make the folder writable or choose "
        "another output folder (paths.log_dir)"
    )


def test_a_path_holding_a_newline_is_still_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OutputWriteError) as caught:
        atomic_write_text(blocker / "odd\nname.md", "x")  # its folder is a file
    assert "\n" not in str(caught.value) and "odd\\nname.md" in str(caught.value)


def test_a_non_utf8_file_name_round_trips_byte_for_byte(tmp_path):
    name = os.fsdecode(b"face\xff\xfe.jpg")  # surrogate escapes, as os.listdir gives such a name
    path = atomic_write_text(tmp_path / "list.txt", f"/data/{name}\n")
    assert path.read_bytes() == b"/data/face\xff\xfe.jpg\n"
    assert path.read_text(encoding="utf-8", errors="surrogateescape") == f"/data/{name}\n"
    # The name itself may be non-UTF-8 too.
    written = atomic_write_bytes(tmp_path / name, b"jpeg")
    assert os.fsencode(written.name) == b"face\xff\xfe.jpg" and written.read_bytes() == b"jpeg"
