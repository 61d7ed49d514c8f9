"""Readers for the 300W on-disk layout: an image and a `.pts` file per face, in flat folders.

Optional side files (written by the synthetic generator, absent from real 300W):
- `<stem>.occ`: one integer per landmark, a bit mask: 0 visible, bit 1 occluded by an object,
  bit 2 (value 2) turned away from the camera (self-occlusion);
- `masks/<stem>.png`: the occluder mask of the image (255 where an occluder covers the pixel).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .pts import AnnotationError, read_annotation_text, read_pts

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
OCCLUDED_BY_OBJECT = 1
SELF_OCCLUDED = 2


@dataclass(frozen=True)
class FaceRecord:
    image_path: Path
    landmarks: np.ndarray  # (N, 2) float32, 0-based pixels
    occlusion: np.ndarray | None = None  # (N,) uint8 bit mask, None where unknown
    mask_path: Path | None = None
    # Face box (x_min, y_min, x_max, y_max) in 0-based pixels, as the dataset gives it; None if absent.
    box: np.ndarray | None = None
    # Where the landmarks were read ("a.pts", "list.txt: line 7"), for reports; None: the image path.
    annotation: str | None = None

    @property
    def visible(self) -> np.ndarray | None:
        return None if self.occlusion is None else self.occlusion == 0


def occlusion_path(image_path: Path) -> Path:
    return image_path.with_suffix(".occ")


def mask_path_for(image_path: Path) -> Path:
    return image_path.parent / "masks" / (image_path.stem + ".png")


def write_occlusion(path: str | Path, occlusion: np.ndarray) -> None:
    Path(path).write_text("".join(f"{int(v)}\n" for v in occlusion))


def read_occlusion(path: str | Path, num_points: int) -> np.ndarray:
    path = Path(path)
    try:
        values = [int(v) for v in read_annotation_text(path).split()]
    except ValueError:
        raise AnnotationError(f"{path}: occlusion flags must be integers") from None
    if len(values) != num_points:
        raise AnnotationError(f"{path}: {len(values)} occlusion flags for {num_points} landmarks")
    return np.asarray(values, dtype=np.uint8)


def image_size(path: Path, decode: bool = False) -> tuple[int, int]:
    """(width, height) from the image header; `decode` also decodes the pixels, which finds
    truncated files whose header is intact (slower: data-check does it, training does not)."""
    if not path.is_file():
        raise AnnotationError(f"{path}: image file is missing")
    try:
        with Image.open(path) as image:
            if decode:
                image.load()
            return image.size
    except (OSError, SyntaxError, ValueError) as err:
        raise AnnotationError(f"{path}: not a readable image ({err})") from err


def check_landmarks(
    path: Path | str, landmarks: np.ndarray, num_points: int | None, size: tuple[int, int]
) -> None:
    """Point count, finiteness, and points far outside the image (over half the image beyond an edge)."""
    if num_points is not None and len(landmarks) != num_points:
        raise AnnotationError(f"{path}: {len(landmarks)} landmarks, expected {num_points}")
    if not np.isfinite(landmarks).all():
        raise AnnotationError(f"{path}: landmarks must be finite numbers")
    width, height = size
    low, high = -0.5 * np.array([width, height]), 1.5 * np.array([width, height])
    outside = np.any((landmarks < low) | (landmarks > high), axis=1)
    if outside.any():
        raise AnnotationError(
            f"{path}: {int(outside.sum())} points far outside the {width}x{height} image "
            f"(first: point {int(np.argmax(outside))} at {landmarks[np.argmax(outside)].round(1).tolist()})"
        )


def report(err: AnnotationError, problems: list[AnnotationError] | None) -> None:
    """Raise a reading problem, or collect it when the caller gathers every problem in one pass."""
    if problems is None:
        raise err
    problems.append(err)


def checked(
    records: list[FaceRecord],
    num_points: int | None,
    problems: list[AnnotationError] | None = None,
    decode_images: bool = False,
) -> list[FaceRecord]:
    """The records whose image is readable and whose points fit it; the others are reported."""
    good = []
    for record in records:
        try:
            size = image_size(record.image_path, decode_images)
            check_landmarks(record.annotation or record.image_path, record.landmarks, num_points, size)
        except AnnotationError as err:
            report(err, problems)
            continue
        good.append(record)
    return good


def read_pts_folder(folder: str | Path, problems: list[AnnotationError] | None = None) -> list[FaceRecord]:
    """Every face of one flat 300W-style folder, sorted by file name.

    A bad face (image without annotation or the reverse, unreadable `.pts`) raises AnnotationError,
    or, when `problems` is a list, is appended there and left out, so that one pass reports every
    bad file. Images and point ranges are checked by `checked`.
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
