"""Splits on disk: faces written in the 300W layout, and a manifest that says what a folder holds.

Generation is safe when several processes ask for the same root at once (a local multirun): one
generates under a lock on the root while the others wait, then find the splits done. Each split is
written to a temporary folder and renamed onto `<root>/<split>` only when complete.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from multiprocessing import get_context
from pathlib import Path

import cv2
from tqdm import tqdm

from ..formats.w300 import mask_path_for, occlusion_path, write_occlusion, write_pts
from .profiles import SPLIT_PROFILES, split_profile
from .render import SyntheticFace, render_split_face

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
LOCK_NAME = ".generate.lock"
# Without fcntl (Windows) the lock is a file that exists while a process generates; a process waits
# this long for it before saying that it may be stale.
LOCK_FILE_WAIT_S = 1800.0


class SyntheticLockError(RuntimeError):
    """The generation lock file of a synthetic root has stayed in place too long (see `_lock_file`)."""


def write_face(folder: Path, stem: str, face: SyntheticFace) -> Path:
    """Write one face in the 300W layout: image, `.pts`, `.occ` and `masks/<stem>.png`."""
    image_path = folder / f"{stem}.jpg"
    if not cv2.imwrite(
        str(image_path), cv2.cvtColor(face.image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95]
    ):
        raise OSError(f"{image_path}: cannot write the image")
    write_pts(image_path.with_suffix(".pts"), face.landmarks)
    write_occlusion(occlusion_path(image_path), face.occlusion)
    mask_path = mask_path_for(image_path)
    mask_path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(mask_path), face.mask):
        raise OSError(f"{mask_path}: cannot write the mask")
    return image_path


def _write_one(job: tuple[str, int, str, int, int]) -> None:
    folder, seed, split, index, image_size = job
    write_face(Path(folder), f"{split}_{index:05d}", render_split_face(seed, split, index, image_size))


def generate_split(
    root: str | Path,
    split: str,
    count: int,
    seed: int,
    image_size: int = 256,
    progress: bool = True,
    workers: int = 1,
    folder: str | Path | None = None,
) -> Path:
    """Write faces 0..count-1 of `split` to `root/<split>/` (or to `folder`); returns that folder.

    Serial generation takes ~5 ms per 256 px face. Every face depends only on (seed, split, index,
    image_size), so `workers` > 1 (spawned processes) writes identical files; it only pays off when
    the machine has idle cores.
    """
    split_profile(split)
    folder = Path(folder) if folder is not None else Path(root) / split
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    jobs = [(str(folder), int(seed), split, i, int(image_size)) for i in range(count)]
    bar = tqdm(total=count, desc=f"synthetic {split}", unit="face", disable=not progress)
    try:
        if workers > 1 and count > 1:
            with get_context("spawn").Pool(workers) as pool:
                for _ in pool.imap_unordered(_write_one, jobs, chunksize=16):
                    bar.update()
        else:
            for job in jobs:
                _write_one(job)
                bar.update()
    finally:
        bar.close()
    return folder


def _read_manifest(path: Path) -> dict:
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def _write_manifest(path: Path, manifest: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _split_complete(root: Path, split: str, count: int) -> bool:
    """Cheap check that a split's folder holds its last face (the manifest vouches for the rest)."""
    if count == 0:
        return (root / split).is_dir()
    stem = f"{split}_{count - 1:05d}"
    return (root / split / f"{stem}.pts").exists() and (root / split / "masks" / f"{stem}.png").exists()


@contextmanager
def _generation_lock(root: Path) -> Iterator[None]:
    """Hold the root's generation lock, `root/.generate.lock`, while the block runs; the file is
    removed at the end (so a generated root holds only the data)."""
    path = root / LOCK_NAME
    try:
        import fcntl
    except ImportError:  # not POSIX
        with _lock_file(path):
            yield
        return
    waiting = False
    while True:
        file = open(path, "a")
        try:
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not waiting:
                    print(f"Waiting for another process generating synthetic faces in {root}", flush=True)
                    waiting = True
                fcntl.flock(file, fcntl.LOCK_EX)
            # The holder before us may have removed the file: then this lock is on a file nobody
            # else will see, and the lock must be taken again on the file now at `path`.
            try:
                current = os.stat(path).st_ino == os.fstat(file.fileno()).st_ino
            except FileNotFoundError:
                current = False
        except BaseException:
            file.close()
            raise
        if current:
            break
        file.close()
    try:
        yield
    finally:
        with suppress(OSError):
            os.unlink(path)  # while locked: a waiter that gets this file sees it is gone and retries
        file.close()


