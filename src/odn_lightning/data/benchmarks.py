"""Readers for the published layouts of the WFLW, COFW, COFW-68 and HRNet-CSV benchmarks.

Every reader returns `BenchmarkRecord`s (a `FaceRecord` with optional benchmark extras) whose
landmarks are 0-based pixel coordinates (the centre of the top-left pixel is (0, 0)). Files made in
Matlab (COFW `.mat`, COFW-68 `.mat`) are 1-based and are shifted by -1 here; what each reader assumes
is stated in its docstring. Bad content raises `AnnotationError` naming the file and the reason;
a reader given a `problems` list collects the bad faces there instead (one line, row or file each)
and returns the good ones, so that one pass reports them all. A file unreadable as a whole raises.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import scipy.io

from .pts import AnnotationError, read_annotation_text
from .readers import OCCLUDED_BY_OBJECT, FaceRecord, report

# WFLW's six attribute flags, in file order (https://wywu.github.io/projects/LAB/WFLW.html).
WFLW_ATTRIBUTES = ("pose", "expression", "illumination", "make-up", "occlusion", "blur")
WFLW_NUM_POINTS = 98
COFW_NUM_POINTS = 29
COFW68_NUM_POINTS = 68


@dataclass(frozen=True)
class BenchmarkRecord(FaceRecord):
    # Benchmark attribute flags by name (WFLW's six subsets); None if the benchmark has none.
    attributes: dict[str, bool] | None = None
    # HRNet-Facial crop parameters: box side / 200, box centre (x, y), and AFLW's normalising box size.
    scale: float | None = None
    center: np.ndarray | None = None
    box_size: float | None = None


def _finite_floats(path: Path, where: str, tokens: Sequence[str]) -> np.ndarray:
    try:
        values = np.asarray([float(t) for t in tokens], dtype=np.float64)
    except ValueError:
        raise AnnotationError(f"{path}: {where}: non-numeric value") from None
    if not np.isfinite(values).all():
        raise AnnotationError(f"{path}: {where}: values must be finite")
    return values


# --------------------------------------------------------------------------------------------- WFLW


def read_wflw(
    annotation_file: str | Path, image_root: str | Path, problems: list[AnnotationError] | None = None
) -> list[BenchmarkRecord]:
    """Read a WFLW list file (Wu et al., "Look at Boundary", CVPR 2018).

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
    num_numbers = 2 * WFLW_NUM_POINTS + 4 + len(WFLW_ATTRIBUTES)
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
            numbers = _finite_floats(path, where, tokens[:num_numbers])
            flags = numbers[2 * WFLW_NUM_POINTS + 4 :]
            if not np.isin(flags, (0.0, 1.0)).all():
                raise AnnotationError(f"{path}: {where}: attribute flags must be 0 or 1")
        except AnnotationError as err:
            report(err, problems)
            continue
        landmarks = numbers[: 2 * WFLW_NUM_POINTS].reshape(WFLW_NUM_POINTS, 2).astype(np.float32)
        box = numbers[2 * WFLW_NUM_POINTS : 2 * WFLW_NUM_POINTS + 4].astype(np.float32)
        attributes = {name: bool(v) for name, v in zip(WFLW_ATTRIBUTES, flags, strict=True)}
        image_path = image_root / tokens[-1].strip()
        annotation = f"{path}: {where}"
        records.append(
            BenchmarkRecord(image_path, landmarks, box=box, annotation=annotation, attributes=attributes)
        )
    return records


# --------------------------------------------------------------------------------------------- COFW


def _load_mat(path: Path) -> dict:
    """A .mat file as {name: array}, in MATLAB's shapes, with AnnotationErrors naming the file.

    MATLAB v5/v7 files go through scipy.io.loadmat. v7.3 files (HDF5; COFW's `COFW_*_color.mat`
    are published so) go through h5py: HDF5 stores MATLAB arrays column-major, so every array is
    transposed back, cell arrays (object references) become object arrays of their transposed
    elements, and char arrays become str."""
    try:
        with path.open("rb") as f:
            header = f.read(128)
    except OSError as err:
        raise AnnotationError(f"{path}: cannot read ({err})") from err
    try:
        if header.startswith(b"MATLAB 7.3 MAT-file"):
            return _load_mat_v73(path)
        return scipy.io.loadmat(str(path))
    except AnnotationError:
        raise
    except Exception as err:  # scipy and h5py raise ValueError, OSError, KeyError... on corrupt files
        raise AnnotationError(f"{path}: not a readable .mat file ({err})") from err


