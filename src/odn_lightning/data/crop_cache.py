"""A per-split cache of face crops: each face is cut once from its photograph, then read from one
memory-mapped file instead of decoding the whole photograph for every sample.

A split's cache is, under `<cache_dir>/<data.name>/`:

- `<split>-<hash>.<build>.npy`: uint8 (N, C, C, 3), one patch per face (`numpy.lib.format.open_memmap`);
- `<split>-<hash>.<build>.matrix.npy`: float64 (N, 2, 3), each patch's matrix (original pixels -> patch
  pixels);
- `<split>-<hash>.<build>.masks.npy`: uint8 (N, C, C), the occluder masks (nearest neighbour), when the
  dataset uses them;
- `<split>-<hash>.json`: the key (what the patches depend on), the names of those files and the faces
  whose image failed to decode.

`<hash>` is a digest of the crop settings and of the split's image paths, so other settings (another
`image_size`, say) get files of their own; the key also holds each image's size and mtime and each
face's landmarks and box, and a mismatch rebuilds the files in place. A build writes new files (a new
`<build>` token) under a lock, so processes that start at once build once, and commits them by
renaming the key onto its name: a reader sees the old files or the new ones, never half of either.

Evaluation splits (no geometric augmentation) store the evaluation crop itself (C = image_size, the
matrix is the evaluation matrix): a sample uses it as is, bit for bit what the uncached path cuts.
Training splits store a larger patch (`augmentation_margin`) that holds every crop the augmentation can
draw, at `resolution` patch pixels per crop pixel; the training crop is then cut from the patch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..atomic import atomic_write_text, shown
from .build_lock import BuildLockError, build_lock
from .records import FaceRecord, ImageDecodeError
from .transforms import CropAugmentation, warp_crop

if TYPE_CHECKING:
    from .dataset import LandmarkDataset

log = logging.getLogger(__name__)

CACHE_VERSION = 1
# Patch pixels left around the augmentation's reach, for the bilinear filter's neighbours.
PATCH_PAD = 2
LOCK_WAIT_S = 1800.0


class CropCacheLockError(BuildLockError):
    """A crop cache's lock file (where fcntl is missing) has stayed in place too long."""


def augmentation_margin(augmentation: CropAugmentation) -> float:
    """How much larger (per side, relative to the evaluation crop) a patch must be to hold every
    training crop `augmentation` can draw.

    A training crop is the evaluation crop moved by a similarity about its centre: scale s in
    1 +- scale, rotation up to `rotation` degrees, shift up to `translation` of the crop per axis, and
    a mirror (which keeps the square). Its corners, seen from the evaluation crop, lie at
    R^-1 (corner - t) / s about the centre: the square of half side (1/2 + translation) rotated by
    theta reaches (1/2 + translation)(|cos theta| + |sin theta|) along each axis, largest at
    theta = min(rotation, 45 deg), and is largest at the smallest scale. So, as a factor of the crop's
    half side: (1 + 2 translation)(cos r + sin r) / (1 - scale), r = min(rotation, 45 deg).
    """
    if not 0 <= augmentation.scale < 1:
        raise ValueError(f"data.augmentation.scale={augmentation.scale}; the crop cache needs 0 <= scale < 1")
    r = math.radians(min(abs(float(augmentation.rotation)), 45.0))
    translation = abs(float(augmentation.translation))
    return (1.0 + 2.0 * translation) * (math.cos(r) + math.sin(r)) / (1.0 - float(augmentation.scale))


def patch_geometry(image_size: int, margin: float, resolution: float) -> tuple[int, np.ndarray]:
    """The patch side and the 3x3 matrix from evaluation-crop pixels to patch pixels (a scaling by
    `resolution` about the centres, so the crop's centre is the patch's)."""
    side = int(math.ceil(resolution * image_size * margin)) + 2 * PATCH_PAD
    centre_crop, centre_patch = (image_size - 1) / 2, (side - 1) / 2
    to_patch = np.array(
        [
            [resolution, 0.0, centre_patch - resolution * centre_crop],
            [0.0, resolution, centre_patch - resolution * centre_crop],
            [0.0, 0.0, 1.0],
        ]
    )
    return side, to_patch


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode("utf-8", "surrogateescape")).hexdigest()


def _array_digest(array: np.ndarray | None) -> str:
    if array is None:
        return "none"
    array = np.ascontiguousarray(np.asarray(array, dtype=np.float64))
    return hashlib.sha256(repr(array.shape).encode() + array.tobytes()).hexdigest()[:16]


def _file_stat(path: Path | None) -> list | None:
    if path is None:
        return None
    try:
        stat = os.stat(path)
    except OSError:
        return [os.fspath(path), None, None]
    return [os.fspath(path), stat.st_size, stat.st_mtime_ns]


