"""Photometric effects: the lighting gradient across the head, then the camera's exposure, white
balance, blur and sensor noise.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .drawing import bounding_roi, noise_crop
from .profiles import SplitProfile
from .scene import Scene


def apply_lighting(sc: Scene, head_mask: np.ndarray, angle: float, strength: float) -> None:
    """A linear brightness gradient across the head, brighter towards the light."""
    roi = bounding_roi(head_mask)
    if roi is None:
        return
    ys, xs = roi
    centre = sc.px[[0, 16, 8, 27]].mean(0)
    k = strength * 0.5 / max(sc.scale, 1.0) * 128
    gx = (np.arange(xs.start, xs.stop, dtype=np.float32) - centre[0]) * (k * math.cos(angle))
    gy = (np.arange(ys.start, ys.stop, dtype=np.float32) - centre[1]) * (k * math.sin(angle)) + 128
    # the factor in fixed point (128 = 1.0), left at 1.0 outside the head
    factor = np.clip(gy[:, None] + gx[None, :], 38, 205).astype(np.uint8)
    factor[head_mask[ys, xs] == 0] = 128
    region = sc.img[ys, xs]
    cv2.multiply(region, cv2.cvtColor(factor, cv2.COLOR_GRAY2RGB), dst=region, scale=1 / 128)


def apply_camera(rng: np.random.Generator, prof: SplitProfile, img: np.ndarray) -> np.ndarray:
    """Exposure, white balance, blur and sensor noise."""
    gamma = rng.uniform(0.75, 1.3)
    contrast = rng.uniform(0.75, 1.2)
    gains = rng.uniform(0.88, 1.12, 3)
    v = np.arange(256) / 255.0
    lut = np.clip(((v**gamma)[:, None] * 255 - 128) * contrast + 128 + rng.uniform(-20, 20), 0, 255) * gains
    img = cv2.LUT(img, np.clip(lut, 0, 255).astype(np.uint8).reshape(256, 1, 3))
    if rng.random() < prof.blur_prob:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 1.4))
    sigma = rng.uniform(*prof.noise)
    h, w = img.shape[:2]
    img = cv2.addWeighted(img, 1.0, noise_crop(rng, h, w), sigma / 40.0, -128.0 * sigma / 40.0)
    if rng.random() < 0.05:
        img = cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    return img
