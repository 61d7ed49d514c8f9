from __future__ import annotations

import cv2
import numpy as np
import pytest
import scipy.io

from odn_lightning.data.formats import read_aflw_info, read_cofw68, read_cofw_mat, read_hrnet_csv, read_wflw
from odn_lightning.data.formats.wflw import WFLW_ATTRIBUTES
from odn_lightning.data.records import OCCLUDED_BY_OBJECT, AnnotationError, FaceRecord

from ..helpers.formats import cell, hrnet_csv, savemat_v73, wflw_line

RNG = np.random.default_rng(0)


# --------------------------------------------------------------------------------------------- WFLW


def test_wflw_reads_points_box_attributes_and_path(tmp_path):
    faces = [
        (RNG.uniform(0, 200, (98, 2)), [10, 20, 150, 180], [1, 0, 0, 1, 0, 1], "51--Dresses/a_1.jpg"),
        (RNG.uniform(0, 200, (98, 2)), [0, 5, 99, 120], [0, 1, 1, 0, 1, 0], "2--Demonstration/b 2.jpg"),
        (RNG.uniform(0, 200, (98, 2)), [3, 4, 50, 60], [0, 0, 0, 0, 0, 0], "7--Cheering/c.jpg"),
    ]
    path = tmp_path / "list_98pt_rect_attr_test.txt"
    path.write_text("\n".join(wflw_line(*face) for face in faces) + "\n\n")
    records = read_wflw(path, tmp_path / "WFLW_images")
    assert len(records) == 3
    for record, (points, box, flags, name) in zip(records, faces, strict=True):
        assert isinstance(record, FaceRecord)
        np.testing.assert_allclose(record.landmarks, points, atol=1e-4)  # 0-based: no shift
        assert record.landmarks.dtype == np.float32 and record.landmarks.shape == (98, 2)
        np.testing.assert_array_equal(record.box, box)
        assert record.attributes == {k: bool(f) for k, f in zip(WFLW_ATTRIBUTES, flags, strict=True)}
        assert record.image_path == tmp_path / "WFLW_images" / name
        assert record.occlusion is None


@pytest.mark.parametrize(
    "mutate,reason",
    [
        (lambda t: t[:195] + t[196:], "fields"),
        (lambda t: t[:3] + ["x"] + t[4:], "non-numeric"),
        (lambda t: t[:200] + ["2"] + t[201:], "attribute flags"),
    ],
)
def test_wflw_bad_line_names_file_line_and_reason(tmp_path, mutate, reason):
    tokens = wflw_line(np.ones((98, 2)), [0, 0, 9, 9], [0] * 6, "a.jpg").split()
    path = tmp_path / "list_98pt_test_blur.txt"
    path.write_text(
        wflw_line(np.ones((98, 2)), [0, 0, 9, 9], [0] * 6, "ok.jpg") + "\n" + " ".join(mutate(tokens))
    )
    with pytest.raises(AnnotationError, match=rf"list_98pt_test_blur.txt: line 2: .*{reason}"):
        read_wflw(path, tmp_path)


# --------------------------------------------------------------------------------------------- COFW


def _cofw_mat(path, split, n=4, version="7"):
    images = [RNG.integers(0, 255, (20 + i, 30, 3), dtype=np.uint8) for i in range(n - 1)]
    images.append(RNG.integers(0, 255, (25, 22), dtype=np.uint8))  # COFW has grey images too
    xs, ys = RNG.uniform(1, 20, (n, 29)), RNG.uniform(1, 20, (n, 29))
    occ = RNG.integers(0, 2, (n, 29)).astype(np.float64)
    phis = np.concatenate([xs, ys, occ], axis=1)
    boxes = np.tile([2.0, 3.0, 10.0, 12.0], (n, 1))
    keys = ("IsTr", "phisTr", "bboxesTr") if split == "train" else ("IsT", "phisT", "bboxesT")
    variables = dict(zip(keys, (cell(images), phis, boxes), strict=True))
    (savemat_v73 if version == "7.3" else scipy.io.savemat)(str(path), variables)
    return images, xs, ys, occ