def _record_entry(record: FaceRecord, masks: bool) -> list:
    return [
        _file_stat(record.image_path),
        _file_stat(record.mask_path) if masks else None,
        _array_digest(record.landmarks),
        _array_digest(record.box),
    ]


class CachedCrops:
    """An opened split cache: the patches, their matrices and masks, memory-mapped on first use (so
    a pickled copy, as DataLoader workers get, holds only the paths and maps the files itself)."""

    def __init__(self, folder: Path, key: dict) -> None:
        self.folder = folder
        self.files = dict(key["files"])
        self.exact = bool(key["settings"]["exact"])
        self.patch_size = int(key["settings"]["patch_size"])
        self.count = int(key["faces"])
        self.failed = {int(i): (p, a) for i, (p, a) in key["failed"].items()}
        self._arrays: dict[str, np.ndarray] | None = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_arrays"] = None
        return state

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        if self._arrays is None:
            self._arrays = {
                name: np.load(self.folder / file, mmap_mode="r", allow_pickle=False)
                for name, file in self.files.items()
            }
        return self._arrays

    @property
    def nbytes(self) -> int:
        return sum(os.path.getsize(self.folder / file) for file in self.files.values())

    def check(self) -> None:
        """Map the files now and confirm their shapes (a missing or short file raises OSError)."""
        arrays = self.arrays
        for name, array in arrays.items():
            if len(array) != self.count:
                raise OSError(
                    f"{shown(self.folder / self.files[name])}: {len(array)} faces, not {self.count}"
                )

    def face(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(patch, matrix original -> patch, mask patch or None) of face `index`; a face whose image
        failed to decode when the cache was built raises the ImageDecodeError it raised then."""
        if index in self.failed:
            problem, advice = self.failed[index]
            raise ImageDecodeError(problem, advice)
        arrays = self.arrays
        mask = arrays["masks"][index] if "masks" in arrays else None
        return arrays["patches"][index], np.array(arrays["matrices"][index]), mask


class CropCacheSpec:
    """What a split's cache holds for `dataset`, and where."""

    def __init__(self, dataset: LandmarkDataset, cache_dir: str | Path, name: str, resolution: float) -> None:
        if resolution <= 0:
            raise ValueError(f"data.cache_resolution={resolution}; give a positive number")
        self.dataset = dataset
        self.exact = dataset.augmentation is None
        if self.exact:
            self.margin, self.resolution = 1.0, 1.0
            self.patch_size, self.to_patch = dataset.image_size, np.eye(3)
        else:
            self.margin, self.resolution = augmentation_margin(dataset.augmentation), float(resolution)
            self.patch_size, self.to_patch = patch_geometry(dataset.image_size, self.margin, self.resolution)
        self.masks = dataset.occluder_masks
        self.settings = {
            "version": CACHE_VERSION,
            "split": dataset.split,
            "faces": len(dataset.records),
            "image_size": dataset.image_size,
            "crop_margin": dataset.crop_margin,
            "crop_box": dataset.crop_box,
            "exact": self.exact,
            "augmentation_margin": self.margin,
            "resolution": self.resolution,
            "patch_size": self.patch_size,
            "masks": self.masks,
            "max_image_pixels": dataset.max_image_pixels,
            "image_paths": _digest([os.fspath(r.image_path) for r in dataset.records]),
        }
        self.stem = f"{dataset.split}-{_digest(self.settings)[:12]}"
        self.folder = Path(cache_dir) / name

    def key(self) -> dict:
        entries = [_record_entry(r, self.masks) for r in self.dataset.records]
        return {"settings": self.settings, "records": _digest(entries)}

    def patch_matrix(self, record: FaceRecord) -> np.ndarray:
        """Original pixels -> patch pixels."""
        eval_matrix = np.vstack([self.dataset.eval_matrix(record), [0.0, 0.0, 1.0]])
        return eval_matrix[:2] if self.exact else (self.to_patch @ eval_matrix)[:2]


def _read_key(path: Path) -> dict | None:
    try:
        key = json.loads(path.read_text(encoding="utf-8", errors="surrogateescape"))
    except (OSError, ValueError):
        return None
    return key if isinstance(key, dict) else None


def _matches(stored: dict | None, key: dict) -> bool:
    return stored is not None and all(stored.get(k) == v for k, v in key.items())


def _try_open(spec: CropCacheSpec, key: dict) -> CachedCrops | None:
    stored = _read_key(spec.folder / f"{spec.stem}.json")
    if not _matches(stored, key):
        return None
    try:
        crops = CachedCrops(spec.folder, stored)
        crops.check()
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return crops


def _build(spec: CropCacheSpec, key: dict, workers: int) -> dict:
    """Cut every face, write the files under a new build token, commit by writing the key."""
    from numpy.lib.format import open_memmap

    from .dataset import load_image, load_rgb

    dataset = spec.dataset
    count, side = len(dataset.records), spec.patch_size
    token = secrets.token_hex(4)
    files = {"patches": f"{spec.stem}.{token}.npy", "matrices": f"{spec.stem}.{token}.matrix.npy"}
    if spec.masks:
        files["masks"] = f"{spec.stem}.{token}.masks.npy"
    temporary = {name: spec.folder / f".{file}.tmp" for name, file in files.items()}
    failed: dict[str, list] = {}
    try:
        patches = open_memmap(temporary["patches"], mode="w+", dtype=np.uint8, shape=(count, side, side, 3))
        matrices = np.zeros((count, 2, 3), dtype=np.float64)
        masks = (
            open_memmap(temporary["masks"], mode="w+", dtype=np.uint8, shape=(count, side, side))
            if spec.masks
            else None
        )

        def cut(index: int) -> None:
            record = dataset.records[index]
            matrix = spec.patch_matrix(record)
            matrices[index] = matrix
            try:
                patches[index] = warp_crop(
                    load_rgb(record.image_path, dataset.max_image_pixels), matrix, side
                )
                if masks is not None:
                    mask = load_image(record.mask_path, "L", dataset.max_image_pixels)
                    masks[index] = warp_crop(mask, matrix, side, nearest=True)
            except ImageDecodeError as err:
                text = str(err)
                advice = text[len(err.problem) + 2 :] if text.startswith(f"{err.problem}; ") else None
                failed[str(index)] = [err.problem, advice]

        with ThreadPoolExecutor(max(1, workers)) as pool:
            list(pool.map(cut, range(count)))
        for array in (patches, masks):
            if array is not None:
                array.flush()
        patches = masks = None  # unmapped before the renames
        with open(temporary["matrices"], "wb") as file:  # a file object: np.save adds no suffix
            np.save(file, matrices)
        for name, file in files.items():
            os.replace(temporary[name], spec.folder / file)
    finally:
        for path in temporary.values():
            with suppress(OSError):
                os.unlink(path)
    stored = {**key, "faces": count, "files": files, "failed": failed}
    key_path = spec.folder / f"{spec.stem}.json"
    old = _read_key(key_path)
    atomic_write_text(key_path, json.dumps(stored, indent=1, sort_keys=True) + "\n")
    # The previous build's files: a process that maps them keeps them until it lets go (POSIX).
    if old and isinstance(old.get("files"), dict):
        for file in old["files"].values():
            if isinstance(file, str) and file not in files.values() and "/" not in file:
                with suppress(OSError):
                    os.unlink(spec.folder / file)
    return stored


def open_crop_cache(
    dataset: LandmarkDataset,
    cache_dir: str | Path,
    name: str,
    resolution: float = 1.25,
    workers: int | None = None,
) -> CachedCrops:
    """The crop cache of `dataset`'s split under `cache_dir/name`, built first if missing or stale."""
    spec = CropCacheSpec(dataset, cache_dir, name, resolution)
    key = spec.key()
    crops = _try_open(spec, key)
    if crops is not None:
        log.info(
            f"crop cache: reusing split '{dataset.split}' ({crops.count} faces, {crops.nbytes / 2**20:.1f} MB) "
            f"from {shown(spec.folder / spec.stem)}.*"
        )
        return crops
    spec.folder.mkdir(parents=True, exist_ok=True)
    what = f"the crop cache {shown(spec.folder / spec.stem)}"
    with build_lock(spec.folder / f"{spec.stem}.lock", what, LOCK_WAIT_S, CropCacheLockError):
        crops = _try_open(spec, key)  # another process may have built it while this one waited
        if crops is not None:
            return crops
        started = time.perf_counter()
        stored = _build(spec, key, workers if workers is not None else min(8, os.cpu_count() or 1))
        crops = CachedCrops(spec.folder, stored)
        crops.check()
    log.info(
        f"crop cache: built split '{dataset.split}' ({crops.count} faces, {crops.nbytes / 2**20:.1f} MB, "
        f"{time.perf_counter() - started:.1f} s) in {shown(spec.folder / spec.stem)}.*"
    )
    return crops


def attach_crop_cache(
    dataset: LandmarkDataset, cache_dir: str | Path, name: str, resolution: float = 1.25
) -> LandmarkDataset:
    """Give `dataset` its split's crop cache; where the cache cannot be written (a read-only or full
    disk), say so and leave the dataset reading the photographs."""
    try:
        dataset.crops = open_crop_cache(dataset, cache_dir, name, resolution)
    except OSError as err:
        log.warning(
            f"crop cache: cannot use {shown(Path(cache_dir) / name)} for split '{dataset.split}' ({err}); "
            "reading the images instead (set data.cache_dir to a writable folder, or data.cache=false)"
        )
        dataset.crops = None
    return dataset


__all__ = (
    "CACHE_VERSION",
    "CachedCrops",
    "CropCacheLockError",
    "attach_crop_cache",
    "augmentation_margin",
    "open_crop_cache",
    "patch_geometry",
)
