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

from .pts import AnnotationError, read_pts

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
OCCLUDED_BY_OBJECT = 1
SELF_OCCLUDED = 2


@dataclass(frozen=True)
class FaceRecord:
    image_path: Path
    landmarks: np.ndarray  # (N, 2) float32, 0-based pixels
    occlusion: np.ndarray | None = None  # (N,) uint8 bit mask, None where unknown
    mask_path: Path | None = None

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
        values = [int(v) for v in path.read_text().split()]
    except ValueError:
        raise AnnotationError(f"{path}: occlusion flags must be integers") from None
    if len(values) != num_points:
        raise AnnotationError(f"{path}: {len(values)} occlusion flags for {num_points} landmarks")
    return np.asarray(values, dtype=np.uint8)


def read_pts_folder(folder: str | Path) -> list[FaceRecord]:
    """Every face of one flat 300W-style folder, sorted by file name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: folder not found")
    records = []
    for image_path in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        pts_path = image_path.with_suffix(".pts")
        if not pts_path.exists():
            raise AnnotationError(f"{image_path}: image has no annotation ({pts_path.name} is missing)")
        landmarks = read_pts(pts_path)
        occ_path = occlusion_path(image_path)
        occlusion = read_occlusion(occ_path, len(landmarks)) if occ_path.exists() else None
        mask = mask_path_for(image_path)
        records.append(FaceRecord(image_path, landmarks, occlusion, mask if mask.exists() else None))
    return records