@pytest.mark.parametrize("version", ["7", "7.3"])
@pytest.mark.parametrize("split", ["train", "test"])
def test_cofw_mat_writes_images_and_shifts_to_zero_based(tmp_path, split, version):
    mat_path = tmp_path / f"COFW_{split}_color.mat"
    images, xs, ys, occ = _cofw_mat(mat_path, split, version=version)
    cache = tmp_path / "cache"
    records = read_cofw_mat(mat_path, cache)
    assert len(records) == 4
    for i, record in enumerate(records):
        assert record.image_path == cache / f"cofw_{split}_{i:04d}.png"
        written = cv2.imread(str(record.image_path), cv2.IMREAD_UNCHANGED)
        expected = images[i] if images[i].ndim == 2 else cv2.cvtColor(images[i], cv2.COLOR_RGB2BGR)
        np.testing.assert_array_equal(written, expected)
        np.testing.assert_allclose(record.landmarks[:, 0], xs[i] - 1, atol=1e-5)
        np.testing.assert_allclose(record.landmarks[:, 1], ys[i] - 1, atol=1e-5)
        np.testing.assert_array_equal(record.occlusion, np.where(occ[i] > 0, OCCLUDED_BY_OBJECT, 0))
        np.testing.assert_allclose(record.box, [1.0, 2.0, 11.0, 14.0])
    # A second read reuses the cached PNGs (same paths, files untouched).
    mtime = records[0].image_path.stat().st_mtime_ns
    again = read_cofw_mat(mat_path, cache)
    assert [r.image_path for r in again] == [r.image_path for r in records]
    assert records[0].image_path.stat().st_mtime_ns == mtime


def test_cofw_mat_bad_shape_and_bad_files_name_the_file(tmp_path):
    bad = tmp_path / "COFW_test_color.mat"
    scipy.io.savemat(str(bad), {"IsT": cell([np.zeros((4, 4), np.uint8)]), "phisT": np.zeros((1, 58))})
    with pytest.raises(AnnotationError, match=r"COFW_test_color.mat: 'phisT' has shape \(1, 58\)"):
        read_cofw_mat(bad, tmp_path / "cache")
    v73 = tmp_path / "COFW_train_color.mat"  # a v7.3 header on a file that is not HDF5
    v73.write_bytes(
        b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: x HDF5 schema 1.00 .".ljust(512, b" ")
    )
    with pytest.raises(AnnotationError, match=r"COFW_train_color.mat: not a readable .mat file"):
        read_cofw_mat(v73, tmp_path / "cache")
    junk = tmp_path / "junk.mat"
    junk.write_bytes(b"not a mat file at all")
    with pytest.raises(AnnotationError, match="junk.mat"):
        read_cofw_mat(junk, tmp_path / "cache")


def test_cofw68_pairs_annotations_with_images_in_order(tmp_path):
    points_dir = tmp_path / "test_annotations"
    points_dir.mkdir()
    expected = []
    for i in range(1, 12):  # 11 files: numeric (not lexical) order matters from 10 on
        points, occ = RNG.uniform(1, 50, (68, 2)), RNG.integers(0, 2, 68)
        scipy.io.savemat(str(points_dir / f"{i}_points.mat"), {"Points": points, "Occ": occ.reshape(68, 1)})
        expected.append((points, occ))
    images = [tmp_path / f"cofw_test_{i:04d}.png" for i in range(11)]
    # Records from read_cofw_mat are accepted as well as paths; their 29 points must be of the same face.
    points29 = np.zeros((29, 2), np.float32)
    points29[[8, 9]] = expected[0][0][[36, 45]] - 1  # the outer eye corners, 0-based
    inputs = [FaceRecord(images[0], points29)] + images[1:]
    records = read_cofw68(points_dir, inputs)
    assert [r.image_path for r in records] == images
    for record, (points, occ) in zip(records, expected, strict=True):
        np.testing.assert_allclose(record.landmarks, points - 1, atol=1e-5)
        np.testing.assert_array_equal(record.occlusion, np.where(occ > 0, OCCLUDED_BY_OBJECT, 0))


def test_cofw68_bad_files_name_the_file(tmp_path):
    points_dir = tmp_path / "test_annotations"
    points_dir.mkdir()
    scipy.io.savemat(str(points_dir / "1_points.mat"), {"Points": np.ones((29, 2)), "Occ": np.zeros(68)})
    with pytest.raises(AnnotationError, match=r"1_points.mat: 'Points' has shape \(29, 2\)"):
        read_cofw68(points_dir, ["a.png"])
    with pytest.raises(AnnotationError, match="1 annotation files for 2 COFW test images"):
        read_cofw68(points_dir, ["a.png", "b.png"])


# ---------------------------------------------------------------------------------------- HRNet CSV


@pytest.mark.parametrize("dataset,num_landmarks,box_size", [("300w", 68, False), ("aflw", 19, True)])
def test_hrnet_csv_layouts(tmp_path, dataset, num_landmarks, box_size):
    faces = []
    for i in range(3):
        points = RNG.uniform(0, 100, (num_landmarks, 2)).round(3)
        row = [f"ibug/image_{i}.jpg", 1.5 + i] + ([120.0 + i] if box_size else []) + [50.5, 60.25]
        faces.append((row, points))
    path = tmp_path / f"face_landmarks_{dataset}_test.csv"
    hrnet_csv(path, [row + list(points.reshape(-1)) for row, points in faces], num_landmarks, box_size)
    records = read_hrnet_csv(path, tmp_path / "images")
    assert len(records) == 3  # the header's column count gives the layout and the point count
    for i, (record, (row, points)) in enumerate(zip(records, faces, strict=True)):
        assert record.image_path == tmp_path / "images" / row[0]
        np.testing.assert_allclose(record.landmarks, points, atol=1e-4)
        assert record.scale == pytest.approx(1.5 + i)
        np.testing.assert_allclose(record.center, [50.5, 60.25])
        assert record.box_size == (pytest.approx(120.0 + i) if box_size else None)
    shifted = read_hrnet_csv(path, tmp_path / "images", one_based=True)
    np.testing.assert_allclose(shifted[0].landmarks, faces[0][1] - 1, atol=1e-4)
    np.testing.assert_allclose(shifted[0].center, [49.5, 59.25])


