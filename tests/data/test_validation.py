"""A tree seeded with every kind of bad file: one report names them all, or `skip` leaves them out."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from odn_lightning.data.datamodule import DataValidationError, LandmarkDataModule
from odn_lightning.data.pts import write_pts

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
