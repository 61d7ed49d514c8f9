"""COFW-68: the 68-point re-annotation of the 507 COFW test faces (Ghiasi and Fowlkes, "Occlusion
Coherence: Localizing Occluded Faces with a Hierarchical Deformable Part Model", CVPR 2014;
https://github.com/golnazghiasi/cofw68-benchmark)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ...schemes import IBUG68
from ..records import OCCLUDED_BY_OBJECT, AnnotationError, FaceRecord, report
from .cofw import read_cofw_mat
from .matlab import load_mat


def read_cofw68(
    points_dir: str | Path,
    images: Sequence[str | Path | FaceRecord] | None = None,
    mat_file: str | Path | None = None,
    image_dir: str | Path | None = None,
    problems: list[AnnotationError] | None = None,
) -> list[FaceRecord]:
    """Read COFW-68's annotations, paired with the COFW test images.

    `points_dir` holds `{i}_points.mat` for i = 1..N, each with `Points` (68, 2) and `Occ` (68,)
    (1 = occluded -> `OCCLUDED_BY_OBJECT`). Face i pairs with the i-th COFW test image, in order:
    `images` is those image paths (or records), or `mat_file` is COFW's `COFW_test_color.mat`, whose
    images `read_cofw_mat` writes to `image_dir`. The face box is the one of the 29-point file.
    Assumption: `Points` are Matlab 1-based pixels like COFW's own, so they are shifted by -1.
    """
    if (images is None) == (mat_file is None):
        raise ValueError("read_cofw68 needs exactly one of `images` and `mat_file` (COFW_test_color.mat)")
    if mat_file is not None:
        # Faces are paired by position, so a bad 29-point face must stop the run, not be skipped.
        images = read_cofw_mat(mat_file, image_dir)
    points_dir = Path(points_dir)
    if not points_dir.is_dir():
        raise FileNotFoundError(f"{points_dir}: folder not found")
    numbered = {}
    for p in points_dir.glob("*_points.mat"):
        stem = p.name[: -len("_points.mat")]
        if stem.isdigit():
            numbered[int(stem)] = p
    if sorted(numbered) != list(range(1, len(numbered) + 1)):
        raise AnnotationError(
            f"{points_dir}: the `{{i}}_points.mat` files are not numbered 1..{len(numbered)}"
        )
    if len(numbered) != len(images):
        raise AnnotationError(
            f"{points_dir}: {len(numbered)} annotation files for {len(images)} COFW test images"
        )
    records = []
    for i, image in enumerate(images, start=1):
        path = numbered[i]
        try:
            points, occ = _read_points(path)
        except AnnotationError as err:
            report(err, problems)
            continue
        occlusion = np.where(occ > 0, OCCLUDED_BY_OBJECT, 0).astype(np.uint8)
        image_path, box = (
            (image.image_path, image.box) if isinstance(image, FaceRecord) else (Path(image), None)
        )
        records.append(
            FaceRecord(
                image_path, (points - 1.0).astype(np.float32), occlusion, box=box, annotation=str(path)
            )
        )
    return records


def _read_points(path: Path) -> tuple[np.ndarray, np.ndarray]:
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
    return points, occ
