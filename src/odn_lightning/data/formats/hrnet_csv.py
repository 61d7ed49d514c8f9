"""HRNet-Facial's CSV files (`face_landmarks_{300w,aflw,wflw}_{train,test,...}.csv`; Wang et al., "Deep
High-Resolution Representation Learning for Visual Recognition", TPAMI 2020;
https://github.com/HRNet/HRNet-Facial-Landmark-Detection, `lib/datasets/{face300w,wflw,aflw}.py`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..records import AnnotationError, FaceRecord, report
from .text import finite_floats, read_csv_rows

# Image names HRNet's CSVs spell differently from the files the datasets ship: iBUG's
# `image_092 _01.jpg` has a space that HRNet's 300W CSVs drop (FaRL maps it the same way). A name is
# mapped only when the CSV's spelling is missing and the shipped one exists.
SHIPPED_NAMES = {"ibug/image_092_01.jpg": "ibug/image_092 _01.jpg"}


def image_path(image_root: Path, name: str) -> Path:
    """Where the CSV's image `name` is under `image_root`, with `SHIPPED_NAMES` applied where needed."""
    path = image_root / name
    shipped = SHIPPED_NAMES.get(name)
    if shipped is not None and not path.exists() and (image_root / shipped).exists():
        return image_root / shipped
    return path


def read_hrnet_csv(
    csv_file: str | Path,
    image_root: str | Path,
    one_based: bool = False,
    problems: list[AnnotationError] | None = None,
) -> list[FaceRecord]:
    """Read an HRNet-Facial CSV.

    One header row, then per face (columns by position, as HRNet reads them with `iloc`):
    `image_name, scale, center_w, center_h, x0, y0, x1, y1, ...`, and for AFLW
    `image_name, scale, box_size, center_w, center_h, x0, y0, ...`. The header's column count gives
    the layout and the number of points N: 4 + 2N columns (even) or, with `box_size`, 5 + 2N (odd);
    whether N is the dataset's scheme is checked with every other record (`records.checked`).
    `scale` is the box side / 200 (HRNet multiplies it by 1.25 before cropping; the stored value is
    kept here, and the face box is the square of side `scale * 200` about the centre). Image paths
    are relative to `image_root`.

    Coordinate base: HRNet's 300W CSVs hold the `.pts` values unchanged, 1-based (the row of
    `ibug/image_003_1.jpg` in `face_landmarks_300w_valid.csv` carries that face's `.pts` numbers, as
    mmpose's converted 300W json does), so `data=w300_hrnet` reads them with `one_based=True` (points
    and centre shifted by -1), landing on the same 0-based pixels as `data=w300`. Its WFLW CSVs hold
    WFLW's list values and its AFLW CSVs `AFLWinfo_release.mat`'s, both used as stored (the default),
    as their own readers use them. `make data-check` compares the CSV with any `.pts` beside an image.
    """
    path = Path(csv_file)
    image_root = Path(image_root)
    shift = 1.0 if one_based else 0.0
    (_, header), *rows = read_csv_rows(path)
    columns = len(header)
    has_box_size = columns % 2 == 1
    num_landmarks = (columns - (5 if has_box_size else 4)) // 2
    if num_landmarks < 1:
        raise AnnotationError(f"{path}: the header has {columns} columns, too few for any landmark")
    first = 2 if has_box_size else 1  # the centre's position among the numbers after the image name
    records = []
    for row_no, row in rows:
        where = f"row {row_no}"
        try:
            if len(row) != columns:
                raise AnnotationError(
                    f"{path}: {where}: {len(row)} columns; the header has {columns} ({num_landmarks} points)"
                )
            numbers = finite_floats(path, where, row[1:])
            if numbers[0] <= 0:
                raise AnnotationError(f"{path}: {where}: scale must be positive")
        except AnnotationError as err:
            report(err, problems)
            continue
        scale = float(numbers[0])
        center = (numbers[first : first + 2] - shift).astype(np.float32)
        landmarks = (numbers[first + 2 :].reshape(num_landmarks, 2) - shift).astype(np.float32)
        half = scale * 100.0
        records.append(
            FaceRecord(
                image_path(image_root, row[0].strip()),
                landmarks,
                box=np.concatenate([center - half, center + half]).astype(np.float32),
                annotation=f"{path}: {where}",
                scale=scale,
                center=center,
                box_size=float(numbers[1]) if has_box_size else None,
            )
        )
    return records
