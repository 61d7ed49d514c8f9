"""A tree seeded with every kind of bad file: one report names them all, or `skip` leaves them out."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from odn_lightning.data.datamodule import DataValidationError, LandmarkDataModule
from odn_lightning.data.formats.w300 import write_pts

from ..helpers.formats import face_points, wflw_line, write_image

GOOD = 3
BAD = {
    "no_annotation": "image has no annotation",
    "no_image": "annotation without an image",
    "truncated": "not a readable image",
    "wrong_count": "header says 68 points but 67",
    "not_numbers": "non-numeric",
    "nan": "not two finite numbers",
    "far_outside": "points far outside the 64x64 image",
    "wrong_scheme": "67 landmarks, expected 68",
}


def face(folder, name, points=None):
    cv2.imwrite(str(folder / f"{name}.jpg"), np.full((64, 64, 3), 128, dtype=np.uint8))
    rng = np.random.default_rng(len(name))
    write_pts(folder / f"{name}.pts", rng.uniform(10, 50, (68, 2)) if points is None else points)


@pytest.fixture
def bad_tree(tmp_path):
    folder = tmp_path / "root" / "faces"
    folder.mkdir(parents=True)
    for i in range(GOOD):
        face(folder, f"good{i}")
    cv2.imwrite(str(folder / "no_annotation.jpg"), np.zeros((64, 64, 3), dtype=np.uint8))
    write_pts(folder / "no_image.pts", np.zeros((68, 2)))
    face(folder, "truncated")
    (folder / "truncated.jpg").write_bytes((folder / "truncated.jpg").read_bytes()[:20])
    face(folder, "wrong_count")
    lines = (folder / "wrong_count.pts").read_text().splitlines()
    (folder / "wrong_count.pts").write_text("\n".join(lines[:4] + lines[5:]) + "\n")
    face(folder, "not_numbers")
    (folder / "not_numbers.pts").write_text((folder / "not_numbers.pts").read_text().replace("\n1", "\nx", 1))
    face(folder, "nan", np.full((68, 2), np.nan))
    face(folder, "far_outside", np.full((68, 2), 500.0))
    face(folder, "wrong_scheme", np.full((67, 2), 20.0))
    return tmp_path


def datamodule(tree, **kwargs):
    splits = {"train": ["faces"], "val": ["faces"], "test": ["faces"]}
    return LandmarkDataModule(
        "bad", str(tree / "root"), splits, test_splits=["test"], image_size=32, num_workers=0, **kwargs
    )


def test_every_bad_file_is_named_with_its_reason(bad_tree):
    with pytest.raises(DataValidationError) as err:
        datamodule(bad_tree).setup("fit")
    message = str(err.value)
    assert f"{len(BAD)} bad faces" in message and "data.on_bad_sample=skip" in message
    for name, reason in BAD.items():
        line = next((ln for ln in message.splitlines() if f"/{name}." in ln), None)
        assert line is not None and reason in line, (name, line)
    assert "good" not in message


def test_skip_leaves_bad_faces_out_and_writes_their_list(bad_tree):
    out = bad_tree / "run"
    dm = datamodule(bad_tree, on_bad_sample="skip", bad_samples_dir=str(out))
    dm.setup("fit")
    assert len(dm.datasets["train"]) == GOOD
    listed = (out / "bad_samples_train.txt").read_text().splitlines()
    assert len(listed) == len(BAD)
    assert dm.datasets["train"][0]["image"].shape == (3, 32, 32)


def test_unknown_bad_sample_policy_is_named():
    with pytest.raises(ValueError, match="on_bad_sample"):
        LandmarkDataModule(
            "x",
            "/nowhere",
            {"train": [], "val": [], "test": []},
            test_splits=["test"],
            on_bad_sample="ignore",
        )


def wflw_datamodule(root, **kwargs):
    source = {"reader": "wflw", "annotation_file": "list.txt", "image_root": "images"}
    splits = {"train": [source], "val": [source], "test": [source]}
    return LandmarkDataModule(
        "wflw",
        str(root),
        splits,
        test_splits=["test"],
        scheme="wflw98",
        image_size=32,
        num_workers=0,
        **kwargs,
    )


def test_benchmark_list_files_report_every_bad_line_and_image(tmp_path):
    root = tmp_path / "WFLW"
    points = face_points(0, 98)
    lines = []
    for i in range(GOOD):
        write_image(root / "images" / f"good{i}.jpg", i)
        lines.append(wflw_line(points, [20, 20, 76, 76], [0] * 6, f"good{i}.jpg"))
    lines.append(wflw_line(points, [20, 20, 76, 76], [0] * 6, "x.jpg").replace(" ", " nan_", 1))
    lines.append(wflw_line(points, [20, 20, 76, 76], [0] * 6, "missing.jpg"))
    write_image(root / "images" / "far.jpg", 9)
    lines.append(wflw_line(points + 500, [20, 20, 76, 76], [0] * 6, "far.jpg"))
    (root / "list.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataValidationError) as err:
        wflw_datamodule(root).setup("fit")
    message = str(err.value)
    assert "3 bad faces" in message
    assert "list.txt: line 4: non-numeric value" in message
    assert "missing.jpg: image file is missing" in message
    assert "list.txt: line 6: 98 points far outside the 96x96 image" in message
    dm = wflw_datamodule(root, on_bad_sample="skip", bad_samples_dir=str(tmp_path / "run"))
    dm.setup("fit")
    assert len(dm.datasets["train"]) == GOOD
    assert len((tmp_path / "run" / "bad_samples_train.txt").read_text().splitlines()) == 3


def test_truncated_image_with_intact_header_is_found_by_decoding_and_by_the_loader(tmp_path):
    folder = tmp_path / "root" / "faces"
    write_image(folder / "cut.jpg", 0)
    write_pts(folder / "cut.pts", face_points(0, 68))
    data = (folder / "cut.jpg").read_bytes()
    (folder / "cut.jpg").write_bytes(data[: len(data) // 2])
    dm = datamodule(tmp_path)
    header_only: list = []
    assert len(dm.records("train", header_only)) == 1 and header_only == []  # the header reads fine
    decoded: list = []
    assert dm.records("train", decoded, decode_images=True) == []
    assert len(decoded) == 1 and "cut.jpg: not a readable image (image file is truncated" in str(decoded[0])
    dm.setup("fit")
    with pytest.raises(
        OSError, match=r"cut.jpg: cannot decode the image \(image file is truncated.*data.on_bad_sample=skip"
    ):
        dm.datasets["train"][0]