def _load_mat_v73(path: Path) -> dict:
    import h5py

    def value(node):
        if isinstance(node, h5py.Group):
            raise AnnotationError(f"{path}: '{node.name}' is a MATLAB struct; a matrix or cell was expected")
        data = node[()]
        matlab_class = node.attrs.get("MATLAB_class", b"")
        matlab_class = matlab_class.decode() if isinstance(matlab_class, bytes) else str(matlab_class)
        if data.dtype == h5py.ref_dtype:
            cell = np.empty(data.T.shape, dtype=object)
            for index, ref in np.ndenumerate(data.T):
                cell[index] = value(node.file[ref])
            return cell
        if matlab_class == "char":
            return "".join(map(chr, np.asarray(data).T.reshape(-1)))
        return np.asarray(data).T

    with h5py.File(path, "r") as f:
        return {name: value(node) for name, node in f.items() if not name.startswith("#")}


def _mat_images(path: Path, key: str, cell: np.ndarray) -> list[np.ndarray]:
    """A MATLAB cell array of images (an object array, (N, 1) or (1, N)) as a list of uint8 arrays."""
    if cell.dtype != object:
        raise AnnotationError(f"{path}: '{key}' must be a cell array of images")
    images = []
    for i, image in enumerate(cell.reshape(-1)):
        image = np.asarray(image)
        if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3) or image.size == 0:
            raise AnnotationError(f"{path}: '{key}' image {i} has shape {image.shape}, not HxW or HxWx3")
        images.append(image.astype(np.uint8))
    return images


def read_cofw_mat(
    mat_file: str | Path, image_dir: str | Path | None = None, problems: list[AnnotationError] | None = None
) -> list[BenchmarkRecord]:
    """Read COFW's `COFW_train_color.mat` or `COFW_test_color.mat` (Burgos-Artizzu, Perona and Dollar,
    "Robust face landmark estimation under occlusion", ICCV 2013;
    http://www.vision.caltech.edu/xpburgos/ICCV13/).

    Keys: `IsTr`/`phisTr`/`bboxesTr` (train) or `IsT`/`phisT`/`bboxesT` (test). `Is*` is a cell array
    of images (uint8, grey HxW or RGB HxWx3); `phis*` is (N, 87): 29 x, 29 y, 29 occlusion flags
    (1 = occluded -> `OCCLUDED_BY_OBJECT`); `bboxes*` is (N, 4) `[x y w h]` (optional here).
    Coordinates are Matlab 1-based and are shifted by -1; the box becomes 0-based
    (x-1, y-1, x-1+w, y-1+h).

    The images live inside the .mat, so they are written once as PNG to `image_dir` (default: a folder
    `<mat stem>_images` next to the .mat) as `cofw_{split}_{i:04d}.png`; existing files are reused.
    Both files are published as MATLAB v7.3 (HDF5) and read with h5py; v7 files are read too.
    """
    path = Path(mat_file)
    mat = _load_mat(path)
    if "IsTr" in mat:
        split, image_key, phis_key, box_key = "train", "IsTr", "phisTr", "bboxesTr"
    elif "IsT" in mat:
        split, image_key, phis_key, box_key = "test", "IsT", "phisT", "bboxesT"
    else:
        raise AnnotationError(f"{path}: neither 'IsTr' (train) nor 'IsT' (test) is in the file")
    if phis_key not in mat:
        raise AnnotationError(f"{path}: '{phis_key}' (the landmarks) is missing")
    images = _mat_images(path, image_key, mat[image_key])
    phis = np.asarray(mat[phis_key], dtype=np.float64)
    if phis.shape != (len(images), 3 * COFW_NUM_POINTS):
        raise AnnotationError(
            f"{path}: '{phis_key}' has shape {phis.shape}, expected ({len(images)}, {3 * COFW_NUM_POINTS})"
        )
    boxes = None
    if box_key in mat:
        boxes = np.asarray(mat[box_key], dtype=np.float64)
        if boxes.shape != (len(images), 4):
            raise AnnotationError(f"{path}: '{box_key}' has shape {boxes.shape}, expected ({len(images)}, 4)")
    occluded = phis[:, 2 * COFW_NUM_POINTS :]

    image_dir = Path(image_dir) if image_dir is not None else path.parent / f"{path.stem}_images"
    image_dir.mkdir(parents=True, exist_ok=True)
    records = []
    for i, image in enumerate(images):
        where = f"{path}: face {i + 1}"
        if not np.isfinite(phis[i]).all():
            report(AnnotationError(f"{where}: '{phis_key}' has non-finite values"), problems)
            continue
        if not np.isin(occluded[i], (0.0, 1.0)).all():
            report(AnnotationError(f"{where}: occlusion flags in '{phis_key}' must be 0 or 1"), problems)
            continue
        image_path = image_dir / f"cofw_{split}_{i:04d}.png"
        if not image_path.exists():
            bgr = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
            if not cv2.imwrite(str(image_path), bgr):
                raise OSError(f"{image_path}: cannot write the COFW image")
        xs, ys = phis[i, :COFW_NUM_POINTS], phis[i, COFW_NUM_POINTS : 2 * COFW_NUM_POINTS]
        landmarks = (np.stack([xs, ys], axis=1) - 1.0).astype(np.float32)
        occlusion = np.where(occluded[i] > 0, OCCLUDED_BY_OBJECT, 0).astype(np.uint8)
        box = None
        if boxes is not None:
            x, y, w, h = boxes[i]
            box = np.asarray([x - 1.0, y - 1.0, x - 1.0 + w, y - 1.0 + h], dtype=np.float32)
        records.append(BenchmarkRecord(image_path, landmarks, occlusion, box=box, annotation=where))
    return records


