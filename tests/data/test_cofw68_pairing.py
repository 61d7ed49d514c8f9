"""COFW-68's annotations pair with COFW's test images by position only: `read_cofw68` checks each pair
against COFW's own 29-point landmarks, and `pairing_evidence` reports the agreement for data-check."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from odn_lightning.data.formats import read_cofw68
from odn_lightning.data.formats.cofw68 import PAIRING_TOLERANCE, corner_offset, pairing_evidence
from odn_lightning.data.records import AnnotationError

from ..helpers.formats import face_points, write_cofw, write_cofw68

FACES = 3


def test_correctly_paired_files_read(tmp_path):
    mat = tmp_path / "COFW_test_color.mat"
    write_cofw(mat, "test", FACES)
    write_cofw68(tmp_path / "test_annotations", FACES)
    records = read_cofw68(tmp_path / "test_annotations", mat_file=mat, image_dir=tmp_path / "images")
    assert [r.image_path.name for r in records] == [f"cofw_test_{i:04d}.png" for i in range(FACES)]
    for i, record in enumerate(records):
        assert record.landmarks.shape == (68, 2)
        np.testing.assert_allclose(record.landmarks[[36, 45]], face_points(i, 29)[[8, 9]] + 0.5, atol=1e-4)


def test_a_file_of_another_face_is_refused_naming_its_index(tmp_path):
    mat = tmp_path / "COFW_test_color.mat"
    write_cofw(mat, "test", FACES)
    write_cofw68(tmp_path / "test_annotations", FACES, faces=(0, 2, 2))  # face 2's file holds face 3's
    # Refused even when per-face problems are collected: the files do not belong together.
    problems = []
    with pytest.raises(
        AnnotationError, match=r"2_points.mat: face 2's outer eye corners lie [\d.]+ px"
    ) as err:
        read_cofw68(tmp_path / "test_annotations", mat_file=mat, image_dir=tmp_path / "i", problems=problems)
    message = str(err.value)
    assert "x inter-ocular" in message and "COFW_test_color.mat: face 2" in message
    assert "paired by position" in message and "COFW_test.mat" in message and "\n" not in message
    assert problems == []


def test_the_grey_v7_cofw_test_mat_pairs_and_reads(tmp_path):
    mat = tmp_path / "COFW_test.mat"
    write_cofw(mat, "test", FACES, version="7", grey=True)
    assert not mat.read_bytes().startswith(b"MATLAB 7.3")  # scipy's v5/v7 layout, not HDF5
    write_cofw68(tmp_path / "test_annotations", FACES)
    records = read_cofw68(tmp_path / "test_annotations", mat_file=mat)
    assert len(records) == FACES
    image = cv2.imread(str(records[0].image_path), cv2.IMREAD_UNCHANGED)
    assert image.shape == (96, 96)  # grey, as in the file
    assert records[0].image_path.parent == tmp_path / "COFW_test_images"


def test_the_evidence_line_counts_the_faces_and_their_offsets(tmp_path):
    mat = tmp_path / "COFW_test_color.mat"
    write_cofw(mat, "test", FACES)
    write_cofw68(tmp_path / "test_annotations", FACES)
    lines = pairing_evidence(tmp_path / "test_annotations", mat, tmp_path / "images")
    offset = 0.5 * np.sqrt(2)  # each corner 0.5 px off in x and y
    smallest_inter_ocular = min(
        np.linalg.norm(np.diff(face_points(i, 29)[[8, 9]], axis=0)) for i in range(FACES)
    )
    assert lines == [
        f"COFW-68 pairing: {FACES} faces (test_annotations with COFW_test_color.mat), outer eye corners "
        f"within {offset:.1f} px ({offset / smallest_inter_ocular:.2f} x inter-ocular) of COFW's 29-point "
        f"ones at most, median {offset:.1f} px"
    ]
    # A wrong pair is named face by face, not raised: data-check shows what read_cofw68 refuses.
    write_cofw68(tmp_path / "test_annotations", FACES, faces=(0, 2, 2))
    lines = pairing_evidence(tmp_path / "test_annotations", mat, tmp_path / "images")
    assert len(lines) == 2
    assert lines[1].startswith(f"COFW-68 pairing: 1 face beyond {PAIRING_TOLERANCE} x inter-ocular")
    assert "face 2 (" in lines[1]


def test_the_corner_offset_takes_the_better_of_direct_and_swapped_corners():
    points29 = np.zeros((29, 2))
    points29[8], points29[9] = (10.0, 20.0), (50.0, 20.0)  # inter-ocular 40
    points68 = np.zeros((68, 2))
    points68[36], points68[45] = (51.0, 20.0), (10.0, 23.0)  # swapped: 1 px and 3 px off
    assert corner_offset(points68, points29) == pytest.approx((3.0, 40.0))
