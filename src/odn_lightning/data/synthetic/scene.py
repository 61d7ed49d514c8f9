"""The state that the drawing steps of one face share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass
class Scene:
    """A face being drawn: projected points and the quantities the drawing steps share."""

    img: np.ndarray
    px: np.ndarray  # (NUM_HEAD_POINTS, 2) pixel coordinates of landmarks + extras
    depth: np.ndarray  # (NUM_HEAD_POINTS,) rotated z (towards the camera)
    rot: np.ndarray  # (3, 3) head rotation
    scale: float  # pixels per face unit
    up: np.ndarray  # image direction of the face's "up" (unit vector)
    skin: np.ndarray  # RGB float
    hair: np.ndarray
    light: np.ndarray  # 3D unit vector towards the light (camera frame)
    visible: np.ndarray  # (NUM_LANDMARKS,) landmark faces the camera
    facing: np.ndarray  # (NUM_LANDMARKS,) cosine between the landmark's surface normal and the view direction
    yaw: float
    points3: np.ndarray  # head points in the head frame (before rotation)
    to_px: Callable[[np.ndarray], np.ndarray]  # head-frame 3D points -> pixel coordinates