def read_cofw68(
    points_dir: str | Path,
    images: Sequence[str | Path | FaceRecord] | None = None,
    mat_file: str | Path | None = None,
    image_dir: str | Path | None = None,
    problems: list[AnnotationError] | None = None,
) -> list[BenchmarkRecord]:
    """Read the 68-point re-annotation of the 507 COFW test faces (Ghiasi and Fowlkes, "Occlusion
    Coherence: Localizing Occluded Faces with a Hierarchical Deformable Part Model", CVPR 2014;
    https://github.com/golnazghiasi/cofw68-benchmark).

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
            points, occ = _cofw68_points(path)
        except AnnotationError as err:
            report(err, problems)
            continue
        occlusion = np.where(occ > 0, OCCLUDED_BY_OBJECT, 0).astype(np.uint8)
        image_path, box = (
            (image.image_path, image.box) if isinstance(image, FaceRecord) else (Path(image), None)
        )
        records.append(
            BenchmarkRecord(
                image_path, (points - 1.0).astype(np.float32), occlusion, box=box, annotation=str(path)
            )
        )
    return records


def _cofw68_points(path: Path) -> tuple[np.ndarray, np.ndarray]:
    mat = _load_mat(path)
    if "Points" not in mat or "Occ" not in mat:
        raise AnnotationError(f"{path}: needs both 'Points' and 'Occ'")
    points = np.asarray(mat["Points"], dtype=np.float64)
    occ = np.asarray(mat["Occ"], dtype=np.float64).reshape(-1)
    if points.shape != (COFW68_NUM_POINTS, 2):
        raise AnnotationError(f"{path}: 'Points' has shape {points.shape}, expected (68, 2)")
    if occ.shape != (COFW68_NUM_POINTS,) or not np.isin(occ, (0.0, 1.0)).all():
        raise AnnotationError(f"{path}: 'Occ' must be 68 flags of 0 or 1")
    if not np.isfinite(points).all():
        raise AnnotationError(f"{path}: 'Points' has non-finite values")
    return points, occ


# ---------------------------------------------------------------------------------------- HRNet CSV


def read_hrnet_csv(
    csv_file: str | Path,
    image_root: str | Path,
    num_points: int,
    one_based: bool = False,
    problems: list[AnnotationError] | None = None,
) -> list[BenchmarkRecord]:
    """Read an HRNet-Facial CSV (`face_landmarks_{300w,aflw,wflw}_{train,test,...}.csv`; Wang et al.,
    "Deep High-Resolution Representation Learning for Visual Recognition", TPAMI 2020;
    https://github.com/HRNet/HRNet-Facial-Landmark-Detection, `lib/datasets/{face300w,wflw,aflw}.py`).

    One header row, then per face (columns by position, as HRNet reads them with `iloc`):
    `image_name, scale, center_w, center_h, x0, y0, x1, y1, ...`, and for AFLW
    `image_name, scale, box_size, center_w, center_h, x0, y0, ...`. The two layouts are told apart
    by the column count (4 + 2N or 5 + 2N). `scale` is the box side / 200 (HRNet multiplies it by 1.25
    before cropping; the stored value is kept here, and the face box is the square of side
    `scale * 200` about the centre). Image paths are relative to `image_root`.

    Coordinates are used as stored by default, as HRNet does; pass `one_based=True` to shift points and
    centre by -1 for CSVs copied unchanged from 1-based sources (e.g. 300W `.pts`), which we could not
    verify for HRNet's released files.
    """
    path = Path(csv_file)
    image_root = Path(image_root)
    shift = 1.0 if one_based else 0.0
    try:
        with path.open(newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise AnnotationError(f"{path}: cannot read ({err})") from err
    rows = [r for r in rows if any(c.strip() for c in r)]
    if len(rows) < 2:
        raise AnnotationError(f"{path}: no faces (a header row and at least one face are expected)")
    records = []
    for row_no, row in enumerate(rows[1:], start=2):
        where = f"row {row_no}"
        has_box_size = len(row) == 5 + 2 * num_points
        try:
            if len(row) not in (4 + 2 * num_points, 5 + 2 * num_points):
                raise AnnotationError(
                    f"{path}: {where}: {len(row)} columns; {4 + 2 * num_points} or {5 + 2 * num_points} "
                    f"expected for {num_points} points"
                )
            numbers = _finite_floats(path, where, row[1:])
            if numbers[0] <= 0:
                raise AnnotationError(f"{path}: {where}: scale must be positive")
        except AnnotationError as err:
            report(err, problems)
            continue
        scale = float(numbers[0])
        box_size = float(numbers[1]) if has_box_size else None
        first = 2 if has_box_size else 1
        center = (numbers[first : first + 2] - shift).astype(np.float32)
        landmarks = (numbers[first + 2 :].reshape(num_points, 2) - shift).astype(np.float32)
        half = scale * 100.0
        box = np.concatenate([center - half, center + half]).astype(np.float32)
        records.append(
            BenchmarkRecord(
                image_root / row[0].strip(),
                landmarks,
                box=box,
                annotation=f"{path}: {where}",
                scale=scale,
                center=center,
                box_size=box_size,
            )
        )
    return records


# --------------------------------------------------------------------------------------------- AFLW

AFLW_SPLITS = ("all", "train", "test", "test_frontal")
AFLW_NUM_POINTS = 19


def read_aflw_info(
    mat_file: str | Path,
    image_root: str | Path,
    split: str = "all",
    num_train: int = 20000,
    one_based: bool = True,
    problems: list[AnnotationError] | None = None,
) -> list[BenchmarkRecord]:
    """Read `AFLWinfo_release.mat`, the 19-point AFLW protocol of Zhu et al. ("Unconstrained face
    alignment via cascaded compositional learning", CVPR 2016;
    http://mmlab.ie.cuhk.edu.hk/projects/compositional.html) over the AFLW images (Koestinger et al.,
    ICCV-W 2011), laid out as readers of it use it (e.g. microsoft/FaRL `blueprint` AFLW_19).

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
    mat = _load_mat(path)
    missing = [k for k in ("data", "bbox", "nameList", "ra", "mask_new") if k not in mat]
    if missing:
        raise AnnotationError(f"{path}: missing {missing}")
    data = np.asarray(mat["data"], dtype=np.float64)
    n = len(data)
    if data.shape != (n, 2 * AFLW_NUM_POINTS) or n == 0:
        raise AnnotationError(f"{path}: 'data' has shape {data.shape}, expected (N, {2 * AFLW_NUM_POINTS})")
    boxes = np.asarray(mat["bbox"], dtype=np.float64)
    mask = np.asarray(mat["mask_new"])
    names = np.asarray(mat["nameList"], dtype=object).reshape(-1)
    ra = np.asarray(mat["ra"]).reshape(-1)
    if boxes.shape != (n, 4):
        raise AnnotationError(f"{path}: 'bbox' has shape {boxes.shape}, expected ({n}, 4)")
    if mask.shape != (n, AFLW_NUM_POINTS) or not np.isin(mask, (0, 1)).all():
        raise AnnotationError(f"{path}: 'mask_new' must be ({n}, {AFLW_NUM_POINTS}) flags of 0 or 1")
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
        landmarks = np.stack([data[i, :AFLW_NUM_POINTS], data[i, AFLW_NUM_POINTS:]], axis=1) - shift
        occlusion = np.where(mask[i] == 1, 0, OCCLUDED_BY_OBJECT).astype(np.uint8)
        left, right, top, bottom = boxes[i]
        box = np.asarray([left, top, right, bottom], dtype=np.float32) - shift
        records.append(
            BenchmarkRecord(
                image_root / name[0], landmarks.astype(np.float32), occlusion, box=box, annotation=where
            )
        )
    return records


# Readers a data config can name in a split source ({reader: NAME, ...arguments}); the arguments in
# PATH_ARGUMENTS are relative to data.root.
BENCHMARK_READERS = {
    "wflw": read_wflw,
    "cofw_mat": read_cofw_mat,
    "cofw68": read_cofw68,
    "hrnet_csv": read_hrnet_csv,
    "aflw_info": read_aflw_info,
}
PATH_ARGUMENTS = ("annotation_file", "image_root", "mat_file", "image_dir", "csv_file", "points_dir")
