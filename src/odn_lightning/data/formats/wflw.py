"""WFLW list files (Wu et al., "Look at Boundary", CVPR 2018; https://wywu.github.io/projects/LAB/WFLW.html)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...schemes import WFLW98
from ..records import AnnotationError, FaceRecord, report
from .text import finite_floats, read_annotation_text

# WFLW's six attribute flags, in file order (https://wywu.github.io/projects/LAB/WFLW.html).
WFLW_ATTRIBUTES = ("pose", "expression", "illumination", "make-up", "occlusion", "blur")


def read_wflw(
    annotation_file: str | Path, image_root: str | Path, problems: list[AnnotationError] | None = None
) -> list[FaceRecord]:
    """Read a WFLW list file.

    Files: `WFLW_annotations/list_98pt_rect_attr_train_test/list_98pt_rect_attr_{train,test}.txt` and
    `WFLW_annotations/list_98pt_test/list_98pt_test_{largepose,expression,illumination,makeup,
    occlusion,blur}.txt`. Each line: 196 landmark numbers (x0 y0 ... x97 y97), 4 box numbers
    (x_min y_min x_max y_max), 6 attribute flags (see `WFLW_ATTRIBUTES`), then the image path relative
    to `WFLW_images/` (`image_root`), per the dataset page https://wywu.github.io/projects/LAB/WFLW.html.

    Assumption (not stated by the dataset page): coordinates are 0-based pixels, used unchanged, as
    HRNet-Facial, PFLD and mmpose all do; WFLW was not made in Matlab.
    """
    path = Path(annotation_file)
    image_root = Path(image_root)
    num_coordinates = 2 * WFLW98.num_landmarks
    num_numbers = num_coordinates + 4 + len(WFLW_ATTRIBUTES)
    lines = [(no, line) for no, line in enumerate(read_annotation_text(path).splitlines(), 1) if line.strip()]
    if not lines:
        raise AnnotationError(f"{path}: no faces listed")
    records = []
    for line_no, line in lines:
        where = f"line {line_no}"
        # maxsplit keeps an image name with spaces in one piece.
        tokens = line.split(maxsplit=num_numbers)
        try:
            if len(tokens) != num_numbers + 1:
                raise AnnotationError(
                    f"{path}: {where}: {len(tokens)} fields, expected {num_numbers} numbers and an image path"
                )
            numbers = finite_floats(path, where, tokens[:num_numbers])
            flags = numbers[num_coordinates + 4 :]
            if not np.isin(flags, (0.0, 1.0)).all():
                raise AnnotationError(f"{path}: {where}: attribute flags must be 0 or 1")
        except AnnotationError as err:
            report(err, problems)
            continue
        landmarks = numbers[:num_coordinates].reshape(WFLW98.num_landmarks, 2).astype(np.float32)
        box = numbers[num_coordinates : num_coordinates + 4].astype(np.float32)
        attributes = {name: bool(v) for name, v in zip(WFLW_ATTRIBUTES, flags, strict=True)}
        image_path = image_root / tokens[-1].strip()
        annotation = f"{path}: {where}"
        records.append(
            FaceRecord(image_path, landmarks, box=box, annotation=annotation, attributes=attributes)
        )
    return records
