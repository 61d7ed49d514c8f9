"""WFLW's two list layouts (206 numbers in the full lists, LAB's 196 in the subset lists) and the
cross-check of the subset lists against the full test list's attribute flags."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from odn_lightning.data.formats import read_wflw
from odn_lightning.data.formats.wflw import WFLW_ATTRIBUTES, subset_agreement
from odn_lightning.data.records import AnnotationError, FaceRecord

from ..helpers.formats import wflw_line

PREFIX = "WFLW subsets vs the full test list's flags: "


def _points(seed: int) -> np.ndarray:
    # Three decimals: exact after "%.6f" printing and float32 parsing round trips.
    return np.round(np.random.default_rng(seed).uniform(0, 200, (98, 2)), 3)


def test_subset_list_of_196_numbers_and_name_reads_points_without_box_or_flags(tmp_path):
    faces = [(_points(0), "2--Demonstration/b 2.jpg"), (_points(1), "51--Dresses/a_1.jpg")]
    path = tmp_path / "list_98pt_test_occlusion.txt"
    path.write_text("\n".join(wflw_line(p, None, None, name) for p, name in faces) + "\n")
    records = read_wflw(path, tmp_path / "WFLW_images")
    assert len(records) == 2
    for record, (points, name) in zip(records, faces, strict=True):
        np.testing.assert_array_equal(record.landmarks, points.astype(np.float32))
        assert record.box is None and record.attributes is None
        assert record.image_path == tmp_path / "WFLW_images" / name  # the space stays in the name
    assert records[1].annotation == f"{path}: line 2"


def test_full_list_of_206_numbers_still_reads_box_and_flags(tmp_path):
    path = tmp_path / "list_98pt_rect_attr_test.txt"
    flags = [0, 1, 0, 0, 1, 0]
    path.write_text(wflw_line(_points(2), [1, 2, 150, 160], flags, "7--Cheering/c d.jpg") + "\n")
    (record,) = read_wflw(path, tmp_path)
    np.testing.assert_array_equal(record.landmarks, _points(2).astype(np.float32))
    np.testing.assert_array_equal(record.box, [1, 2, 150, 160])
    assert record.attributes == {name: bool(f) for name, f in zip(WFLW_ATTRIBUTES, flags, strict=True)}
    assert record.image_path == tmp_path / "7--Cheering/c d.jpg"


def test_line_of_200_numbers_is_refused_naming_file_line_and_both_layouts(tmp_path):
    path = tmp_path / "list_98pt_test_blur.txt"
    line_200 = wflw_line(_points(3), None, None, "x.jpg").replace(" x.jpg", " 0 0 9 9 x.jpg")
    path.write_text(wflw_line(_points(3), None, None, "ok.jpg") + "\n" + line_200 + "\n")
    with pytest.raises(
        AnnotationError, match=r"list_98pt_test_blur.txt: line 2: 200 number fields; .*206.*196"
    ):
        read_wflw(path, tmp_path)


def test_line_without_image_path_is_refused(tmp_path):
    path = tmp_path / "list_98pt_test_blur.txt"
    path.write_text(wflw_line(_points(3), None, None, "x.jpg").removesuffix(" x.jpg") + "\n")
    with pytest.raises(AnnotationError, match=r"line 1: 196 number fields and no image path"):
        read_wflw(path, tmp_path)


@pytest.mark.parametrize("first_full", [True, False])
def test_file_mixing_layouts_is_refused_at_the_differing_line(tmp_path, first_full):
    full = wflw_line(_points(4), [0, 0, 9, 9], [0] * 6, "a.jpg")
    subset = wflw_line(_points(4), None, None, "a.jpg")
    lines = [full, full, subset] if first_full else [subset, subset, full]
    path = tmp_path / "list.txt"
    path.write_text("\n".join(lines) + "\n")
    first, other = (206, 196) if first_full else (196, 206)
    with pytest.raises(AnnotationError, match=rf"list.txt: line 3: {other} numbers .* line 1 has {first}"):
        read_wflw(path, tmp_path)
    problems: list[AnnotationError] = []
    assert len(read_wflw(path, tmp_path, problems)) == 2 and len(problems) == 1


# ------------------------------------------------------------------------------ subset_agreement


def _face(name: str, seed: int, occluded: bool | None, line: int) -> FaceRecord:
    attributes = None if occluded is None else {a: a == "occlusion" and occluded for a in WFLW_ATTRIBUTES}
    return FaceRecord(
        image_path=Path("WFLW_images") / name,
        landmarks=_points(seed).astype(np.float32),
        annotation=f"list: line {line}",
        attributes=attributes,
    )


def _full_test_list() -> list[FaceRecord]:
    # Two faces in one image: only the landmarks tell them apart.
    return [
        _face("0--Parade/a.jpg", 0, True, 1),
        _face("0--Parade/a.jpg", 1, False, 2),
        _face("1--Handshaking/b.jpg", 2, True, 3),
        _face("1--Handshaking/c.jpg", 3, False, 4),
    ]


def _as_listed(record: FaceRecord, jitter: float = 0.0) -> FaceRecord:
    """The same face as a subset list gives it: no flags, printed landmarks a hair off."""
    return FaceRecord(record.image_path, record.landmarks + np.float32(jitter), annotation="subset")


def test_subset_agreement_reports_all_agree_on_consistent_lists():
    full = _full_test_list()
    subsets = {
        "occlusion": [_as_listed(full[2], 4e-4), _as_listed(full[0])],
        "makeup": [],
    }
    assert subset_agreement(full, subsets) == [
        PREFIX + "makeup: 0 listed, 0 flagged 'make-up', all agree",
        PREFIX + "occlusion: 2 listed, 2 flagged 'occlusion', all agree",
    ]


def test_subset_agreement_names_counts_and_first_face_of_each_mismatch():
    full = _full_test_list()
    # a.jpg's second face is listed but not flagged; b.jpg is flagged but not listed; one face is not
    # in the full list at all; another is listed twice.
    stranger = _face("9--Press/z.jpg", 9, None, 7)
    listed = [_as_listed(full[0]), _as_listed(full[1]), stranger, _as_listed(full[0])]
    (line,) = subset_agreement(full, {"occlusion": listed})
    assert line == PREFIX + (
        "occlusion: 4 listed, 2 flagged 'occlusion', "
        "1 listed face not in the full test list (first: WFLW_images/9--Press/z.jpg at list: line 7), "
        "1 listed face not flagged (first: WFLW_images/0--Parade/a.jpg at subset), "
        "1 face listed again (first: WFLW_images/0--Parade/a.jpg at subset), "
        "1 flagged face not listed (first: WFLW_images/1--Handshaking/b.jpg at list: line 3)"
    )


def test_subset_agreement_matches_faces_by_landmarks_not_only_the_image():
    full = _full_test_list()
    moved = _as_listed(full[0], 0.01)  # same image, landmarks off by more than 1e-3 px: another face
    (line,) = subset_agreement(full, {"occlusion": [moved, _as_listed(full[2])]})
    assert "1 listed face not in the full test list" in line and "1 flagged face not listed" in line


def test_subset_agreement_cannot_cross_check_a_full_list_without_flags():
    full = [_as_listed(record) for record in _full_test_list()]  # e.g. read from a 196-number file
    assert subset_agreement(full, {"occlusion": full[:1]}) == [
        PREFIX + "cannot cross-check: the full test list carries no attribute flags"
    ]


def test_subset_agreement_refuses_an_unknown_split_name():
    with pytest.raises(ValueError, match="make-up"):
        subset_agreement(_full_test_list(), {"make-up": []})
