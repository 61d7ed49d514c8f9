"""MERL-RAV (formats/merl_rav.py, conf/data/merl_rav.yaml): its three label kinds read from constructed
files in its layout, and the per-point mask of points without a position through batch, loss and NME."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from odn_lightning.data.formats.merl_rav import read_merl_rav
from odn_lightning.data.records import OCCLUDED_BY_OBJECT, SELF_OCCLUDED, AnnotationError, label_counts
from odn_lightning.data_check import check
from odn_lightning.evaluation.metrics import LandmarkNME
from odn_lightning.training.objective import coordinate_l2, visibility_supervision

from ..helpers.configs import compose_config
from ..helpers.formats import face_points, write_image

POSES = ("frontal", "left", "lefthalf", "right", "righthalf")


def write_merl_rav_pts(path, points_1_based, external=(), self_occluded=()):
    """A MERL-RAV `.pts`: (x, y) unoccluded, (-x, -y) externally occluded, (-1, -1) self-occluded."""
    lines = ["version: 1", f"n_points:  {len(points_1_based)}", "{"]
    for i, (x, y) in enumerate(points_1_based):
        if i in self_occluded:
            x, y = -1.0, -1.0
        elif i in external:
            x, y = -x, -y
        lines.append(f"{float(x)!r} {float(y)!r}")
    path.write_text("\n".join([*lines, "}"]) + "\n")


def write_merl_rav(root, faces_per_folder=2):
    """The organised layout, each face with 3 external and 2 self-occluded points (a third face in a
    frontal trainset folder: the `every` hold-out has something to leave)."""
    truth = {}
    for pose in POSES:
        for part in ("trainset", "testset"):
            for i in range(faces_per_folder + (pose == "frontal" and part == "trainset")):
                stem = root / pose / part / f"image{i:05d}"
                seed = 10 * POSES.index(pose) + 5 * (part == "testset") + i
                write_image(stem.with_suffix(".jpg"), seed)
                points = face_points(seed, 68) + 1.0  # 1-based, as .pts
                write_merl_rav_pts(stem.with_suffix(".pts"), points, external=(3, 4, 5), self_occluded=(0, 1))
                truth[stem.with_suffix(".pts")] = points
    return truth


def test_the_three_label_kinds_are_read_from_the_signs(tmp_path):
    truth = write_merl_rav(tmp_path)
    records = read_merl_rav(tmp_path / "lefthalf" / "testset")
    assert len(records) == 2
    for record in records:
        points = truth[record.image_path.with_suffix(".pts")]
        assert record.occlusion[0] == SELF_OCCLUDED and record.occlusion[1] == SELF_OCCLUDED
        assert (record.occlusion[3:6] == OCCLUDED_BY_OBJECT).all()
        assert (record.occlusion[6:] == 0).all() and record.occlusion[2] == 0
        assert record.located.tolist() == [False, False] + [True] * 66
        # Externally occluded points keep their estimated position; all 0-based.
        np.testing.assert_allclose(record.landmarks[2:], points[2:] - 1.0, atol=1e-4)
        # A point without a position holds the mean of the located ones (inside their tight box).
        np.testing.assert_allclose(record.landmarks[0], (points[2:] - 1.0).mean(axis=0), atol=1e-3)
        assert list(record.visible[:7]) == [False, False, True, False, False, False, True]
    assert label_counts(records) == {
        "unoccluded": 2 * 63,
        "externally_occluded": 2 * 3,
        "self_occluded": 2 * 2,
    }


def test_a_point_with_one_negative_coordinate_names_the_file_and_point(tmp_path):
    folder = tmp_path / "frontal" / "testset"
    write_image(folder / "image00001.jpg", 1)
    points = face_points(1, 68) + 1.0
    points[7, 0] *= -1
    write_merl_rav_pts(folder / "image00001.pts", points)
    with pytest.raises(AnnotationError, match=r"image00001.pts: point 8 has one negative coordinate"):
        read_merl_rav(folder)


def test_the_hold_out_splits_a_folder_without_overlap(tmp_path):
    write_merl_rav(tmp_path)
    folder = tmp_path / "frontal" / "trainset"
    held = read_merl_rav(folder, every=2, part="held_out")
    rest = read_merl_rav(folder, every=2, part="rest")
    assert [r.image_path.name for r in held] == ["image00000.jpg", "image00002.jpg"]
    assert [r.image_path.name for r in rest] == ["image00001.jpg"]


def test_data_check_states_the_label_counts_against_the_published_ones(tmp_path, capsys):
    write_merl_rav(tmp_path / "merl")
    cfg = compose_config("data_check", ["data=merl_rav", f"data.root={tmp_path / 'merl'}"], tmp_path / "out")
    with pytest.raises(SystemExit, match="split counts off"):
        check(cfg)
    printed = capsys.readouterr().out
    # 5 test folders of 2 faces: 10 faces, each 63 unoccluded, 3 external, 2 self-occluded points.
    assert "630 / 201206" in printed and "30 / 28408" in printed and "20 / 33206" in printed
    assert "split 'test' has 10 faces, the benchmark defines 3865" in printed
    assert "labels: split 'test' has points" in printed


def test_a_point_without_a_position_changes_neither_loss_nor_nme():
    generator = torch.Generator().manual_seed(0)
    target = torch.rand(2, 68, 2, generator=generator) * 2 - 1
    predicted = target + 0.05 * torch.randn(2, 68, 2, generator=generator)
    located = torch.ones(2, 68, dtype=torch.bool)
    located[0, :3] = False
    moved = target.clone()
    moved[0, :3] += 10.0  # a placeholder anywhere
    assert coordinate_l2(predicted, target, located) == coordinate_l2(predicted, moved, located)
    assert coordinate_l2(predicted, target, located) < coordinate_l2(predicted, target)

    def nme(target_px):
        metric = LandmarkNME("ibug68", "box_sqrt_area")
        box = torch.tensor([[-1.0, -1.0, 1.0, 1.0]] * 2, dtype=torch.float64)
        metric.update(predicted * 100, target_px * 100, box, visible=~located, located=located)
        faces = metric.per_face(predicted * 100, target_px * 100, box, located=located)[0]
        return metric.compute(), faces

    (values, faces), (moved_values, moved_faces) = nme(target), nme(moved)
    assert torch.equal(faces, moved_faces) and values["nme"] == moved_values["nme"]
    assert values["points_without_position"] == 3
    # The three unlocated points were flagged "occluded" here too: no occluded NME counts them.
    assert values["nme_occluded"] == moved_values["nme_occluded"]
    logits = torch.randn(2, 68, generator=generator)
    changed = logits.clone()
    changed[0, :3] = 50.0
    has = torch.tensor([True, True])
    assert visibility_supervision(logits, located, has, located) == visibility_supervision(
        changed, located, has, located
    )


def test_a_batch_carries_located_only_where_some_point_has_no_position():
    from odn_lightning.datatypes import collate_samples

    def sample(located):
        return {"landmarks": torch.zeros(3, 2), "located": torch.tensor(located)}

    assert "located" not in collate_samples([sample([True] * 3), sample([True] * 3)])
    batch = collate_samples([sample([True] * 3), sample([False, True, True])])
    assert batch["located"].tolist() == [[True] * 3, [False, True, True]]
