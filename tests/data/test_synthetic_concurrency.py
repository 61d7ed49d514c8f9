"""Synthetic generation shared by processes: two runs asking for the same root at once generate it
once and both find every face; a generation killed midway leaves no split that looks whole."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from odn_lightning.data.synthetic import FORMAT_VERSION, MANIFEST_NAME, ensure_synthetic, storage

SIZES = {"train": 40, "val": 12}


def assert_complete(root, sizes, seed=0, image_size=64):
    for split, count in sizes.items():
        folder = root / split
        for pattern in ("*.jpg", "*.pts", "*.occ", "masks/*.png"):
            assert len(list(folder.glob(pattern))) == count, (split, pattern)
    manifest = json.loads((root / MANIFEST_NAME).read_text())
    assert manifest == {
        "format_version": FORMAT_VERSION,
        "seed": seed,
        "image_size": image_size,
        "splits": sizes,
    }
    assert sorted(p.name for p in root.iterdir()) == sorted([MANIFEST_NAME, *sizes])  # no temporary files


CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from odn_lightning.data.synthetic import ensure_synthetic

    root, me, other = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    me.touch()
    while not other.exists():  # start together
        time.sleep(0.005)
    ensure_synthetic(root, {sizes}, seed=0, image_size=64, progress=False)
    """
).format(sizes=SIZES)


@pytest.mark.slow
def test_two_processes_generating_the_same_root_at_once_both_get_every_face(tmp_path):
    root = tmp_path / "synthetic"
    ready = [tmp_path / "ready0", tmp_path / "ready1"]
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(root), str(ready[i]), str(ready[1 - i])],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [child.communicate(timeout=240) for child in children]
    for child, (_, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err[-2000:]
    assert_complete(root, SIZES)
    # One generated; the other waited for it, or came after it, and found the faces there.
    assert sum(out.count("Generating synthetic faces") for out, _ in outputs) == 1


def crash_after(monkeypatch, faces: int):
    real, written = storage.write_face, []

    def write_face(*args, **kwargs):
        if len(written) == faces:
            raise KeyboardInterrupt
        written.append(real(*args, **kwargs))

    monkeypatch.setattr(storage, "write_face", write_face)


def test_an_interrupted_generation_leaves_no_split_that_looks_whole(tmp_path, monkeypatch):
    crash_after(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        ensure_synthetic(tmp_path, {"val": 6}, seed=0, image_size=64, progress=False)
    assert not (tmp_path / "val").exists()
    assert json.loads((tmp_path / MANIFEST_NAME).read_text())["splits"] == {}
    assert sorted(p.name for p in tmp_path.iterdir()) == [MANIFEST_NAME]
    monkeypatch.undo()
    ensure_synthetic(tmp_path, {"val": 6}, seed=0, image_size=64, progress=False)
    assert_complete(tmp_path, {"val": 6})


def test_a_regenerated_split_replaces_the_old_one_only_when_complete(tmp_path, monkeypatch):
    ensure_synthetic(tmp_path, {"val": 2}, seed=0, image_size=64, progress=False)
    crash_after(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        ensure_synthetic(tmp_path, {"val": 6}, seed=0, image_size=64, progress=False)
    # The old split is still whole, and the manifest no longer vouches for it.
    assert len(list((tmp_path / "val").glob("*.pts"))) == 2
    assert json.loads((tmp_path / MANIFEST_NAME).read_text())["splits"] == {}
    monkeypatch.undo()
    ensure_synthetic(tmp_path, {"val": 6}, seed=0, image_size=64, progress=False)
    assert_complete(tmp_path, {"val": 6})


KILLED = textwrap.dedent(
    """
    import os, signal, sys
    from odn_lightning.data.synthetic import ensure_synthetic, storage

    real, written = storage.write_face, []

    def write_face(*args):
        if len(written) == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        written.append(real(*args))

    storage.write_face = write_face
    ensure_synthetic(sys.argv[1], {"val": 6}, seed=0, image_size=64, progress=False)
    """
)


@pytest.mark.slow
def test_a_killed_generation_is_cleaned_up_and_completed_by_the_next(tmp_path):
    killed = subprocess.run([sys.executable, "-c", KILLED, str(tmp_path)], capture_output=True, timeout=120)
    assert killed.returncode == -9, killed.stderr[-2000:]
    leftovers = [p.name for p in tmp_path.glob(".val.tmp-*")]
    assert len(leftovers) == 1 and not (tmp_path / "val").exists()
    ensure_synthetic(tmp_path, {"val": 6}, seed=0, image_size=64, progress=False)
    assert_complete(tmp_path, {"val": 6})


def test_without_fcntl_a_lock_file_serves_and_a_stale_one_is_named(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "fcntl", None)  # `import fcntl` fails, as on Windows
    ensure_synthetic(tmp_path / "a", {"val": 2}, seed=0, image_size=64, progress=False)
    assert_complete(tmp_path / "a", {"val": 2})
    stale = tmp_path / "b" / storage.LOCK_NAME
    stale.parent.mkdir()
    stale.write_text("12345\n")  # left by a killed process
    with pytest.raises(storage.SyntheticLockError) as err:
        with storage._lock_file(stale, wait_s=0.6):
            pass
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(stale)) and "delete that file" in message