def test_hrnet_csv_bad_rows_name_the_file(tmp_path):
    path = tmp_path / "face_landmarks_wflw_test.csv"
    hrnet_csv(path, [["a.jpg", 1.0, 5, 5] + [1.0] * 195], 98, False)
    with pytest.raises(AnnotationError, match=r"face_landmarks_wflw_test.csv: row 2: 199 columns"):
        read_hrnet_csv(path, tmp_path)
    hrnet_csv(path, [["a.jpg", "nan", 5, 5] + [1.0] * 196], 98, False)
    with pytest.raises(AnnotationError, match=r"face_landmarks_wflw_test.csv: row 2: .*finite"):
        read_hrnet_csv(path, tmp_path)
    path.write_text("image_name,scale,center_w,center_h\n")
    with pytest.raises(AnnotationError, match="face_landmarks_wflw_test.csv: no faces"):
        read_hrnet_csv(path, tmp_path)


# --------------------------------------------------------------------------------------------- AFLW


def _aflw_mat(path, n=5):
    data = RNG.uniform(1, 100, (n, 38))
    bbox = np.array([[10.0 + i, 90.0, 20.0, 110.0 + i] for i in range(n)])
    mask = np.ones((n, 19))
    mask[[1, 3], 5] = 0  # faces 2 and 4 (1-based) are not fully visible
    names = np.empty((n, 1), dtype=object)
    for i in range(n):
        names[i, 0] = np.array([f"0/image{i:05d}.jpg"])
    ra = np.array([[3, 1, 5, 2, 4]])
    scipy.io.savemat(str(path), {"data": data, "bbox": bbox, "mask_new": mask, "nameList": names, "ra": ra})
    return data, bbox, mask


def test_aflw_info_splits_order_shift_and_visibility(tmp_path):
    path = tmp_path / "AFLWinfo_release.mat"
    data, bbox, mask = _aflw_mat(path)
    root = tmp_path / "flickr"
    records = read_aflw_info(path, root)
    assert [r.image_path.name for r in records] == [f"image{i:05d}.jpg" for i in (2, 0, 4, 1, 3)]
    first = records[0]  # ra[0] = 3 -> face index 2
    assert first.image_path == root / "0" / "image00002.jpg"
    # As stored, as SAN, PIPNet, FaRL and HRNet's AFLW CSVs use them.
    np.testing.assert_allclose(first.landmarks[:, 0], data[2, :19], atol=1e-4)
    np.testing.assert_allclose(first.landmarks[:, 1], data[2, 19:], atol=1e-4)
    np.testing.assert_allclose(first.box, [12.0, 20.0, 90.0, 112.0])  # (left, top, right, bottom)
    assert records[3].occlusion[5] == OCCLUDED_BY_OBJECT and records[3].occlusion.sum() == OCCLUDED_BY_OBJECT
    assert len(read_aflw_info(path, root, "train", num_train=3)) == 3
    test = read_aflw_info(path, root, "test", num_train=3)
    assert [r.image_path.name for r in test] == ["image00001.jpg", "image00003.jpg"]
    assert read_aflw_info(path, root, "test_frontal", num_train=3) == []  # both test faces hide a point
    frontal = read_aflw_info(path, root, "test_frontal", num_train=2)  # test = faces 4, 1, 3 (0-based)
    assert [r.image_path.name for r in frontal] == ["image00004.jpg"]
    shifted = read_aflw_info(path, root, one_based=True)
    np.testing.assert_allclose(shifted[0].landmarks[:, 0], data[2, :19] - 1, atol=1e-4)


def test_aflw_info_bad_permutation_names_the_file(tmp_path):
    path = tmp_path / "AFLWinfo_release.mat"
    _aflw_mat(path)
    mat = scipy.io.loadmat(str(path))
    mat["ra"] = np.array([[1, 1, 2, 3, 4]])
    scipy.io.savemat(str(path), {k: v for k, v in mat.items() if not k.startswith("__")})
    with pytest.raises(AnnotationError, match=r"AFLWinfo_release.mat: 'ra' is not a 1-based permutation"):
        read_aflw_info(path, tmp_path)
