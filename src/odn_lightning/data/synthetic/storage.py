"""Splits on disk: faces written in the 300W layout, and a manifest that says what a folder holds."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from multiprocessing import get_context
from pathlib import Path

import cv2
from tqdm import tqdm

from ..formats.w300 import mask_path_for, occlusion_path, write_occlusion, write_pts
from .profiles import SPLIT_PROFILES, split_profile
from .render import SyntheticFace, render_split_face

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"


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
) -> Path:
    """Write faces 0..count-1 of `split` to `root/<split>/`; returns that folder.

    Serial generation takes ~5 ms per 256 px face. Every face depends only on (seed, split, index,
    image_size), so `workers` > 1 (spawned processes) writes identical files; it only pays off when
    the machine has idle cores.
    """
    split_profile(split)
    folder = Path(root) / split
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
    fast when nothing changed), the others are deleted and regenerated. The manifest is updated to
    drop the stale splits before generating and rewritten in full only at the end, so an interrupted
    run regenerates what it did not finish.
    """
    root = Path(root)
    for split in sizes:
        split_profile(split)
    manifest_path = root / MANIFEST_NAME
    old = _read_manifest(manifest_path)
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
    todo = {s: int(n) for s, n in sizes.items() if s not in keep}
    if not todo:
        return root

    root.mkdir(parents=True, exist_ok=True)
    if not same_setup:  # folders of a previous setup are stale even when not requested now
        for split in old.get("splits", {}) if isinstance(old.get("splits"), dict) else {}:
            if split in SPLIT_PROFILES and split not in sizes:
                shutil.rmtree(root / split, ignore_errors=True)
    manifest = {
        "format_version": FORMAT_VERSION,
        "seed": seed,
        "image_size": image_size,
        "splits": dict(keep),
    }
    _write_manifest(manifest_path, manifest)
    summary = ", ".join(f"{s} {n}" for s, n in todo.items())
    print(f"Generating synthetic faces (seed {seed}, {image_size} px): {summary} -> {root}", flush=True)
    for split, count in todo.items():
        shutil.rmtree(root / split, ignore_errors=True)
        generate_split(root, split, count, seed, image_size, progress, workers=workers)
    manifest["splits"] = {**keep, **todo}
    _write_manifest(manifest_path, manifest)
    return root
