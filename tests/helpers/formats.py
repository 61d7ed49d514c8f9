"""Writers of the benchmarks' published file formats, for tests that build small trees."""

from __future__ import annotations

import shutil
import zlib
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import scipy.io

from odn_lightning.data.formats.landmarks_csv import write_landmarks_csv
from odn_lightning.data.formats.w300 import read_pts_folder, write_pts
from odn_lightning.data.records import FaceRecord

IMAGE_SIDE = 96


def cell(values):
    """A MATLAB N x 1 cell array (what scipy.io.savemat writes for an object array)."""
    array = np.empty((len(values), 1), dtype=object)
    for i, value in enumerate(values):
        array[i, 0] = value
    return array


def wflw_line(points, box, flags, name):
    """A WFLW list line: 206 numbers + name, or with box=flags=None the subset lists' 196 numbers + name."""
    numbers = [f"{v:.6f}" for v in points.reshape(-1)]
    if box is not None or flags is not None:
        numbers += [str(int(v)) for v in box] + [str(f) for f in flags]
    return " ".join(numbers + [name])


def savemat_v73(path, variables):
    """Write variables as MATLAB 7.3 does: HDF5 behind a 512-byte MATLAB header, arrays stored
    column-major (transposed), cell arrays as object references into '#refs#'."""
    import h5py

    with h5py.File(path, "w", userblock_size=512) as f:
        refs = f.create_group("#refs#")

        def store(group, name, value):
            value = np.asarray(value)
            if value.dtype == object:
                cell = np.empty(value.T.shape, dtype=h5py.ref_dtype)
                for index, element in np.ndenumerate(value.T):
                    cell[index] = store(refs, f"r{len(refs)}", element).ref
                dataset = group.create_dataset(name, data=cell)
                dataset.attrs["MATLAB_class"] = np.bytes_("cell")
                return dataset
            dataset = group.create_dataset(name, data=value.T)
            dataset.attrs["MATLAB_class"] = np.bytes_("uint8" if value.dtype == np.uint8 else "double")
            return dataset

        for name, value in variables.items():
            store(f, name, value)
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: x HDF5 schema 1.00 .".ljust(116)
    with open(path, "r+b") as f:
        f.write(header + b"\x00" * 8 + b"\x00\x02IM")


