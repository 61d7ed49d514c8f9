"""MERL-RAV (Kumar et al., LUVLi, CVPR 2020; https://github.com/abhi1kumar/MERL-RAV_dataset): 68-point
re-annotations of AFLW faces with each point's visibility, in the layout its
`organize_merl_rav_using_aflw_and_our_labels.py` writes:

    merl_rav_organized/{frontal,left,lefthalf,right,righthalf}/{trainset,testset}/imageNNNNN[_k].{jpg,pts}

19,314 faces: 15,449 in the trainsets, 3,865 in the testsets; `conf/data/merl_rav.yaml` states them and
each split's points per label kind, counted from the published label files (commit 6e68cc8d), which
`make data-check` compares.

A `.pts` file is 300W's (`w300.read_pts`: 1-based pixels, read 0-based), each point's signs carrying
its label, as the dataset's README defines them:

- (x, y), both positive: unoccluded (`visible`);
- (-x, -y): externally occluded, at the estimated position (x, y) (`OCCLUDED_BY_OBJECT`);
- (-1, -1): self-occluded, no position given (`SELF_OCCLUDED`, and `located` False).

A point without a position keeps a placeholder, the mean of the face's located points (inside their
tight box, so the crop and the box normaliser are those of the located points); the per-point mask
`FaceRecord.located` leaves it out of the loss, every NME and the occlusion figures.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..records import OCCLUDED_BY_OBJECT, SELF_OCCLUDED, AnnotationError, FaceRecord, report
from .w300 import read_pts

POSES = ("frontal", "left", "lefthalf", "right", "righthalf")


def decode_merl_rav_points(raw: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The points of one face as the file writes them (raw (L, 2), 1-based, signs carrying the labels)
    -> (landmarks (L, 2) float32 0-based, occlusion (L,) uint8 bit mask, located (L,) bool)."""
    raw = np.asarray(raw, dtype=np.float64)
    self_occluded = (raw[:, 0] == -1.0) & (raw[:, 1] == -1.0)
    negative = raw < 0
    mixed = negative[:, 0] != negative[:, 1]
    if bool(mixed.any()):
        point = int(np.flatnonzero(mixed)[0]) + 1
        raise AnnotationError(
            f"{where}: point {point} has one negative coordinate; MERL-RAV marks a point occluded by "
            "negating both"
        )
    located = ~self_occluded
    if not bool(located.any()):
        raise AnnotationError(f"{where}: every point is self-occluded; no face position is given")
    occlusion = np.where(negative[:, 0], OCCLUDED_BY_OBJECT, 0).astype(np.uint8)
    occlusion[self_occluded] = SELF_OCCLUDED
    landmarks = np.abs(raw) - 1.0
    landmarks[self_occluded] = landmarks[located].mean(axis=0)
    return landmarks.astype(np.float32), occlusion, located


def read_merl_rav(
    folder: str | Path,
    problems: list[AnnotationError] | None = None,
    every: int | None = None,
    part: str = "all",
) -> list[FaceRecord]:
    """Every face of one MERL-RAV folder (`frontal/trainset`, ...), sorted by file name: the image of
    the same stem beside each `.pts`. `every` and `part` hold out a validation part: with every=k,
    part="held_out" keeps faces 0, k, 2k, ... of the sorted folder and part="rest" the others (the
    dataset has no validation split; the calibration must not be fitted on the test faces)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: folder not found (a MERL-RAV <pose>/<trainset|testset> folder)")
    if part not in ("all", "held_out", "rest") or (part != "all" and not every):
        raise ValueError(
            f"merl_rav reader: part={part!r}, every={every!r}; part all, or held_out/rest with every"
        )
    labels = sorted(folder.glob("*.pts"))
    if part != "all":
        labels = [p for i, p in enumerate(labels) if (i % every == 0) == (part == "held_out")]
    records = []
    for pts_path in labels:
        try:
            image_path = next(
                (p for p in (pts_path.with_suffix(s) for s in (".jpg", ".png")) if p.exists()), None
            )
            if image_path is None:
                raise AnnotationError(f"{pts_path}: annotation without an image (no {pts_path.stem}.jpg)")
            raw = read_pts(pts_path) + 1.0  # back to the file's numbers: the signs are the labels
            landmarks, occlusion, located = decode_merl_rav_points(raw, str(pts_path))
        except AnnotationError as err:
            report(err, problems)
            continue
        records.append(
            FaceRecord(image_path, landmarks, occlusion, annotation=str(pts_path), located=located)
        )
    return records
