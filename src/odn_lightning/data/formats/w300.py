"""The 300W layout (Sagonas et al., https://ibug.doc.ic.ac.uk/resources/300-W/): flat folders holding
an image and a `.pts` file per face.

`.pts`: `version: 1`, `n_points: N`, then N `x y` lines between braces. Its coordinates are 1-based
pixels (Matlab convention, as the iBUG tools write them); inside the suite landmarks are 0-based
(the centre of the top-left pixel is (0, 0), as in OpenCV), so reading subtracts 1 and writing adds it.

Side files the synthetic generator writes (absent from real 300W):
- `<stem>.occ`: one integer per landmark, a bit mask: 0 visible, `OCCLUDED_BY_OBJECT` (1) covered by
  an object, `SELF_OCCLUDED` (2) turned away from the camera;
- `masks/<stem>.png`: the occluder mask of the image (255 where an occluder covers the pixel).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ...atomic import atomic_write_text
from ..records import AnnotationError, FaceRecord, report
from .text import read_annotation_text

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def read_pts(path: str | Path) -> np.ndarray:
    """Read a `.pts` file into an (N, 2) float32 array of 0-based pixel coordinates."""
    path = Path(path)
    lines = [ln.strip() for ln in read_annotation_text(path).splitlines() if ln.strip()]
    header = {}
    body_start = None
    for i, line in enumerate(lines):
        if line == "{":
            body_start = i + 1
            break
        key, _, value = line.partition(":")
        header[key.strip()] = value.strip()
    if body_start is None or "}" not in lines[body_start:]:
        raise AnnotationError(f"{path}: not a .pts file (missing '{{' ... '}}' around the points)")
    try:
        n_points = int(header["n_points"])
    except (KeyError, ValueError):
        raise AnnotationError(f"{path}: missing or invalid 'n_points' header") from None
    body = lines[body_start : lines.index("}", body_start)]
    if len(body) != n_points:
        raise AnnotationError(f"{path}: header says {n_points} points but {len(body)} are listed")
    points = []
    for line in body:
        parts = line.split()
        try:
            xy = [float(v) for v in parts]
        except ValueError:
            raise AnnotationError(f"{path}: non-numeric point line '{line}'") from None
        if len(xy) != 2 or not all(math.isfinite(v) for v in xy):
            raise AnnotationError(f"{path}: point line '{line}' is not two finite numbers")
        points.append(xy)
    return np.asarray(points, dtype=np.float32).reshape(n_points, 2) - 1.0


def write_pts(path: str | Path, landmarks: np.ndarray) -> None:
    """Write (N, 2) 0-based pixel coordinates as a 300W `.pts` file (1-based), atomically."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    lines = ["version: 1", f"n_points: {len(landmarks)}", "{"]
    lines += [f"{x + 1.0:.3f} {y + 1.0:.3f}" for x, y in landmarks]
    lines.append("}")
    atomic_write_text(path, "\n".join(lines) + "\n")


def occlusion_path(image_path: Path) -> Path:
    return image_path.with_suffix(".occ")


def mask_path_for(image_path: Path) -> Path:
    return image_path.parent / "masks" / (image_path.stem + ".png")


def write_occlusion(path: str | Path, occlusion: np.ndarray) -> None:
    Path(path).write_text("".join(f"{int(v)}\n" for v in occlusion))


def read_occlusion(path: str | Path, num_landmarks: int) -> np.ndarray:
    path = Path(path)
    try:
        values = [int(v) for v in read_annotation_text(path).split()]
    except ValueError:
        raise AnnotationError(f"{path}: occlusion flags must be integers") from None
    if len(values) != num_landmarks:
        raise AnnotationError(f"{path}: {len(values)} occlusion flags for {num_landmarks} landmarks")
    return np.asarray(values, dtype=np.uint8)


def read_pts_folder(folder: str | Path, problems: list[AnnotationError] | None = None) -> list[FaceRecord]:
    """Every face of one flat 300W-style folder, sorted by file name.

    A bad face (image without annotation or the reverse, unreadable `.pts`) raises AnnotationError,
    or, when `problems` is a list, is appended there and left out, so that one pass reports every
    bad file. Images and point ranges are checked by `records.checked`.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: folder not found")
    files = sorted(p for p in folder.iterdir() if p.is_file())
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    annotated = {p.with_suffix("") for p in images}
    records = []
    for pts_path in (p for p in files if p.suffix == ".pts" and p.with_suffix("") not in annotated):
        report(
            AnnotationError(f"{pts_path}: annotation without an image (no {pts_path.stem}.jpg/.png)"),
            problems,
        )
    for image_path in images:
        pts_path = image_path.with_suffix(".pts")
        try:
            if not pts_path.exists():
                raise AnnotationError(f"{image_path}: image has no annotation ({pts_path.name} is missing)")
            landmarks = read_pts(pts_path)
            occ_path = occlusion_path(image_path)
            occlusion = read_occlusion(occ_path, len(landmarks)) if occ_path.exists() else None
        except AnnotationError as err:
            report(err, problems)
            continue
        mask = mask_path_for(image_path)
        records.append(
            FaceRecord(
                image_path, landmarks, occlusion, mask if mask.exists() else None, annotation=str(pts_path)
            )
        )
    return records
