"""The crop frame: where a face's square crop sits in its photograph, and the exact way back.

Every layer uses it: the dataset cuts crops with it, the module maps predictions back to the
original pixels the benchmarks measure errors in, and the reports draw in it.

Coordinates: landmarks in pixels are 0-based with pixel centres on integers (OpenCV's convention);
in the crop they are normalised to [-1, 1], -1 and +1 being the crop's outer edges. A crop matrix is
the 2x3 affine map from original pixels to crop pixels.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch


def face_box(landmarks: np.ndarray) -> np.ndarray:
    """Tight box [x0, y0, x1, y1] around the landmarks."""
    return np.concatenate([landmarks.min(axis=0), landmarks.max(axis=0)]).astype(np.float64)


def crop_matrix(box: np.ndarray, image_size: int, margin: float) -> np.ndarray:
    """2x3 matrix mapping original pixels to a square crop of side `image_size` around `box`
    enlarged by `margin`."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * (1.0 + margin)
    if side <= 0:
        raise ValueError(f"degenerate face box {box.tolist()}")
    scale = image_size / side
    # Continuous coordinates (pixel i spans [i, i+1)) of the crop's top-left corner.
    cx, cy = (x0 + x1) / 2 + 0.5, (y0 + y1) / 2 + 0.5
    left, top = cx - side / 2, cy - side / 2
    return np.array(
        [[scale, 0.0, (0.5 - left) * scale - 0.5], [0.0, scale, (0.5 - top) * scale - 0.5]],
        dtype=np.float64,
    )


def apply_matrix(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def invert_matrix(matrix: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(matrix)


def to_normalised(points_px: np.ndarray, image_size: int) -> np.ndarray:
    """Crop pixels -> the crop's [-1, 1] frame."""
    return (2.0 * points_px + 1.0) / image_size - 1.0


def from_normalised(points: np.ndarray, image_size: int) -> np.ndarray:
    """The crop's [-1, 1] frame -> crop pixels (NumPy arrays or tensors)."""
    return ((points + 1.0) * image_size - 1.0) / 2.0


def crop_to_original(points: torch.Tensor, matrix: torch.Tensor, image_size: int) -> torch.Tensor:
    """Batched: points (B, L, 2) normalised in the crop -> original pixels, by each face's crop
    matrix (B, 2, 3): the exact inverse of the crop."""
    crop_px = from_normalised(points.to(torch.float64), image_size)
    matrix = matrix.to(torch.float64)
    linear, offset = matrix[:, :, :2], matrix[:, :, 2]
    return torch.linalg.solve(linear, (crop_px - offset[:, None, :]).transpose(1, 2)).transpose(1, 2)
