"""COFW-68: the 68-point re-annotation of the 507 COFW test faces (Ghiasi and Fowlkes, "Occlusion
Coherence: Localizing Occluded Faces with a Hierarchical Deformable Part Model", CVPR 2014;
https://github.com/golnazghiasi/cofw68-benchmark).

The benchmark pairs its annotations with COFW's images by position only: `ReadCofw68Data.m` loads
`IsT` from COFW's `COFW_test.mat` and gives face i the image `IsT{i}` and `{i}_points.mat`. Nothing in
either file names the other, so `read_cofw68` checks each pair against COFW's own 29-point landmarks of
the same face (`corner_offset`), and `pairing_evidence` states how well they agree for `make data-check`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ...schemes import COFW29, IBUG68
from ..records import OCCLUDED_BY_OBJECT, AnnotationError, FaceRecord, report
from .cofw import read_cofw_mat
from .matlab import load_mat

# How far (x the 29-point inter-ocular distance) COFW-68's outer eye corners may lie from COFW's own:
# two annotators' marks of one corner differ by a few hundredths of it (more under sunglasses, where
# both guess), while another face's image puts the corners elsewhere, about an inter-ocular distance or
# more away. A pairing error shifts every face, so a tolerance this loose still catches it at once.
PAIRING_TOLERANCE = 0.25

PAIRING_HINT = (
    "the annotations are paired by position with COFW's test images: give COFW_test_color.mat or "
    "COFW_test.mat as published (507 faces, in their order), and the benchmark's test_annotations"
)


def corner_offset(points68: np.ndarray, points29: np.ndarray) -> tuple[float, float]:
    """How far one face's COFW-68 outer eye corners (iBUG 36, 45) lie from its COFW 29-point ones
    (8, 9), both in the same pixels: (offset px, the 29-point inter-ocular distance px).

    The corners match as an unordered pair (the better of direct and swapped, so either left/right
    convention passes), and a pairing counts by its worse corner."""
    a68, b68 = (np.asarray(points68, dtype=np.float64)[i] for i in IBUG68.outer_eye_corners)
    a29, b29 = (np.asarray(points29, dtype=np.float64)[i] for i in COFW29.outer_eye_corners)
    direct = max(np.linalg.norm(a68 - a29), np.linalg.norm(b68 - b29))
    swapped = max(np.linalg.norm(a68 - b29), np.linalg.norm(b68 - a29))
    return float(min(direct, swapped)), float(np.linalg.norm(a29 - b29))


def read_cofw68(
    points_dir: str | Path,
    images: Sequence[str | Path | FaceRecord] | None = None,
    mat_file: str | Path | None = None,
    image_dir: str | Path | None = None,
    problems: list[AnnotationError] | None = None,
) -> list[FaceRecord]:
    """Read COFW-68's annotations, paired with the COFW test images.

    `points_dir` holds `{i}_points.mat` for i = 1..N, each with `Points` (68, 2) and `Occ` (68,)
    (1 = occluded -> `OCCLUDED_BY_OBJECT`). Face i pairs with the i-th COFW test image, in order, as the
    benchmark's `ReadCofw68Data.m` pairs it with `IsT{i}`: `images` is those image paths (or records),
    or `mat_file` is COFW's `COFW_test_color.mat` (RGB) or `COFW_test.mat` (grey, the benchmark's own;
    v7 or v7.3), whose images `read_cofw_mat` writes to `image_dir`. The face box is the one of the
    29-point file. Assumption: `Points` are Matlab 1-based pixels like COFW's own, so they are shifted
    by -1.

    Where the images come as records with COFW's 29 points (`mat_file`, or records of it), each face's
    outer eye corners must lie within `PAIRING_TOLERANCE` x the 29-point inter-ocular distance of the
    29-point ones (`corner_offset`); a face beyond it raises AnnotationError even when `problems`
    collects per-face errors: the files do not belong together, so no face of them can be trusted.
    """
    if (images is None) == (mat_file is None):
        raise ValueError(
            "read_cofw68 needs exactly one of `images` and `mat_file` (COFW_test_color.mat or COFW_test.mat)"
        )
    if mat_file is not None:
        # Faces are paired by position, so a bad 29-point face must stop the run, not be skipped.
        images = read_cofw_mat(mat_file, image_dir)
    numbered = _points_files(points_dir)
    if len(numbered) != len(images):
        raise AnnotationError(
            f"{points_dir}: {len(numbered)} annotation files for {len(images)} COFW test images"
        )
    records = []
    for i, image in enumerate(images, start=1):
        path = numbered[i - 1]
        try:
            points, occ = _read_points(path)
        except AnnotationError as err:
            report(err, problems)
            continue
        if _has_cofw29_points(image):
            _check_pairing(path, i, points, image)
        occlusion = np.where(occ > 0, OCCLUDED_BY_OBJECT, 0).astype(np.uint8)
        image_path, box = (
            (image.image_path, image.box) if isinstance(image, FaceRecord) else (Path(image), None)
        )
        records.append(
            FaceRecord(image_path, points.astype(np.float32), occlusion, box=box, annotation=str(path))
        )
    return records


def read_cofw68_annotations(
    points_dir: str | Path, expected_faces: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """COFW-68's ground truth alone, without images (what the benchmark's evaluator needs of it):
    points (N, 68, 2) as 0-based pixels and occluded (N, 68) bool, face i at row i - 1. `points_dir` is
    `COFW68_Data/test_annotations` of a benchmark checkout; `expected_faces` (507 for the benchmark)
    refuses a folder that holds fewer, naming the first missing file."""
    numbered = _points_files(points_dir)
    if expected_faces is not None and len(numbered) != expected_faces:
        missing = Path(points_dir) / f"{len(numbered) + 1}_points.mat"
        raise AnnotationError(
            f"{points_dir}: {len(numbered)} annotation files, the benchmark has {expected_faces}: "
            f"{missing.name} is missing; check out the whole benchmark (COFW68_Data/test_annotations)"
        )
    read = [_read_points(path) for path in numbered]
    points = np.stack([p for p, _ in read]) if read else np.zeros((0, IBUG68.num_landmarks, 2))
    occluded = np.stack([o > 0 for _, o in read]) if read else np.zeros((0, IBUG68.num_landmarks), bool)
    return points, occluded


def pairing_evidence(
    points_dir: str | Path,
    mat_file: str | Path,
    image_dir: str | Path | None = None,
    tolerance: float = PAIRING_TOLERANCE,
) -> list[str]:
    """How well COFW-68's annotations pair with a COFW test file, for `make data-check`: one line of
    the faces compared and their outer-eye-corner offsets (largest in px and x the 29-point
    inter-ocular distance, median in px), then, where any face is beyond `tolerance`, a line naming
    those faces (`read_cofw68` refuses such a pair). Arguments as in a `{reader: cofw68}` data source;
    the images are written to `image_dir` as `read_cofw_mat` does. Reading errors raise."""
    records29 = read_cofw_mat(mat_file, image_dir)
    numbered = _points_files(points_dir)
    source = f"{Path(points_dir).name} with {Path(mat_file).name}"
    if len(numbered) != len(records29):
        return [
            f"COFW-68 pairing: {len(numbered)} annotation files for {len(records29)} faces of "
            f"{Path(mat_file).name}: not the benchmark's pair ({PAIRING_HINT})"
        ]
    offsets, fractions = [], []
    for path, record in zip(numbered, records29, strict=True):
        points, _ = _read_points(path)
        offset, inter_ocular = corner_offset(points, record.landmarks)
        offsets.append(offset)
        fractions.append(_fraction(offset, inter_ocular))
    offsets, fractions = np.asarray(offsets), np.asarray(fractions)
    if not len(offsets):
        return [f"COFW-68 pairing: {source}: no faces to compare"]
    lines = [
        f"COFW-68 pairing: {len(offsets)} faces ({source}), outer eye corners within "
        f"{offsets.max():.1f} px ({fractions.max():.2f} x inter-ocular) of COFW's 29-point ones at most, "
        f"median {np.median(offsets):.1f} px"
    ]
    beyond = np.flatnonzero(fractions > tolerance)
    if len(beyond):
        named = ", ".join(f"{i + 1} ({offsets[i]:.1f} px, {fractions[i]:.2f} x)" for i in beyond[:5])
        more = f" and {len(beyond) - 5} more" if len(beyond) > 5 else ""
        faces = f"{len(beyond)} face{'s' * (len(beyond) != 1)}"
        lines.append(
            f"COFW-68 pairing: {faces} beyond {tolerance} x inter-ocular, so read_cofw68 refuses the pair: "
            f"face {named}{more}; {PAIRING_HINT}"
        )
    return lines


def _points_files(points_dir: str | Path) -> list[Path]:
    """`{i}_points.mat` for i = 1..N, in that (numeric) order."""
    points_dir = Path(points_dir)
    if not points_dir.is_dir():
        raise FileNotFoundError(f"{points_dir}: folder not found")
    numbered = {}
    for p in points_dir.glob("*_points.mat"):
        stem = p.name[: -len("_points.mat")]
        if stem.isdigit():
            numbered[int(stem)] = p
    if sorted(numbered) != list(range(1, len(numbered) + 1)):
        hole = min(set(range(1, len(numbered) + 2)) - set(numbered))
        raise AnnotationError(
            f"{points_dir}: the `{{i}}_points.mat` files are not numbered 1..{len(numbered)}: "
            f"{hole}_points.mat is missing"
        )
    return [numbered[i] for i in range(1, len(numbered) + 1)]


def _fraction(offset: float, inter_ocular: float) -> float:
    """The offset x the inter-ocular distance; infinite where the 29-point eye corners coincide (no
    scale to measure against, so nothing can pass)."""
    return offset / inter_ocular if inter_ocular > 0 else float("inf")


def _has_cofw29_points(image: str | Path | FaceRecord) -> bool:
    return isinstance(image, FaceRecord) and np.shape(image.landmarks) == (COFW29.num_landmarks, 2)


def _check_pairing(path: Path, index: int, points68: np.ndarray, record29: FaceRecord) -> None:
    """Refuse face `index` (1-based) when its 68 points (0-based) are not of `record29`'s face."""
    offset, inter_ocular = corner_offset(points68, record29.landmarks)
    fraction = _fraction(offset, inter_ocular)
    if not fraction <= PAIRING_TOLERANCE:  # `not <=`: a NaN fails too
        raise AnnotationError(
            f"{path}: face {index}'s outer eye corners lie {offset:.1f} px ({fraction:.2f} x inter-ocular, "
            f"over {PAIRING_TOLERANCE}) from those of COFW test face {index} ({record29.source}); "
            f"{PAIRING_HINT}"
        )


def _read_points(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A `{i}_points.mat`: its 68 points as 0-based pixels (`Points` - 1) and its `Occ` flags."""
    mat = load_mat(path)
    if "Points" not in mat or "Occ" not in mat:
        raise AnnotationError(f"{path}: needs both 'Points' and 'Occ'")
    count = IBUG68.num_landmarks
    points = np.asarray(mat["Points"], dtype=np.float64)
    occ = np.asarray(mat["Occ"], dtype=np.float64).reshape(-1)
    if points.shape != (count, 2):
        raise AnnotationError(f"{path}: 'Points' has shape {points.shape}, expected ({count}, 2)")
    if occ.shape != (count,) or not np.isin(occ, (0.0, 1.0)).all():
        raise AnnotationError(f"{path}: 'Occ' must be {count} flags of 0 or 1")
    if not np.isfinite(points).all():
        raise AnnotationError(f"{path}: 'Points' has non-finite values")
    return points - 1.0, occ  # Matlab 1-based, as COFW's own
