"""The suite's plain landmark CSV (`reader: landmarks_csv`), for datasets of your own: a header row,
then one row per face. The header names the columns (in any order; `python -m odn_lightning.convert
format=csv` writes them in this one):

- `image`: the image file, relative to `image_root` (default: the CSV's folder); an absolute path is
  used as given. Several rows may name one image (one row per face).
- `x0, y0, x1, y1, ..., x{N-1}, y{N-1}`: the N points in 0-based pixels, the suite's own convention:
  the centre of the image's top-left pixel is (0, 0), as in OpenCV. Values counted from 1 (MATLAB,
  a `.pts` file's) are read with `one_based: true` (1 is subtracted).
- `visible0, ..., visible{N-1}` (optional, all N or none): 1 visible, 0 not (occluded, or turned
  away: read as `OCCLUDED_BY_OBJECT`, as AFLW's and COFW's flags are); they feed the occluded /
  visible NMEs.
- `box_x_min, box_y_min, box_x_max, box_y_max` (optional, all four or none): the face box in the same
  pixels, e.g. a face detector's. With it `data.crop_box=dataset` crops about the box the network will
  be given at inference, and the box normalisations divide by it; without it both use the landmarks'
  tight box, which few points (a 5-point layout spans only eyes to mouth) make smaller than the face.

N is the number of `x` columns; whether it is the dataset's scheme is checked with every other record
(`records.checked`). A bad row raises AnnotationError naming the file and row (or, with a `problems`
list, is collected there and left out); a bad header fails the whole file.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ...atomic import atomic_open
from ..records import OCCLUDED_BY_OBJECT, AnnotationError, FaceRecord, report
from .text import finite_floats, read_csv_rows

IMAGE_COLUMN = "image"
BOX_COLUMNS = ("box_x_min", "box_y_min", "box_x_max", "box_y_max")
_POINT_COLUMN = re.compile(r"(x|y|visible)(\d+)")


def _columns(path: Path, header: Sequence[str]) -> tuple[int, list[tuple[int, int]], list[int], list[int]]:
    """From the header: the image column, each point's (x, y) columns, the visible columns (none or
    one per point) and the box columns (none or four)."""
    names = [name.strip().lower() for name in header]
    seen: dict[str, int] = {}
    for position, name in enumerate(names):
        if name in seen:
            raise AnnotationError(f"{path}: header: column '{name}' appears twice")
        known = name == IMAGE_COLUMN or name in BOX_COLUMNS or _POINT_COLUMN.fullmatch(name)
        if not known:
            raise AnnotationError(
                f"{path}: header: column {position + 1} '{header[position].strip()}' is not one of image, "
                f"x<i>, y<i>, visible<i>, {', '.join(BOX_COLUMNS)}"
            )
        seen[name] = position
    if IMAGE_COLUMN not in seen:
        raise AnnotationError(f"{path}: header: no 'image' column (the image file of each face)")
    count = sum(1 for name in seen if name.startswith("x") and _POINT_COLUMN.fullmatch(name))
    if count == 0:
        raise AnnotationError(f"{path}: header: no landmark columns (x0, y0, x1, y1, ...)")
    points = []
    for i in range(count):
        for axis in ("x", "y"):
            if f"{axis}{i}" not in seen:
                raise AnnotationError(
                    f"{path}: header: {axis}{i} is missing; {count} points need x0, y0, ..., "
                    f"x{count - 1}, y{count - 1}"
                )
        points.append((seen[f"x{i}"], seen[f"y{i}"]))
    matches = (_POINT_COLUMN.fullmatch(name) for name in seen)
    beyond = [m.group(0) for m in matches if m is not None and int(m.group(2)) >= count]
    if beyond:
        raise AnnotationError(
            f"{path}: header: column '{beyond[0]}' is beyond the points x0..x{count - 1}, y0..y{count - 1}"
        )
    visible = [seen[f"visible{i}"] for i in range(count) if f"visible{i}" in seen]
    if visible and len(visible) != count:
        raise AnnotationError(
            f"{path}: header: visible columns for {len(visible)} of the {count} points; give "
            f"visible0..visible{count - 1} or none"
        )
    box = [seen[name] for name in BOX_COLUMNS if name in seen]
    if box and len(box) != len(BOX_COLUMNS):
        raise AnnotationError(f"{path}: header: give all of {', '.join(BOX_COLUMNS)} or none")
    return seen[IMAGE_COLUMN], points, visible, box


def read_landmarks_csv(
    csv_file: str | Path,
    image_root: str | Path | None = None,
    one_based: bool = False,
    problems: list[AnnotationError] | None = None,
) -> list[FaceRecord]:
    """Every face of a plain landmark CSV (see the module's docstring), in file order."""
    path = Path(csv_file)
    image_root = Path(image_root) if image_root is not None else path.parent
    shift = 1.0 if one_based else 0.0
    numbered = read_csv_rows(path)
    image_column, points, visible_columns, box_columns = _columns(path, numbered[0][1])
    columns = len(numbered[0][1])
    coordinates = [c for xy in points for c in xy]
    records = []
    for row_no, row in numbered[1:]:
        where = f"row {row_no}"
        try:
            if len(row) != columns:
                raise AnnotationError(f"{path}: {where}: {len(row)} columns; the header has {columns}")
            name = row[image_column].strip()
            if not name:
                raise AnnotationError(f"{path}: {where}: the image column is empty")
            landmarks = finite_floats(path, where, [row[c] for c in coordinates]).reshape(-1, 2) - shift
            occlusion = None
            if visible_columns:
                flags = finite_floats(path, f"{where}: visible", [row[c] for c in visible_columns])
                if not np.isin(flags, (0.0, 1.0)).all():
                    raise AnnotationError(f"{path}: {where}: visible values must be 1 (visible) or 0 (not)")
                occlusion = np.where(flags == 1.0, 0, OCCLUDED_BY_OBJECT).astype(np.uint8)
            box = None
            if box_columns:
                box = finite_floats(path, f"{where}: box", [row[c] for c in box_columns]) - shift
                if box[2] <= box[0] or box[3] <= box[1]:
                    raise AnnotationError(
                        f"{path}: {where}: the box must have box_x_max > box_x_min and box_y_max > box_y_min"
                    )
        except AnnotationError as err:
            report(err, problems)
            continue
        records.append(
            FaceRecord(
                image_root / name,
                landmarks.astype(np.float32),
                occlusion,
                box=None if box is None else box.astype(np.float32),
                annotation=f"{path}: {where}",
            )
        )
    return records


def number(value: float) -> str:
    """The shortest text that reads back as the same float32 (the landmarks' precision)."""
    return np.format_float_positional(np.float32(value), trim="-")


def write_landmarks_csv(
    path: str | Path, records: Sequence[FaceRecord], image_names: Sequence[str]
) -> list[str]:
    """Write faces as a plain landmark CSV, atomically; `image_names[i]` is face i's `image` cell.
    The visible and box columns are written where every face has flags / a box. Returns the header."""
    count = len(records[0].landmarks) if records else 0
    with_visible = bool(records) and all(r.occlusion is not None for r in records)
    with_box = bool(records) and all(r.box is not None for r in records)
    header = [IMAGE_COLUMN] + [f"{axis}{i}" for i in range(count) for axis in ("x", "y")]
    header += [f"visible{i}" for i in range(count)] if with_visible else []
    header += list(BOX_COLUMNS) if with_box else []
    with atomic_open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        for record, name in zip(records, image_names, strict=True):
            row = [name] + [number(v) for v in np.asarray(record.landmarks).reshape(-1)]
            if with_visible:
                row += ["1" if flag == 0 else "0" for flag in record.occlusion]
            if with_box:
                row += [number(v) for v in record.box]
            writer.writerow(row)
    return header
