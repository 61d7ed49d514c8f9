"""AFLW's 19-point protocol file `AFLWinfo_release.mat` (Zhu et al., "Unconstrained face alignment via
cascaded compositional learning", CVPR 2016; http://mmlab.ie.cuhk.edu.hk/projects/compositional.html)
over the AFLW images (Koestinger et al., ICCV-W 2011)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...schemes import AFLW19
from ..records import OCCLUDED_BY_OBJECT, AnnotationError, FaceRecord, report
from .matlab import load_mat

AFLW_SPLITS = ("all", "train", "test", "test_frontal")
# Which test faces are "frontal": all 19 points visible (FaRL's AFLW_19 blueprint), or visible and
# inside the face box (SAN). `make data-check` prints both counts next to the published 1165.
FRONTAL_RULES = ("all_visible", "visible_in_box")


def is_frontal(visible: np.ndarray, landmarks: np.ndarray, box: np.ndarray, rule: str) -> bool:
    """Whether a test face is frontal under `rule` (`FRONTAL_RULES`); box is x0 y0 x1 y1."""
    if rule not in FRONTAL_RULES:
        raise ValueError(f"unknown AFLW frontal rule {rule!r}; choose one of {FRONTAL_RULES}")
    if not visible.all():
        return False
    if rule == "all_visible":
        return True
    inside = (landmarks >= box[:2]) & (landmarks <= box[2:])
    return bool(inside.all())


def read_aflw_info(
    mat_file: str | Path,
    image_root: str | Path,
    split: str = "all",
    num_train: int = 20000,
    one_based: bool = False,
    frontal_rule: str = "all_visible",
    problems: list[AnnotationError] | None = None,
) -> list[FaceRecord]:
    """Read `AFLWinfo_release.mat`, laid out as readers of it use it (e.g. microsoft/FaRL `blueprint`
    AFLW_19).

    Keys: `data` (N, 38) = 19 x then 19 y; `bbox` (N, 4) = x_left, x_right, y_top, y_bottom;
    `nameList` a cell array of image paths relative to `image_root` (AFLW's `flickr/` folder);
    `ra` a 1-based permutation of 1..N whose first `num_train` entries (20000) are the train split and
    the rest the test split; `mask_new` (N, 19), 1 = visible. `split` is one of `AFLW_SPLITS`:
    "all" (in `ra` order), "train", "test" ("full"), "test_frontal" (the test faces `frontal_rule`
    calls frontal, `FRONTAL_RULES`; the default, all 19 visible, is FaRL's).
    Invisible points get `OCCLUDED_BY_OBJECT` (AFLW does not record why a point is hidden).

    Coordinates and boxes are used as stored, as SAN, PIPNet, FaRL and HRNet's AFLW CSVs all use them,
    so `data=aflw` and `data=aflw_hrnet` agree to the pixel and a flipped sample mirrors about the
    same axis as theirs (`one_based=True` shifts by -1, for files known to be 1-based). `box_size` is
    left unset (the file has no such column): the AFLW normaliser is computed from `box`.
    """
    path = Path(mat_file)
    image_root = Path(image_root)
    if split not in AFLW_SPLITS:
        raise ValueError(f"unknown AFLW split '{split}'; choose one of {AFLW_SPLITS}")
    if frontal_rule not in FRONTAL_RULES:
        raise ValueError(f"unknown AFLW frontal_rule '{frontal_rule}'; choose one of {FRONTAL_RULES}")
    mat = load_mat(path)
    missing = [k for k in ("data", "bbox", "nameList", "ra", "mask_new") if k not in mat]
    if missing:
        raise AnnotationError(f"{path}: missing {missing}")
    count = AFLW19.num_landmarks
    data = np.asarray(mat["data"], dtype=np.float64)
    n = len(data)
    if data.shape != (n, 2 * count) or n == 0:
        raise AnnotationError(f"{path}: 'data' has shape {data.shape}, expected (N, {2 * count})")
    boxes = np.asarray(mat["bbox"], dtype=np.float64)
    mask = np.asarray(mat["mask_new"])
    names = np.asarray(mat["nameList"], dtype=object).reshape(-1)
    ra = np.asarray(mat["ra"]).reshape(-1)
    if boxes.shape != (n, 4):
        raise AnnotationError(f"{path}: 'bbox' has shape {boxes.shape}, expected ({n}, 4)")
    if mask.shape != (n, count) or not np.isin(mask, (0, 1)).all():
        raise AnnotationError(f"{path}: 'mask_new' must be ({n}, {count}) flags of 0 or 1")
    if len(names) != n:
        raise AnnotationError(f"{path}: 'nameList' has {len(names)} names for {n} faces")
    if sorted(ra.tolist()) != list(range(1, n + 1)):
        raise AnnotationError(f"{path}: 'ra' is not a 1-based permutation of 1..{n}")

    order = ra.astype(np.int64) - 1
    if split == "train":
        order = order[:num_train]
    elif split in ("test", "test_frontal"):
        order = order[num_train:]
    shift = 1.0 if one_based else 0.0
    if split == "test_frontal":
        points = np.stack([data[:, :count], data[:, count:]], axis=2) - shift
        boxes_xyxy = boxes[:, [0, 2, 1, 3]] - shift
        order = np.asarray(
            [i for i in order if is_frontal(mask[i] == 1, points[i], boxes_xyxy[i], frontal_rule)], np.int64
        )

    records = []
    for i in order:
        where = f"{path}: face {i + 1}"
        name = np.asarray(names[i]).reshape(-1)
        if name.size != 1 or not isinstance(name[0], str):
            report(AnnotationError(f"{where}: 'nameList' entry is not a string"), problems)
            continue
        if not (np.isfinite(data[i]).all() and np.isfinite(boxes[i]).all()):
            report(AnnotationError(f"{where}: 'data' or 'bbox' has non-finite values"), problems)
            continue
        landmarks = np.stack([data[i, :count], data[i, count:]], axis=1) - shift
        occlusion = np.where(mask[i] == 1, 0, OCCLUDED_BY_OBJECT).astype(np.uint8)
        left, right, top, bottom = boxes[i]
        box = np.asarray([left, top, right, bottom], dtype=np.float32) - shift
        records.append(
            FaceRecord(
                image_root / name[0], landmarks.astype(np.float32), occlusion, box=box, annotation=where
            )
        )
    return records
