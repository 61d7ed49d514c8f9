"""The 3D mean face: the 68 landmarks with their surface normals, the non-landmark head points
(cheeks, jaw back, nose sides, ears, hairline) and the skull that hair and hairline lie on.
"""

from __future__ import annotations

import math

import numpy as np

from ...schemes import IBUG68

NUM_LANDMARKS = IBUG68.num_landmarks

# The 3D template, in a head-centred frame in "face units" (the jaw is ~1.7 wide): x towards the
# image's right, y down, z towards the camera. Per landmark of the image-left half and the centre
# line: (x, y, z, lateral normal angle, vertical normal angle); the normal angles (degrees) say where
# the surface faces (lateral > 0: towards +x, vertical > 0: downwards) and decide self-occlusion.
_HALF_TEMPLATE = {
    # jaw, from the right temple down to the chin
    0: (-0.86, -0.22, 0.10, -62, 0),
    1: (-0.85, -0.02, 0.12, -58, 5),
    2: (-0.82, 0.18, 0.17, -54, 10),
    3: (-0.77, 0.37, 0.25, -49, 15),
    4: (-0.68, 0.55, 0.36, -43, 22),
    5: (-0.55, 0.70, 0.48, -35, 30),
    6: (-0.40, 0.80, 0.60, -25, 38),
    7: (-0.21, 0.865, 0.68, -13, 42),
    8: (0.00, 0.90, 0.72, 0, 45),
    # right brow, outer to inner (upper edge of the brow)
    17: (-0.74, -0.56, 0.42, -45, -15),
    18: (-0.61, -0.65, 0.56, -35, -15),
    19: (-0.46, -0.68, 0.66, -22, -15),
    20: (-0.31, -0.66, 0.73, -12, -15),
    21: (-0.16, -0.61, 0.78, -5, -15),
    # nose bridge (top to tip) and lower nose
    27: (0.00, -0.40, 0.80, 0, -20),
    28: (0.00, -0.25, 0.90, 0, -10),
    29: (0.00, -0.10, 1.00, 0, 0),
    30: (0.00, 0.05, 1.12, 0, 20),
    31: (-0.17, 0.13, 0.80, -55, 20),
    32: (-0.09, 0.16, 0.88, -30, 45),
    33: (0.00, 0.18, 0.92, 0, 55),
    # right eye: outer corner, upper lid, inner corner, lower lid
    36: (-0.62, -0.33, 0.55, -35, 0),
    37: (-0.51, -0.39, 0.64, -25, -8),
    38: (-0.35, -0.40, 0.66, -10, -8),
    39: (-0.23, -0.33, 0.64, 10, 0),
    40: (-0.35, -0.29, 0.65, -10, 5),
    41: (-0.51, -0.29, 0.63, -25, 5),
    # outer lips
    48: (-0.31, 0.45, 0.70, -40, 0),
    49: (-0.19, 0.39, 0.83, -28, -10),
    50: (-0.07, 0.345, 0.90, -10, -15),
    51: (0.00, 0.36, 0.91, 0, -15),
    57: (0.00, 0.575, 0.87, 0, 15),
    58: (-0.10, 0.565, 0.85, -12, 15),
    59: (-0.21, 0.525, 0.80, -28, 10),
    # inner lips
    60: (-0.27, 0.45, 0.72, -35, 0),
    61: (-0.09, 0.44, 0.86, -12, 0),
    62: (0.00, 0.445, 0.88, 0, 0),
    66: (0.00, 0.455, 0.87, 0, 0),
    67: (-0.09, 0.455, 0.85, -12, 0),
}

# Non-landmark points of the image-left half (mirrored for the right half): the face silhouette at
# large yaw is their convex hull together with the landmarks.
_HALF_EXTRAS = {
    "cheek": [(-0.76, -0.08, 0.40), (-0.70, 0.18, 0.45), (-0.56, 0.42, 0.56), (-0.58, -0.20, 0.50)],
    "jaw_back": [(-0.88, -0.28, -0.20), (-0.86, 0.02, -0.24), (-0.80, 0.32, -0.22), (-0.70, 0.52, -0.10)],
    "nose_root": [(-0.10, -0.36, 0.76)],
    "alar_top": [(-0.16, 0.00, 0.80)],
    "nostril": [(-0.085, 0.145, 0.86)],
}
# The skull ellipsoid (centre, radii); hair and the hairline lie on it.
SKULL_CENTRE = np.array([0.0, -0.25, -0.15])
SKULL_RADII = np.array([0.90, 1.05, 1.05])
HEAD_PIVOT = np.array([0.0, 0.25, -0.15])  # the head turns about the top of the neck
NUM_HAIRLINE = 13
FLIP = IBUG68.flip_permutation

R_EYE = np.arange(36, 42)
L_EYE = np.arange(42, 48)
JAW = np.arange(0, 17)


def _build_template() -> tuple[np.ndarray, np.ndarray]:
    points = np.full((NUM_LANDMARKS, 3), np.nan)
    normals = np.full((NUM_LANDMARKS, 3), np.nan)
    for i, (x, y, z, lateral, vertical) in _HALF_TEMPLATE.items():
        a, b = math.radians(lateral), math.radians(vertical)
        for j, sign in ((i, 1.0), (FLIP[i], -1.0)):
            points[j] = (sign * x if j != i else x, y, z)
            normals[j] = (
                math.sin(a) * math.cos(b) * (sign if j != i else 1.0),
                math.sin(b),
                math.cos(a) * math.cos(b),
            )
    assert not np.isnan(points).any(), "template misses landmarks"
    return points, normals / np.linalg.norm(normals, axis=1, keepdims=True)


def _build_extras() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Extras as one array: for each group, image-left points then their mirrors."""
    rows, index = [], {}
    start = NUM_LANDMARKS
    for name, half in _HALF_EXTRAS.items():
        half = np.asarray(half, dtype=np.float64)
        mirrored = half * [-1.0, 1.0, 1.0]
        rows += [half, mirrored]
        index[name] = np.arange(start, start + 2 * len(half)).reshape(2, len(half))  # [side, k]
        start += 2 * len(half)
    # Ears: a ring in the y-z plane, flaring outwards at the back.
    t = np.linspace(0, 2 * np.pi, 10, endpoint=False)
    ear = np.stack(
        [-(0.88 + 0.08 * (0.5 - 0.5 * np.sin(t))), -0.12 + 0.21 * np.cos(t), -0.12 + 0.11 * np.sin(t)], 1
    )
    rows += [ear, ear * [-1.0, 1.0, 1.0]]
    index["ear"] = np.arange(start, start + 20).reshape(2, 10)
    start += 20
    index["hairline"] = np.arange(start, start + NUM_HAIRLINE)
    return np.concatenate(rows), index


TEMPLATE, NORMALS = _build_template()
EXTRAS, EXTRA_INDEX = _build_extras()
NUM_HEAD_POINTS = NUM_LANDMARKS + len(EXTRAS) + NUM_HAIRLINE


def _fibonacci_sphere(n: int) -> np.ndarray:
    i = np.arange(n) + 0.5
    y = 1 - 2 * i / n
    r = np.sqrt(1 - y * y)
    phi = np.pi * (3 - np.sqrt(5)) * i
    return np.stack([r * np.sin(phi), y, r * np.cos(phi)], 1)


SPHERE = _fibonacci_sphere(160)
SPHERE_AZIMUTH = np.degrees(np.arctan2(SPHERE[:, 0], SPHERE[:, 2]))  # 0 at the face, +-180 at the back
