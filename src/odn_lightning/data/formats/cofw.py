"""COFW's `.mat` files (Burgos-Artizzu, Perona and Dollar, "Robust face landmark estimation under
occlusion", ICCV 2013; http://www.vision.caltech.edu/xpburgos/ICCV13/)."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from ...atomic import OutputWriteError, atomic_write_bytes, shown
from ...schemes import COFW29
from ..records import OCCLUDED_BY_OBJECT, AnnotationError, FaceRecord, report
from .matlab import load_mat


def _mat_images(path: Path, key: str, cell: np.ndarray) -> list[np.ndarray]:
    """A MATLAB cell array of images (an object array, (N, 1) or (1, N)) as a list of uint8 arrays."""
    if cell.dtype != object:
        raise AnnotationError(f"{path}: '{key}' must be a cell array of images")
    images = []
    for i, image in enumerate(cell.reshape(-1)):
        image = np.asarray(image)
        if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3) or image.size == 0:
            raise AnnotationError(f"{path}: '{key}' image {i} has shape {image.shape}, not HxW or HxWx3")
        images.append(image.astype(np.uint8))
    return images


def write_png(path: Path, image: np.ndarray) -> None:
    """Write an RGB (or grey) image as PNG atomically: a run killed midway leaves no partial file
    that later runs would reuse."""
    bgr = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", bgr)
    if not ok:
        raise OSError(f"{path}: cannot encode the COFW image as PNG")
    try:
        atomic_write_bytes(path, encoded.tobytes())
    except OutputWriteError as err:  # its advice is about run outputs; this is the data's folder
        reason = os.strerror(err.errno) if err.errno else str(err)
        raise OutputWriteError(
            f"cannot write {shown(path)} ({reason}): COFW's images are written there as PNG on first "
            "use; make that folder writable, with free space",
            path,
            err.__cause__ if isinstance(err.__cause__, OSError) else None,
        ) from err


def read_cofw_mat(
    mat_file: str | Path, image_dir: str | Path | None = None, problems: list[AnnotationError] | None = None
) -> list[FaceRecord]:
    """Read COFW's `COFW_train_color.mat` or `COFW_test_color.mat`, or the grey originals
    `COFW_train.mat` / `COFW_test.mat` (same keys, HxW images; COFW-68's benchmark reads `COFW_test.mat`).

    Keys: `IsTr`/`phisTr`/`bboxesTr` (train) or `IsT`/`phisT`/`bboxesT` (test). `Is*` is a cell array
    of images (uint8, grey HxW or RGB HxWx3); `phis*` is (N, 87): 29 x, 29 y, 29 occlusion flags
    (1 = occluded -> `OCCLUDED_BY_OBJECT`); `bboxes*` is (N, 4) `[x y w h]` (optional here).
    Coordinates are Matlab 1-based and are shifted by -1; the box becomes 0-based
    (x-1, y-1, x-1+w, y-1+h).

    The images live inside the .mat, so they are written once as PNG to `image_dir` (default: a folder
    `<mat stem>_images` next to the .mat) as `cofw_{split}_{i:04d}.png`, each atomically (whole or
    not at all); existing files are reused.
    The colour files are published as MATLAB v7.3 (HDF5) and read with h5py; v7 files are read too.
    """
    path = Path(mat_file)
    mat = load_mat(path)
    if "IsTr" in mat:
        split, image_key, phis_key, box_key = "train", "IsTr", "phisTr", "bboxesTr"
    elif "IsT" in mat:
        split, image_key, phis_key, box_key = "test", "IsT", "phisT", "bboxesT"
    else:
        raise AnnotationError(f"{path}: neither 'IsTr' (train) nor 'IsT' (test) is in the file")
    if phis_key not in mat:
        raise AnnotationError(f"{path}: '{phis_key}' (the landmarks) is missing")
    images = _mat_images(path, image_key, mat[image_key])
    count = COFW29.num_landmarks
    phis = np.asarray(mat[phis_key], dtype=np.float64)
    if phis.shape != (len(images), 3 * count):
        raise AnnotationError(
            f"{path}: '{phis_key}' has shape {phis.shape}, expected ({len(images)}, {3 * count})"
        )
    boxes = None
    if box_key in mat:
        boxes = np.asarray(mat[box_key], dtype=np.float64)
        if boxes.shape != (len(images), 4):
            raise AnnotationError(f"{path}: '{box_key}' has shape {boxes.shape}, expected ({len(images)}, 4)")
    occluded = phis[:, 2 * count :]

    image_dir = Path(image_dir) if image_dir is not None else path.parent / f"{path.stem}_images"
    image_dir.mkdir(parents=True, exist_ok=True)
    records = []
    for i, image in enumerate(images):
        where = f"{path}: face {i + 1}"
        if not np.isfinite(phis[i]).all():
            report(AnnotationError(f"{where}: '{phis_key}' has non-finite values"), problems)
            continue
        if not np.isin(occluded[i], (0.0, 1.0)).all():
            report(AnnotationError(f"{where}: occlusion flags in '{phis_key}' must be 0 or 1"), problems)
            continue
        image_path = image_dir / f"cofw_{split}_{i:04d}.png"
        if not image_path.exists():
            write_png(image_path, image)
        xs, ys = phis[i, :count], phis[i, count : 2 * count]
        landmarks = (np.stack([xs, ys], axis=1) - 1.0).astype(np.float32)
        occlusion = np.where(occluded[i] > 0, OCCLUDED_BY_OBJECT, 0).astype(np.uint8)
        box = None
        if boxes is not None:
            x, y, w, h = boxes[i]
            box = np.asarray([x - 1.0, y - 1.0, x - 1.0 + w, y - 1.0 + h], dtype=np.float32)
        records.append(FaceRecord(image_path, landmarks, occlusion, box=box, annotation=where))
    return records
