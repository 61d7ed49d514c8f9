"""A marked pixel follows its landmark through the augmented crop warp."""

from __future__ import annotations

import numpy as np
import pytest

from odn_lightning.crop import apply_matrix, crop_matrix
from odn_lightning.data.transforms import jitter_matrix, warp_crop


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
