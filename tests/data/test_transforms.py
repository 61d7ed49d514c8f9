"""Crops map landmarks exactly, invert exactly, and keypoints follow the pixels through augmentation."""

from __future__ import annotations

import numpy as np
import pytest

from odn_lightning.data.transforms import (
    apply_matrix,
    crop_matrix,
    face_box,
    from_normalised,
    invert_matrix,
    jitter_matrix,
    to_normalised,
    warp_crop,
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


@pytest.mark.parametrize("seed", range(6))
def test_marked_pixel_follows_its_landmark_through_augmentation(seed):
    rng = np.random.default_rng(seed)
    image = np.zeros((300, 300, 3), dtype=np.uint8)
    point = rng.uniform(100, 200, size=(1, 2))
    x, y = np.round(point[0]).astype(int)
    image[y - 2 : y + 3, x - 2 : x + 3] = 255  # a 5x5 mark centred on the landmark's pixel
    point = np.array([[x, y]], dtype=np.float64)
    box = np.array([80.0, 80.0, 220.0, 220.0])
    jitter, _ = jitter_matrix(rng, 128, rotation=30, scale=0.2, translation=0.1, flip=True)
    matrix = (jitter @ np.vstack([crop_matrix(box, 128, 0.2), [0, 0, 1]]))[:2]
    crop = warp_crop(image, matrix, 128)
    ys, xs = np.nonzero(crop[..., 0] > 0)
    weights = crop[ys, xs, 0].astype(np.float64)
    mark = np.array([(xs * weights).sum(), (ys * weights).sum()]) / weights.sum()
    np.testing.assert_allclose(mark, apply_matrix(matrix, point)[0], atol=0.35)