def hrnet_csv(path, rows, num_landmarks, box_size):
    header = ["image_name", "scale"] + (["box_size"] if box_size else []) + ["center_w", "center_h"]
    header += [f"original_{i}_{a}" for i in range(num_landmarks) for a in "xy"]
    lines = [",".join(header)] + [",".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")


# ------------------------------------------------------------- whole trees in each published layout


def write_image(path: Path, seed: int) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.random.default_rng(seed).integers(0, 255, (IMAGE_SIDE, IMAGE_SIDE, 3), dtype=np.uint8)
    cv2.imwrite(str(path), image)
    return image


def face_points(seed: int, num_landmarks: int) -> np.ndarray:
    """0-based points well inside an IMAGE_SIDE image."""
    return np.random.default_rng(seed).uniform(20, IMAGE_SIDE - 20, (num_landmarks, 2))


W300_FOLDERS = {
    "lfpw/trainset": 3,
    "helen/trainset": 2,
    "afw": 1,
    "lfpw/testset": 2,
    "helen/testset": 1,
    "ibug": 2,
}


def write_300w(root: Path, folders: dict[str, int] = W300_FOLDERS) -> None:
    """300W as published: flat folders of images with 1-based `.pts` files."""
    for folder, count in folders.items():
        for i in range(count):
            seed = zlib.crc32(f"{folder}/{i}".encode())
            write_image(root / folder / f"image_{i:03d}.jpg", seed)
            write_pts(root / folder / f"image_{i:03d}.pts", face_points(seed, 68))


def write_cofw(path: Path, split: str, count: int, version: str = "7.3", grey: bool = False) -> None:
    """`COFW_{train,test}_color.mat`: images inside the file, 1-based points and occlusion flags; with
    grey=True, HxW images as in COFW's original `COFW_{train,test}.mat`. Face i's points are
    `face_points(i, 29)`, 0-based."""
    shape = (IMAGE_SIDE, IMAGE_SIDE) if grey else (IMAGE_SIDE, IMAGE_SIDE, 3)
    images = [np.random.default_rng(i).integers(0, 255, shape, dtype=np.uint8) for i in range(count)]
    points = np.stack([face_points(i, 29) for i in range(count)]) + 1.0
    occlusion = np.random.default_rng(count).integers(0, 2, (count, 29)).astype(np.float64)
    phis = np.concatenate([points[:, :, 0], points[:, :, 1], occlusion], axis=1)
    boxes = np.tile([20.0, 20.0, 56.0, 56.0], (count, 1))
    keys = ("IsTr", "phisTr", "bboxesTr") if split == "train" else ("IsT", "phisT", "bboxesT")
    variables = dict(zip(keys, (cell(images), phis, boxes), strict=True))
    path.parent.mkdir(parents=True, exist_ok=True)
    (savemat_v73 if version == "7.3" else scipy.io.savemat)(str(path), variables)


def write_cofw68(points_dir: Path, count: int, faces: Sequence[int] | None = None) -> None:
    """cofw68-benchmark's `COFW68_Data/test_annotations/{i}_points.mat`, i = 1..count. File i annotates
    `write_cofw`'s face faces[i - 1] (0-based; by default i - 1, the benchmark's pairing): its outer eye
    corners (iBUG 36, 45) lie 0.5 px from that face's 29-point ones (COFW 8, 9), as another
    annotator's would."""
    faces = range(count) if faces is None else faces
    points_dir.mkdir(parents=True, exist_ok=True)
    for i, face in zip(range(1, count + 1), faces, strict=True):
        occ = np.random.default_rng(i).integers(0, 2, (68, 1))
        points = face_points(i, 68)
        points[[36, 45]] = face_points(face, 29)[[8, 9]] + 0.5
        scipy.io.savemat(str(points_dir / f"{i}_points.mat"), {"Points": points + 1.0, "Occ": occ})


def write_aflw(root: Path, count: int, hidden: tuple[int, ...] = ()) -> None:
    """`AFLWinfo_release.mat` (19 x then 19 y, 1-based; bbox left, right, top, bottom; a 1-based
    permutation `ra`; visibility `mask_new`) and the images under flickr/."""
    data = np.stack(
        [np.concatenate([p[:, 0], p[:, 1]]) for p in (face_points(i, 19) + 1 for i in range(count))]
    )
    bbox = np.tile([20.0, 76.0, 20.0, 76.0], (count, 1))
    mask = np.ones((count, 19))
    mask[list(hidden), 0] = 0
    names = [f"0/image{i:05d}.jpg" for i in range(count)]
    for i, name in enumerate(names):
        write_image(root / "flickr" / name, i)
    ra = np.arange(count, 0, -1).reshape(1, -1)  # reversed order, so that order matters
    scipy.io.savemat(
        str(root / "AFLWinfo_release.mat"),
        {
            "data": data,
            "bbox": bbox,
            "mask_new": mask,
            "nameList": cell([np.array([n]) for n in names]),
            "ra": ra,
        },
    )


def write_hrnet(root: Path, csv_counts: dict[str, int], num_landmarks: int, box_size: bool = False) -> None:
    """HRNet-Facial's `face_landmarks_*.csv` files with their images under images/."""
    for csv_name, count in csv_counts.items():
        rows = []
        for i in range(count):
            name = f"{Path(csv_name).stem}/image_{i:03d}.jpg"
            seed = zlib.crc32(f"{csv_name}/{i}".encode())
            write_image(root / "images" / name, seed)
            row = [name, 0.3] + ([60.0] if box_size else []) + [48.0, 48.0]
            rows.append(row + list(face_points(seed, num_landmarks).reshape(-1)))
        root.mkdir(parents=True, exist_ok=True)
        hrnet_csv(root / csv_name, rows, num_landmarks, box_size)


# The 5 points from iBUG's 68: eye centres (mean of each eye's 6 points), nose tip, mouth corners.
FACE5_FROM_IBUG68 = (range(36, 42), range(42, 48), (30,), (48,), (54,))


def write_face5_dataset(
    root: Path, synthetic_root: Path, splits: dict[str, str], with_box: bool = False
) -> None:
    """A face5 dataset in the plain CSV layout of conf/data/face5_csv.yaml, made of the synthetic
    faces: `splits` maps its splits to synthetic ones."""
    for split, synthetic_split in splits.items():
        records, names = [], []
        for record in read_pts_folder(synthetic_root / synthetic_split):
            name = f"{synthetic_split}/{record.image_path.name}"
            target = root / "images" / name
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(record.image_path, target)
            points = np.stack([record.landmarks[list(group)].mean(axis=0) for group in FACE5_FROM_IBUG68])
            hidden = np.stack([record.occlusion[list(group)].max() for group in FACE5_FROM_IBUG68])
            box = (
                np.concatenate([record.landmarks.min(axis=0), record.landmarks.max(axis=0)])
                if with_box
                else None
            )
            records.append(FaceRecord(target, points.astype(np.float32), hidden.astype(np.uint8), box=box))
            names.append(name)
        write_landmarks_csv(root / f"{split}.csv", records, names)


WFLW_SUBSETS = ("largepose", "expression", "illumination", "makeup", "occlusion", "blur")


def write_wflw(root: Path, count: int = 4) -> None:
    """WFLW as published: WFLW_images/ and the train/test lists (206 numbers and the name a line),
    with the six subset lists of the test faces (196 numbers and the name: no box, no flags)."""
    rng = np.random.default_rng(0)
    lines = []
    for i in range(count):
        name = f"0--Parade/face_{i}.jpg"
        image = root / "WFLW_images" / name
        image.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(image), rng.integers(0, 255, (120, 120, 3), dtype=np.uint8))
        points = rng.uniform(30, 90, (98, 2))
        lines.append(wflw_line(points, [30, 30, 90, 90], [int(i == 0), 0, 0, 0, int(i > 1), 0], name))
    subset_line = wflw_line(points, None, None, name)
    annotations = root / "WFLW_annotations"
    (annotations / "list_98pt_rect_attr_train_test").mkdir(parents=True)
    (annotations / "list_98pt_test").mkdir()
    for split in ("train", "test"):
        (annotations / "list_98pt_rect_attr_train_test" / f"list_98pt_rect_attr_{split}.txt").write_text(
            "\n".join(lines) + "\n"
        )
    for subset in WFLW_SUBSETS:
        (annotations / "list_98pt_test" / f"list_98pt_test_{subset}.txt").write_text(subset_line + "\n")
