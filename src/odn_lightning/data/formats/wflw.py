"""WFLW list files (Wu et al., "Look at Boundary", CVPR 2018; https://wywu.github.io/projects/LAB/WFLW.html)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from ...schemes import WFLW98
from ..records import AnnotationError, FaceRecord, report
from .text import finite_floats, read_annotation_text

# WFLW's six attribute flags, in file order (https://wywu.github.io/projects/LAB/WFLW.html).
WFLW_ATTRIBUTES = ("pose", "expression", "illumination", "make-up", "occlusion", "blur")


# The suite's WFLW split names and the attribute flag each subset list stands for.
WFLW_SUBSET_ATTRIBUTES = {
    "pose": "pose",  # list_98pt_test_largepose.txt
    "expression": "expression",
    "illumination": "illumination",
    "makeup": "make-up",
    "occlusion": "occlusion",
    "blur": "blur",
}

_WFLW_LAYOUTS = (
    "206 numbers (98 points, face box, 6 attribute flags) or 196 numbers (98 points only) then the image path"
)


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def read_wflw(
    annotation_file: str | Path,
    image_root: str | Path,
    problems: list[AnnotationError] | None = None,
    full_list: str | Path | None = None,
) -> list[FaceRecord]:
    """Read a WFLW list file, in either of the two layouts the dataset ships.

    - `WFLW_annotations/list_98pt_rect_attr_train_test/list_98pt_rect_attr_{train,test}.txt`: per line
      196 landmark numbers (x0 y0 ... x97 y97), 4 box numbers (x_min y_min x_max y_max), 6 attribute
      flags (see `WFLW_ATTRIBUTES`), then the image path, per the dataset page
      https://wywu.github.io/projects/LAB/WFLW.html.
    - `WFLW_annotations/list_98pt_test/list_98pt_test{,_largepose,_expression,_illumination,_makeup,
      _occlusion,_blur}.txt`: per line the 196 landmark numbers, then the image path; no box, no flags.
      LAB's own evaluator reads these with `--label_num=196` (2 x 98 numbers before the name;
      https://github.com/wywu/LAB/blob/master/scripts/test/run_test_on_wflw.sh). Their faces get
      box=None and attributes=None, unless `full_list` names the 206-number test list: each face then
      takes the box and flags of the same face there (matched as `subset_agreement` matches), so a
      subset face is cropped and box-normalised as it is in the full test set.

    Image paths are relative to `WFLW_images/` (`image_root`) and may contain spaces. A line's layout
    is told by how many leading fields are numbers; every line of a file must share the first face's
    layout.

    Assumption (not stated by the dataset page): coordinates are 0-based pixels, used unchanged, as
    HRNet-Facial, PFLD and mmpose all do; WFLW was not made in Matlab.
    """
    path = Path(annotation_file)
    image_root = Path(image_root)
    num_coordinates = 2 * WFLW98.num_landmarks
    num_with_box_and_flags = num_coordinates + 4 + len(WFLW_ATTRIBUTES)
    lines = [(no, line) for no, line in enumerate(read_annotation_text(path).splitlines(), 1) if line.strip()]
    if not lines:
        raise AnnotationError(f"{path}: no faces listed")
    records = []
    file_layout: tuple[int, int] | None = None  # (number count, line number) of the file's first face
    for line_no, line in lines:
        where = f"line {line_no}"
        try:
            fields = line.split()
            num_numbers = next((i for i, t in enumerate(fields) if not _is_number(t)), len(fields))
            has_path = num_numbers < len(fields)
            if num_numbers not in (num_coordinates, num_with_box_and_flags) and any(
                _is_number(t) for t in fields[num_numbers + 1 :]
            ):
                # Numbers after a word: a stray word among the numbers, not a short line; name it.
                raise AnnotationError(
                    f"{path}: {where}: non-numeric value {fields[num_numbers]!r} in field {num_numbers + 1}; "
                    f"expected {_WFLW_LAYOUTS}"
                )
            if num_numbers not in (num_coordinates, num_with_box_and_flags) or not has_path:
                raise AnnotationError(
                    f"{path}: {where}: {num_numbers} number fields"
                    f"{'' if has_path else ' and no image path'}; expected {_WFLW_LAYOUTS}"
                )
            if file_layout is not None and num_numbers != file_layout[0]:
                raise AnnotationError(
                    f"{path}: {where}: {num_numbers} numbers before the image path, but line "
                    f"{file_layout[1]} has {file_layout[0]}; a WFLW list file has one layout, fix or drop this line"
                )
            # maxsplit keeps an image name with spaces in one piece.
            tokens = line.split(maxsplit=num_numbers)
            numbers = finite_floats(path, where, tokens[:num_numbers])
            flags = numbers[num_coordinates + 4 :]
            if not np.isin(flags, (0.0, 1.0)).all():
                raise AnnotationError(f"{path}: {where}: attribute flags must be 0 or 1")
        except AnnotationError as err:
            report(err, problems)
            continue
        if file_layout is None:
            file_layout = (num_numbers, line_no)
        landmarks = numbers[:num_coordinates].reshape(WFLW98.num_landmarks, 2).astype(np.float32)
        box = attributes = None
        if num_numbers == num_with_box_and_flags:
            box = numbers[num_coordinates : num_coordinates + 4].astype(np.float32)
            attributes = {name: bool(v) for name, v in zip(WFLW_ATTRIBUTES, flags, strict=True)}
        image_path = image_root / tokens[-1].strip()
        annotation = f"{path}: {where}"
        records.append(
            FaceRecord(image_path, landmarks, box=box, annotation=annotation, attributes=attributes)
        )
    if full_list is not None:
        same_face = face_matcher(read_wflw(full_list, image_root))
        for i, record in enumerate(records):
            match = same_face(record) if record.box is None else None
            if match is not None:
                records[i] = replace(record, box=match.box, attributes=match.attributes)
    return records


# Landmarks of one face listed in two WFLW files agree to this many pixels (the files print 6 decimals).
SAME_FACE_TOLERANCE_PX = 1e-3


def face_matcher(full: list[FaceRecord]) -> Callable[[FaceRecord], FaceRecord | None]:
    """A function giving the face of `full` that is `record` (same image, landmarks within
    `SAME_FACE_TOLERANCE_PX`; the first in file order), or None: one WFLW image can hold several faces."""
    faces_by_image: dict[str, list[FaceRecord]] = {}
    for record in full:
        faces_by_image.setdefault(str(record.image_path), []).append(record)

    def same_face(record: FaceRecord) -> FaceRecord | None:
        for candidate in faces_by_image.get(str(record.image_path), []):
            if np.abs(candidate.landmarks - record.landmarks).max() <= SAME_FACE_TOLERANCE_PX:
                return candidate
        return None

    return same_face


def subset_agreement(full: list[FaceRecord], subsets: dict[str, list[FaceRecord]]) -> list[str]:
    """Evidence lines for `make data-check`: do the subset lists name exactly the faces that the full
    test list flags with the subset's attribute?

    `full`: the faces of `list_98pt_rect_attr_test.txt` (206-number layout, with flags). `subsets`:
    split name (a key of `WFLW_SUBSET_ATTRIBUTES`) -> the faces of its `list_98pt_test_*.txt`. A face
    is matched by image path and landmarks (within `SAME_FACE_TOLERANCE_PX`), since one WFLW image can
    hold several faces. One line per subset, in `WFLW_SUBSET_ATTRIBUTES` order; a single line instead
    when the full list carries no flags to check against.
    """
    prefix = "WFLW subsets vs the full test list's flags: "
    unknown = sorted(set(subsets) - set(WFLW_SUBSET_ATTRIBUTES))
    if unknown:
        raise ValueError(f"unknown WFLW subset(s) {unknown}; expected some of {list(WFLW_SUBSET_ATTRIBUTES)}")
    if not full:
        return [prefix + "cannot cross-check: the full test list is empty"]
    unflagged = [record for record in full if record.attributes is None]
    if len(unflagged) == len(full):
        return [prefix + "cannot cross-check: the full test list carries no attribute flags"]
    if unflagged:
        return [
            prefix + f"cannot cross-check: {len(unflagged)} of {len(full)} faces in the full test list "
            f"carry no attribute flags (first: {_face(unflagged[0])})"
        ]
    position = {id(record): i for i, record in enumerate(full)}
    same_face = face_matcher(full)

    def match(record: FaceRecord) -> int | None:
        found = same_face(record)
        return None if found is None else position[id(found)]

    lines = []
    for split, attribute in WFLW_SUBSET_ATTRIBUTES.items():
        if split not in subsets:
            continue
        listed = subsets[split]
        flagged = [i for i, record in enumerate(full) if record.attributes[attribute]]
        flagged_set = set(flagged)
        matches = [match(record) for record in listed]
        not_in_full, not_flagged, repeated, seen = [], [], [], set()
        for record, i in zip(listed, matches, strict=True):
            if i is None:
                not_in_full.append(record)
            elif i in seen:
                repeated.append(record)
            elif i not in flagged_set:
                not_flagged.append(record)
            seen.add(i)
        flagged_not_listed = [full[i] for i in flagged if i not in seen]
        counts = f"{split}: {len(listed)} listed, {len(flagged)} flagged '{attribute}'"
        problems = [
            f"{len(faces)} {what.format('face' if len(faces) == 1 else 'faces')} (first: {_face(faces[0])})"
            for faces, what in (
                (not_in_full, "listed {} not in the full test list"),
                (not_flagged, "listed {} not flagged"),
                (repeated, "{} listed again"),
                (flagged_not_listed, "flagged {} not listed"),
            )
            if faces
        ]
        lines.append(prefix + counts + ", " + (", ".join(problems) if problems else "all agree"))
    return lines


def _face(record: FaceRecord) -> str:
    """A face for messages: its image, and the list line it came from when known."""
    return str(record.image_path) + (f" at {record.annotation}" if record.annotation else "")