@contextmanager
def _lock_file(path: Path, wait_s: float = LOCK_FILE_WAIT_S) -> Iterator[None]:
    """A lock that is a file created with O_EXCL and removed at the end; a process killed while it
    held it leaves the file behind, so after `wait_s` the waiter stops and says how to clear it."""
    waited_since = None
    while True:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:
            now = time.monotonic()
            if waited_since is None:
                waited_since = now
                print(f"Waiting for {path} (another process is generating synthetic faces)", flush=True)
            elif now - waited_since > wait_s:
                raise SyntheticLockError(
                    f"{path} has been in place for {wait_s:.0f} s: another process is generating "
                    "synthetic faces there, or one was killed while it did; if none is running, "
                    "delete that file and run again"
                ) from None
            time.sleep(0.5)
    try:
        os.write(fd, f"{os.getpid()}\n".encode())
        os.close(fd)
        yield
    finally:
        with suppress(OSError):
            os.unlink(path)


def _plan(root: Path, sizes: Mapping[str, int], seed: int, image_size: int) -> tuple[dict, dict, bool]:
    """What the manifest says: (the manifest, the splits to keep, whether it is of this setup)."""
    old = _read_manifest(root / MANIFEST_NAME)
    same_setup = (
        old.get("format_version") == FORMAT_VERSION
        and old.get("seed") == seed
        and old.get("image_size") == image_size
    )
    old_splits = old.get("splits", {}) if same_setup and isinstance(old.get("splits"), dict) else {}
    keep = {
        s: n
        for s, n in old_splits.items()
        if s not in sizes or (n == sizes[s] and _split_complete(root, s, n))
    }
    return old, keep, same_setup


def _temporary_folders(root: Path) -> list[Path]:
    """Generation's temporary folders; seen under the lock, they are what killed generations left."""
    return [p for p in root.glob(".*.tmp-*") if p.is_dir()] + [p for p in root.glob(".*.old-*") if p.is_dir()]


def _replace_folder(folder: Path, complete: Path) -> None:
    """Put the complete folder in the place of `folder` (which may exist): the split is missing for
    the moment between two renames, never half written."""
    old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
    if folder.exists():
        os.replace(folder, old)
    os.replace(complete, folder)
    shutil.rmtree(old, ignore_errors=True)


def ensure_synthetic(
    root: str | Path,
    sizes: Mapping[str, int],
    seed: int = 0,
    image_size: int = 256,
    progress: bool = True,
    workers: int = 1,
) -> Path:
    """Make `root` hold the synthetic splits `sizes` ({split: count}) for (seed, image_size).

    `root/manifest.json` records what is there; splits that match it are kept untouched (so this is
    fast when nothing changed), the others are regenerated. Generation holds a lock on the root, so
    processes asking at once generate once; each split is written to `root/.<split>.tmp-<pid>` and
    renamed to `root/<split>` when complete. The manifest is updated to drop the stale splits before
    generating and rewritten in full only at the end, so an interrupted run regenerates what it did
    not finish.
    """
    root = Path(root)
    for split in sizes:
        split_profile(split)
    _, keep, _ = _plan(root, sizes, seed, image_size)
    if all(s in keep for s in sizes):
        return root
    root.mkdir(parents=True, exist_ok=True)
    with _generation_lock(root):
        # Read again: another process may have generated the splits while this one waited.
        old, keep, same_setup = _plan(root, sizes, seed, image_size)
        todo = {s: int(n) for s, n in sizes.items() if s not in keep}
        if not todo:
            return root
        for folder in _temporary_folders(root):  # left by a killed generation
            shutil.rmtree(folder, ignore_errors=True)
        old_splits = old.get("splits") if isinstance(old.get("splits"), dict) else {}
        if not same_setup:  # folders of a previous setup are stale even when not requested now
            for split in old_splits:
                if split in SPLIT_PROFILES and split not in sizes:
                    shutil.rmtree(root / split, ignore_errors=True)
        manifest = {
            "format_version": FORMAT_VERSION,
            "seed": seed,
            "image_size": image_size,
            "splits": dict(keep),
        }
        manifest_path = root / MANIFEST_NAME
        _write_manifest(manifest_path, manifest)
        summary = ", ".join(f"{s} {n}" for s, n in todo.items())
        print(f"Generating synthetic faces (seed {seed}, {image_size} px): {summary} -> {root}", flush=True)
        for split, count in todo.items():
            temporary = root / f".{split}.tmp-{os.getpid()}"
            try:
                generate_split(
                    root, split, count, seed, image_size, progress, workers=workers, folder=temporary
                )
            except BaseException:
                shutil.rmtree(temporary, ignore_errors=True)
                raise
            _replace_folder(root / split, temporary)
        manifest["splits"] = {**keep, **todo}
        _write_manifest(manifest_path, manifest)
    return root
