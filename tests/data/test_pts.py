from __future__ import annotations

import cv2
import numpy as np
import pytest

from odn_lightning.data.formats.w300 import read_pts, read_pts_folder, write_pts
from odn_lightning.data.records import AnnotationError


def test_round_trip_is_one_based_on_disk(tmp_path):
    points = np.array([[0.0, 0.0], [10.5, 20.25]], dtype=np.float32)
    path = tmp_path / "a.pts"
    write_pts(path, points)
    text = path.read_text().splitlines()
    assert text[:3] == ["version: 1", "n_points: 2", "{"] and text[-1] == "}"
    assert text[3] == "1.000 1.000"  # 1-based, as 300W's Matlab-made files
    np.testing.assert_allclose(read_pts(path), points, atol=1e-3)


@pytest.mark.parametrize(
    "body,reason",
    [
        ("version: 1\nn_points: 3\n{\n1 2\n3 4\n}\n", "header says 3 points but 2"),
        ("version: 1\nn_points: 1\n{\n1 x\n}\n", "non-numeric"),
        ("version: 1\nn_points: 1\n{\n1 nan\n}\n", "not two finite numbers"),
        ("version: 1\nn_points: 1\n1 2\n", "missing '{'"),
        ("version: 1\n{\n1 2\n}\n", "n_points"),
    ],
)
def test_bad_files_name_the_file_and_reason(tmp_path, body, reason):
    path = tmp_path / "bad.pts"
    path.write_text(body)
    with pytest.raises(AnnotationError) as err:
        read_pts(path)
    assert str(path) in str(err.value) and reason in str(err.value)


def test_folder_reader_pairs_images_and_annotations(tmp_path):
    cv2.imwrite(str(tmp_path / "a.jpg"), np.zeros((20, 20, 3), dtype=np.uint8))
    write_pts(tmp_path / "a.pts", np.full((68, 2), 10.0))
    records = read_pts_folder(tmp_path)
    assert [r.image_path.name for r in records] == ["a.jpg"] and records[0].occlusion is None
    cv2.imwrite(str(tmp_path / "b.png"), np.zeros((20, 20, 3), dtype=np.uint8))
    with pytest.raises(AnnotationError, match="b.png: image has no annotation"):
        read_pts_folder(tmp_path)
