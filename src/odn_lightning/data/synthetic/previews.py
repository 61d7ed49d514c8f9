"""Pictures of synthetic faces for inspection: landmarks coloured by occlusion, and contact sheets."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from .drawing import SUBPIXEL_ONE, SUBPIXEL_SHIFT, fixed_point
from .render import SyntheticFace

# RGB by occlusion bits: visible, occluded by an object, self-occluded, both.
OCCLUSION_COLOURS = {0: (0, 255, 0), 1: (255, 0, 0), 2: (60, 120, 255), 3: (255, 0, 255)}


def draw_landmarks(face: SyntheticFace, radius: int = 2) -> np.ndarray:
    """A copy of the face image with its landmarks: green visible, red occluded by an object,
    blue self-occluded, magenta both; the occluder mask is tinted."""
    img = face.image.copy()
    tint = face.mask > 0
    img[tint] = (img[tint] * 0.6 + np.array([0, 0, 120]) * 0.4).astype(np.uint8)
    for (x, y), flag in zip(fixed_point(face.landmarks), face.occlusion, strict=True):
        cv2.circle(
            img,
            (int(x), int(y)),
            radius * SUBPIXEL_ONE,
            OCCLUSION_COLOURS[int(flag)],
            -1,
            cv2.LINE_AA,
            SUBPIXEL_SHIFT,
        )
    return img


def contact_sheet(faces: Sequence[SyntheticFace], columns: int = 4, annotate: bool = True) -> np.ndarray:
    """Faces tiled in a grid (RGB), with landmarks drawn when `annotate`."""
    # Imported here: plots loads torch and matplotlib, which generating faces (and its spawned
    # workers, which import this package) does not need.
    from ...evaluation.plots import tile_images

    return tile_images([draw_landmarks(f) if annotate else f.image for f in faces], columns)
