"""The crop frame: crops map landmarks exactly, invert exactly, and the normalised frame's edges."""

from __future__ import annotations

import numpy as np
import pytest

from odn_lightning.crop import (
    apply_matrix,
    crop_matrix,
    face_box,
    from_normalised,
    invert_matrix,
    to_normalised,
)


def test_crop_centres_the_box_with_margin():
    box = np.array([40.0, 60.0, 140.0, 120.0])  # 100 wide, 60 tall
    matrix = crop_matrix(box, 200, margin=1.0)  # side 200 px: one original pixel per crop pixel
    np.testing.assert_allclose(matrix[:, :2], np.eye(2))
    centre = apply_matrix(matrix, np.array([[90.0, 90.0]]))
    np.testing.assert_allclose(centre, [[99.5, 99.5]])  # the crop's centre, between pixels 99 and 100


def test_crop_and_inverse_round_trip_within_half_a_pixel():
    rng = np.random.default_rng(0)
    points = rng.uniform(50, 400, size=(68, 2))
    matrix = crop_matrix(face_box(points), 224, 0.25)
    crop_points = apply_matrix(matrix, points)
    normalised = to_normalised(crop_points, 224)
    assert np.abs(normalised).max() < 1.0
    back = apply_matrix(invert_matrix(matrix), from_normalised(normalised, 224))
    assert np.abs(back - points).max() < 0.5
    np.testing.assert_allclose(back, points, atol=1e-6)


def test_normalised_frame_edges():
    assert to_normalised(np.array([-0.5]), 10)[0] == pytest.approx(-1.0)
    assert to_normalised(np.array([9.5]), 10)[0] == pytest.approx(1.0)
