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


def read_aflw_info(
    mat_file: str | Path,
    image_root: str | Path,
    split: str = "all",
    num_train: int = 20000,
    one_based: bool = True,
    problems: list[AnnotationError] | None = None,
) -> list[FaceRecord]:
    """Read `AFLWinfo_release.mat`, laid out as readers of it use it (e.g. microsoft/FaRL `blueprint`
    AFLW_19).

    Keys: `data` (N, 38) = 19 x then 19 y; `bbox` (N, 4) = x_left, x_right, y_top, y_bottom;
    `nameList` a cell array of image paths relative to `image_root` (AFLW's `flickr/` folder);
    `ra` a 1-based permutation of 1..N whose first `num_train` entries (20000) are the train split and
    the rest the test split; `mask_new` (N, 19), 1 = visible. `split` is one of `AFLW_SPLITS`:
    "all" (in `ra` order), "train", "test" ("full"), "test_frontal" (test faces with all 19 visible).
    Invisible points get `OCCLUDED_BY_OBJECT` (AFLW does not record why a point is hidden).

    Assumption: the file was made in Matlab, so coordinates are taken as 1-based and shifted by -1
    (`one_based=False` keeps them as stored, as FaRL and HRNet's CSVs do). `box_size` is left unset:
    the AFLW normaliser is a choice of the metric, computed from `box`.
    """
    path = Path(mat_file)
    image_root = Path(image_root)
    if split not in AFLW_SPLITS:
        raise ValueError(f"unknown AFLW split '{split}'; choose one of {AFLW_SPLITS}")
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
    if split == "test_frontal":
        order = order[(mask[order] == 1).all(axis=1)]

    shift = 1.0 if one_based else 0.0
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
