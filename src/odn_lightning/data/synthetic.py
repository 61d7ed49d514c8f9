"""Procedural synthetic faces with the 68 iBUG landmarks, written in the 300W on-disk layout.

The real 300W benchmark needs a licensed manual download; these faces let a fresh clone train and
evaluate a landmark detector, occlusion robustness included. Each face is a hand-written 3D mean face
(68 landmarks plus cheek, skull, hairline, ear and neck points) with random shape and expression,
rotated by yaw/pitch/roll, projected with a mild perspective and drawn with OpenCV over a cluttered
background: skin, hair, brows, eyes, nose, lips and jaw line sit where their landmarks are. Occluders
(glasses, hands, face masks, textured shapes, hair locks) are drawn on top and recorded in a mask.

Conventions (as in 300W): the subject's right side appears on the image's left, so in a frontal face
point 36 (right eye outer corner) has a smaller x than 45 and jaw point 0 a smaller x than 16.
Pose angles are degrees: positive yaw turns the face towards the image's right (the subject turns to
their left), hiding the image-right side (jaw 9-16, eye 42-47); negative yaw turns it towards the
image's left. Positive pitch looks up; positive roll rotates the face clockwise in the image.

Occlusion flags per landmark (`.occ`, see `readers.py`): bit 1 (OCCLUDED_BY_OBJECT) is the occluder
mask at the landmark's rounded pixel (0 for points outside the image); bit 2 (SELF_OCCLUDED) marks
points whose surface faces away from the camera after rotation, or that hide behind the nose.

Profiles (`SPLIT_PROFILES`, one per split):
- `train`, `val`: |yaw| <= 70 (normal, sd 25), pitch sd 8 (<= 20), roll sd 10 (<= 25), varied
  expressions, 0/1/2 occluders with probabilities 0.4/0.4/0.2, faces 40-70% of the image width.
  About 15% of the points are covered by an occluder on average.
- `common`: |yaw| <= 30 (sd 12), |pitch| <= 15, |roll| <= 15, mild expressions, one small occluder
  (clear glasses, a small shape or a lock of hair) with probability 0.25: under 1% of points covered.
- `challenging`: 70% of faces with |yaw| in 40-70 degrees, pitch up to 30, roll up to 40, strong
  expressions, harsh lighting, more noise and blur, 1-3 large occluders (hands, face masks, mostly
  sunglasses, big shapes, hair): ~40% of the points covered on average, >= 15% in ~80% of the faces.
  The landmark box may leave the image by up to 6% of its size (other profiles keep it inside).

File layout under `root` (written by `ensure_synthetic`):
    manifest.json                    {format_version, seed, image_size, splits: {name: count}}
    <split>/<split>_<i:05d>.jpg      RGB image, JPEG quality 95
    <split>/<split>_<i:05d>.pts      68 landmarks, 300W format (1-based in the file)
    <split>/<split>_<i:05d>.occ      68 occlusion bit masks, one per line
    <split>/masks/<split>_<i:05d>.png  uint8 occluder mask, 255 where an occluder covers the pixel

Face i of split s is a pure function of (seed, s, i, image_size): its random generator is seeded by
`np.random.SeedSequence([seed, stable_hash(s), i])`, so generation is order- and process-independent.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from .pts import write_pts
from .readers import OCCLUDED_BY_OBJECT, SELF_OCCLUDED, mask_path_for, occlusion_path, write_occlusion
from .schemes import get_scheme

FORMAT_VERSION = 1
NUM_POINTS = 68
MANIFEST_NAME = "manifest.json"
OCCLUDER_KINDS = ("glasses", "hand", "mask", "shape", "hair")

_SHIFT = 4  # OpenCV sub-pixel drawing: coordinates are fixed point with 4 fractional bits
_ONE = 1 << _SHIFT


@dataclass
class SyntheticFace:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    landmarks: np.ndarray  # (68, 2) float32, 0-based pixel coordinates
    occlusion: np.ndarray  # (68,) uint8 bit mask: 1 occluder, 2 self-occluded, 3 both
    mask: np.ndarray  # (H, W) uint8, 255 where an occluder covers the pixel
    pose: tuple[float, float, float]  # yaw, pitch, roll in degrees
    occluders: list[str]  # kinds drawn, e.g. ["glasses", "hand"]


@dataclass(frozen=True)
class SplitProfile:
    """Sampling ranges of one split (angles in degrees)."""

    yaw_sd: float
    yaw_max: float
    extreme_yaw_prob: float  # probability of drawing |yaw| uniformly from `extreme_yaw` instead
    extreme_yaw: tuple[float, float]
    pitch_sd: float
    pitch_max: float
    roll_sd: float
    roll_max: float
    expression: float  # 0 neutral .. 1 strong expressions
    occluder_counts: tuple[float, ...]  # probabilities of 0, 1, 2, ... occluders
    occluder_kinds: tuple[tuple[str, float], ...]  # (kind, relative weight)
    occluder_size: float  # size multiplier of hands, shapes and hair locks
    sunglasses_prob: float
    face_width: tuple[float, float]  # frontal jaw width as a fraction of the image width
    cut: float  # how far the landmark box may leave the image, as a fraction of its size
    light: tuple[float, float]  # range of the lighting gradient strength across the head
    noise: tuple[float, float]  # range of the sensor noise standard deviation (grey levels)
    blur_prob: float


_TRAIN = SplitProfile(
    yaw_sd=25.0, yaw_max=70.0, extreme_yaw_prob=0.0, extreme_yaw=(40.0, 70.0),
    pitch_sd=8.0, pitch_max=20.0, roll_sd=10.0, roll_max=25.0, expression=0.7,
    occluder_counts=(0.4, 0.4, 0.2),
    occluder_kinds=(("glasses", 0.22), ("hand", 0.2), ("mask", 0.15), ("shape", 0.3), ("hair", 0.13)),
    occluder_size=1.0, sunglasses_prob=0.35, face_width=(0.4, 0.7), cut=0.0,
    light=(0.1, 0.6), noise=(1.0, 7.0), blur_prob=0.3,
)  # fmt: skip

SPLIT_PROFILES: dict[str, SplitProfile] = {
    "train": _TRAIN,
    "val": _TRAIN,
    "common": SplitProfile(
        yaw_sd=12.0, yaw_max=30.0, extreme_yaw_prob=0.0, extreme_yaw=(0.0, 30.0),
        pitch_sd=6.0, pitch_max=15.0, roll_sd=6.0, roll_max=15.0, expression=0.35,
        occluder_counts=(0.75, 0.25),
        occluder_kinds=(("glasses", 0.4), ("shape", 0.45), ("hair", 0.15)),
        occluder_size=0.55, sunglasses_prob=0.0, face_width=(0.45, 0.65), cut=0.0,
        light=(0.05, 0.4), noise=(1.0, 4.0), blur_prob=0.2,
    ),
    "challenging": SplitProfile(
        yaw_sd=25.0, yaw_max=70.0, extreme_yaw_prob=0.7, extreme_yaw=(40.0, 70.0),
        pitch_sd=12.0, pitch_max=30.0, roll_sd=18.0, roll_max=40.0, expression=1.0,
        occluder_counts=(0.0, 0.35, 0.4, 0.25),
        occluder_kinds=(("glasses", 0.15), ("hand", 0.3), ("mask", 0.25), ("shape", 0.2), ("hair", 0.1)),
        occluder_size=1.25, sunglasses_prob=0.7, face_width=(0.4, 0.72), cut=0.06,
        light=(0.4, 0.9), noise=(3.0, 12.0), blur_prob=0.5,
    ),
}  # fmt: skip


# ----------------------------------------------------------------------------------------------
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
_SKULL_CENTRE = np.array([0.0, -0.25, -0.15])
_SKULL_RADII = np.array([0.90, 1.05, 1.05])
_HEAD_PIVOT = np.array([0.0, 0.25, -0.15])  # the head turns about the top of the neck
_NUM_HAIRLINE = 13
_FLIP = get_scheme("ibug68").flip_permutation

R_EYE = np.arange(36, 42)
L_EYE = np.arange(42, 48)
JAW = np.arange(0, 17)


def _build_template() -> tuple[np.ndarray, np.ndarray]:
    points = np.full((NUM_POINTS, 3), np.nan)
    normals = np.full((NUM_POINTS, 3), np.nan)
    for i, (x, y, z, lateral, vertical) in _HALF_TEMPLATE.items():
        a, b = math.radians(lateral), math.radians(vertical)
        for j, sign in ((i, 1.0), (_FLIP[i], -1.0)):
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
    start = NUM_POINTS
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
    index["hairline"] = np.arange(start, start + _NUM_HAIRLINE)
    return np.concatenate(rows), index


_TEMPLATE, _NORMALS = _build_template()
_EXTRAS, _IDX = _build_extras()
_NUM_HEAD_POINTS = NUM_POINTS + len(_EXTRAS) + _NUM_HAIRLINE


def _fibonacci_sphere(n: int) -> np.ndarray:
    i = np.arange(n) + 0.5
    y = 1 - 2 * i / n
    r = np.sqrt(1 - y * y)
    phi = np.pi * (3 - np.sqrt(5)) * i
    return np.stack([r * np.sin(phi), y, r * np.cos(phi)], 1)


_SPHERE = _fibonacci_sphere(160)
_SPHERE_AZIMUTH = np.degrees(np.arctan2(_SPHERE[:, 0], _SPHERE[:, 2]))  # 0 at the face, +-180 at the back

# ----------------------------------------------------------------------------------------------
# Colours (RGB)
_SKIN_TONES = np.array(
    [
        (255, 224, 200),
        (241, 194, 167),
        (224, 172, 138),
        (198, 134, 100),
        (161, 102, 74),
        (120, 75, 52),
        (84, 54, 40),
    ],
    dtype=np.float64,
)
_HAIR_COLOURS = np.array(
    [(22, 18, 16), (45, 32, 25), (80, 55, 35), (120, 85, 50), (190, 155, 95), (140, 60, 30), (150, 148, 145),
     (215, 210, 205)], dtype=np.float64,
)  # fmt: skip
_IRIS_COLOURS = np.array(
    [(85, 52, 30), (45, 32, 25), (70, 110, 160), (80, 115, 75), (125, 95, 50), (115, 125, 135)],
    dtype=np.float64,
)


def stable_hash(name: str) -> int:
    """A process-independent 64-bit hash of a split name (Python's `hash()` is salted per process)."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "little")


def face_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of face `index` of `split`: a pure function of its arguments."""
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence([int(seed), stable_hash(split), int(index)]))
    )


def _profile(profile: str | SplitProfile) -> SplitProfile:
    if isinstance(profile, SplitProfile):
        return profile
    try:
        return SPLIT_PROFILES[profile]
    except KeyError:
        raise ValueError(
            f"unknown synthetic profile/split '{profile}'; choose one of {sorted(SPLIT_PROFILES)}"
        ) from None


# ----------------------------------------------------------------------------------------------
# Small drawing helpers


def _fx(points: np.ndarray) -> np.ndarray:
    """Pixel coordinates -> OpenCV fixed point (int32), for drawing with shift=_SHIFT."""
    return np.rint(np.multiply(points, _ONE)).astype(np.int32)


def _col(colour) -> tuple[float, float, float]:
    """An OpenCV colour from an RGB triple, clipped to 0..255."""
    r, g, b = (float(v) for v in colour)
    return (min(max(r, 0.0), 255.0), min(max(g, 0.0), 255.0), min(max(b, 0.0), 255.0))


def _catmull_weights(n: int) -> np.ndarray:
    t = np.arange(n) / n
    t2, t3 = t * t, t * t * t
    return 0.5 * np.stack([-t3 + 2 * t2 - t, 3 * t3 - 5 * t2 + 2, -3 * t3 + 4 * t2 + t, t3 - t2], 1)


_CATMULL = {n: _catmull_weights(n) for n in (3, 4, 6)}


def _spline(points: np.ndarray, closed: bool = False, n: int = 4) -> np.ndarray:
    """A Catmull-Rom curve through `points` (M, 2), sampled `n` times per segment."""
    m = len(points)
    if closed:
        idx = (np.arange(m)[:, None] + np.arange(-1, 3)) % m
    else:
        idx = np.clip(np.arange(m - 1)[:, None] + np.arange(-1, 3), 0, m - 1)
    curve = np.einsum("tk,skd->std", _CATMULL[n], points[idx]).reshape(-1, 2)
    return curve if closed else np.vstack([curve, points[-1:]])


def _fill(img, poly, colour, aa: bool = True) -> None:
    cv2.fillPoly(img, [_fx(poly)], colour, cv2.LINE_AA if aa else cv2.LINE_8, _SHIFT)


def _line(img, poly, colour, thickness: float, closed: bool = False, aa: bool = True) -> None:
    cv2.polylines(
        img,
        [_fx(poly)],
        closed,
        colour,
        max(1, int(round(thickness))),
        cv2.LINE_AA if aa else cv2.LINE_8,
        _SHIFT,
    )


def _ellipse(img, centre, axes, angle: float, colour, aa: bool = True) -> None:
    cv2.ellipse(
        img, tuple(int(v) for v in _fx(centre)), tuple(max(1, int(v)) for v in _fx(axes)), float(angle), 0.0, 360.0,
        colour, -1, cv2.LINE_AA if aa else cv2.LINE_8, _SHIFT,
    )  # fmt: skip


def _hull(points: np.ndarray) -> np.ndarray:
    return cv2.convexHull(points.astype(np.float32)).reshape(-1, 2)


def _roi_of(mask: np.ndarray, pad: int = 0) -> tuple[slice, slice] | None:
    x, y, w, h = cv2.boundingRect(mask)
    if w == 0 or h == 0:
        return None
    H, W = mask.shape
    return slice(max(0, y - pad), min(H, y + h + pad)), slice(max(0, x - pad), min(W, x + w + pad))


_NOISE_BANK: np.ndarray | None = None


def _noise_bank() -> np.ndarray:
    """A fixed bank of Gaussian noise (mean 128, sd 40); faces crop it at random offsets."""
    global _NOISE_BANK
    if _NOISE_BANK is None:
        noise = np.random.default_rng(20190616).normal(128.0, 40.0, (512, 512, 3))
        _NOISE_BANK = np.clip(noise, 0, 255).astype(np.uint8)
    return _NOISE_BANK


def _noise_crop(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    bank = _noise_bank()
    if h > bank.shape[0] or w > bank.shape[1]:
        bank = np.tile(bank, (h // bank.shape[0] + 1, w // bank.shape[1] + 1, 1))
    y = int(rng.integers(0, bank.shape[0] - h + 1))
    x = int(rng.integers(0, bank.shape[1] - w + 1))
    return bank[y : y + h, x : x + w]


def _texture(rng: np.random.Generator, h: int, w: int, background: np.ndarray | None = None) -> np.ndarray:
    """A random (h, w, 3) texture: noisy colour, stripes, a checker board, or a crop of the background."""
    kind = rng.integers(0, 4) if background is not None else rng.integers(0, 3)
    c1, c2 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    if kind == 0:  # noisy colour blobs
        small = rng.uniform(0, 255, (3, 3, 3)).astype(np.uint8)
        base = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        amount = rng.uniform(0.2, 0.6)
        return cv2.addWeighted(base, 1.0, _noise_crop(rng, h, w), amount, -128 * amount)
    if kind in (1, 2):  # stripes or a checker board
        period = rng.uniform(4, 16)
        angle = rng.uniform(0, np.pi)
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        phase = (xs * math.cos(angle) + ys * math.sin(angle)) / period
        sel = (np.floor(phase) % 2).astype(bool)
        if kind == 2:
            phase2 = (-xs * math.sin(angle) + ys * math.cos(angle)) / period
            sel ^= (np.floor(phase2) % 2).astype(bool)
        out = np.empty((h, w, 3), np.uint8)
        out[:] = c1.astype(np.uint8)
        out[sel] = c2.astype(np.uint8)
        return out
    H, W = background.shape[:2]  # a crop of the background, so the occluder looks like scenery
    y = int(rng.integers(0, max(1, H - h + 1)))
    x = int(rng.integers(0, max(1, W - w + 1)))
    crop = background[y : y + h, x : x + w]
    if crop.shape[:2] != (h, w):
        crop = cv2.resize(crop, (w, h))
    return np.ascontiguousarray(crop[:, ::-1])


# ----------------------------------------------------------------------------------------------
# Geometry


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Rotation (x right, y down, z to the camera): yaw > 0 turns the nose to +x, pitch > 0 lifts it."""
    a, b, c = np.radians([yaw, pitch, roll])
    ry = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    rx = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return rz @ rx @ ry


def _sample_pose(rng: np.random.Generator, prof: SplitProfile) -> tuple[float, float, float]:
    if rng.random() < prof.extreme_yaw_prob:
        yaw = rng.uniform(*prof.extreme_yaw) * rng.choice([-1.0, 1.0])
    else:
        yaw = np.clip(rng.normal(0, prof.yaw_sd), -prof.yaw_max, prof.yaw_max)
    pitch = np.clip(rng.normal(0, prof.pitch_sd), -prof.pitch_max, prof.pitch_max)
    roll = np.clip(rng.normal(0, prof.roll_sd), -prof.roll_max, prof.roll_max)
    return float(yaw), float(pitch), float(roll)


def _clipped_normal(rng: np.random.Generator, mean: float, sd: float, size=None) -> np.ndarray | float:
    return np.clip(rng.normal(mean, sd, size), mean - 2.5 * sd, mean + 2.5 * sd)


@dataclass
class _Head:
    points: np.ndarray  # (_NUM_HEAD_POINTS, 3): landmarks, extras, hairline
    hair: np.ndarray  # (K, 3) hair/scalp volume points
    mouth_open: float
    brow_thickness: float
    eye_open: tuple[float, float]


def _build_head(rng: np.random.Generator, prof: SplitProfile) -> _Head:
    """Landmarks and extras of one random face: shape variation, expression, hair."""
    e = prof.expression
    lm = _TEMPLATE.copy()
    extras = _EXTRAS.copy()
    g = np.clip(rng.normal(0, 1, 24), -2.5, 2.5)  # one batch of standard normals for shape and expression

    # Eyes: size, spacing, height and openness (a blink now and then).
    eye_size = 1 + 0.1 * g[0]
    blink = rng.random() < 0.05
    eye_open = []
    for k, (eye, side) in enumerate(((R_EYE, -1.0), (L_EYE, 1.0))):
        centre = lm[eye].mean(0)
        lm[eye, :2] = centre[:2] + (lm[eye, :2] - centre[:2]) * eye_size * (1 + 0.03 * g[1 + k])
        lm[eye, 0] += side * 0.03 * g[3]
        lm[eye, 1] += 0.02 * g[4]
        openness = 0.08 if blink else float(np.clip(1 + 0.25 * e * g[5] + 0.05 * g[6 + k], 0.35, 1.5))
        eye_open.append(openness)
        corner_y = 0.5 * (lm[eye[0], 1] + lm[eye[3], 1])
        lids = eye[[1, 2, 4, 5]]
        lm[lids, 1] = corner_y + (lm[lids, 1] - corner_y) * openness

    # Brows: height, raise (both) and frown (inner ends down and together).
    brows = np.arange(17, 27)
    lm[brows, 1] += 0.025 * g[8] - 0.06 * e * np.clip(g[9], -1.5, 1.5)
    frown = max(0.0, e * g[10]) * 0.04
    for i, side in ((20, -1), (21, -1), (22, 1), (23, 1)):
        w = 1.0 if i in (21, 22) else 0.5
        lm[i, 1] += frown * w
        lm[i, 0] -= side * 0.5 * frown * w

    # Nose: length (about the bridge top), width and protrusion.
    nose = np.arange(28, 36)
    lm[nose, 1] = lm[27, 1] + (lm[nose, 1] - lm[27, 1]) * (1 + 0.08 * g[11])
    lm[31:36, 0] *= 1 + 0.12 * g[12]
    protrusion = 1 + 0.12 * g[13]
    lm[27:36, 2] = 0.7 + (lm[27:36, 2] - 0.7) * protrusion
    side_idx = (
        _IDX["nose_root"].ravel().tolist()
        + _IDX["alar_top"].ravel().tolist()
        + _IDX["nostril"].ravel().tolist()
    )
    extras[np.array(side_idx) - NUM_POINTS, 2] = (
        0.7 + (extras[np.array(side_idx) - NUM_POINTS, 2] - 0.7) * protrusion
    )
    nostril = _IDX["nostril"].ravel() - NUM_POINTS
    extras[nostril, 0] *= 1 + 0.12 * g[12]

    # Mouth: width, height, lip thickness, then the expression (opening, smile).
    mouth = np.arange(48, 68)
    lm[mouth, 0] *= 1 + 0.09 * g[14]
    lm[mouth, 1] += 0.025 * g[15]
    lips = 1 + 0.18 * g[16]
    mid = 0.5 * (lm[62, 1] + lm[66, 1])
    upper, lower = [49, 50, 51, 52, 53], [55, 56, 57, 58, 59]
    lm[upper, 1] = mid + (lm[upper, 1] - mid) * lips
    lm[lower, 1] = mid + (lm[lower, 1] - mid) * lips
    mouth_open = float(np.clip(rng.exponential(0.35 * e) if rng.random() < 0.55 * e + 0.1 else 0.0, 0.0, 1.0))
    if mouth_open > 0:
        drop = {65: 0.85, 66: 1.0, 67: 0.85, 55: 0.7, 56: 0.9, 57: 1.0, 58: 0.9, 59: 0.7, 48: 0.2, 54: 0.2,
                60: 0.25, 64: 0.25}  # fmt: skip
        for i, w in drop.items():
            lm[i, 1] += 0.24 * mouth_open * w
        lm[[61, 62, 63], 1] -= 0.02 * mouth_open
        chin_w = np.array([0.2, 0.45, 0.7, 0.9, 1.0, 0.9, 0.7, 0.45, 0.2])
        lm[4:13, 1] += 0.5 * 0.24 * mouth_open * chin_w
    smile = float(np.clip(e * g[17] * 0.7 + 0.15, -0.5, 1.0))
    for i, dy, dx in ((48, 0.07, 0.05), (60, 0.06, 0.04), (49, 0.03, 0.02), (59, 0.03, 0.02), (61, 0.01, 0.0),
                      (67, 0.01, 0.0)):  # fmt: skip
        j = _FLIP[i]
        lm[[i, j], 1] -= dy * smile
        lm[i, 0] -= dx * smile
        lm[j, 0] += dx * smile
    lm[[40, 41, 46, 47], 1] -= 0.012 * max(smile, 0.0)  # smiling eyes squint a little

    # Jaw: width of the lower face and chin length.
    jaw_w = 1 + 0.07 * g[18]
    weights = np.array([0, 0.2, 0.5, 0.8, 1, 1, 1, 0.8, 0, 0.8, 1, 1, 1, 0.8, 0.5, 0.2, 0])
    lm[JAW, 0] *= 1 + (jaw_w - 1) * weights
    chin = 0.04 * g[19]
    lm[3:14, 1] += chin * np.array([0.2, 0.5, 0.8, 1, 1, 1, 1, 1, 0.8, 0.5, 0.2])
    lower_cheek = _IDX["cheek"][:, 1:3].ravel() - NUM_POINTS
    extras[lower_cheek, 0] *= 1 + (jaw_w - 1) * 0.6
    lower_back = _IDX["jaw_back"][:, 2:].ravel() - NUM_POINTS
    extras[lower_back, 0] *= jaw_w
    extras[lower_back, 1] += chin * 0.5

    lm[:, :2] += rng.normal(0, 0.006, (NUM_POINTS, 2))
    # Lids and inner lips touch at most (closed eyes, closed mouth); the jitter must not cross them.
    upper, lower = [37, 38, 43, 44, 61, 62, 63], [41, 40, 47, 46, 67, 66, 65]
    lm[lower, 1] = np.maximum(lm[lower, 1], lm[upper, 1])

    # Hairline on the skull, from one temple over the forehead to the other.
    y_front = rng.uniform(-1.05, -0.82)
    y_side = rng.uniform(-0.45, -0.25)
    psi = np.radians(np.linspace(-105, 105, _NUM_HAIRLINE))
    hy = y_front + (y_side - y_front) * (np.abs(psi) / np.radians(105)) ** 1.6
    f = np.sqrt(np.clip(1 - ((hy - _SKULL_CENTRE[1]) / _SKULL_RADII[1]) ** 2, 0.05, 1))
    hairline = np.stack(
        [_SKULL_RADII[0] * f * np.sin(psi), hy, _SKULL_CENTRE[2] + _SKULL_RADII[2] * f * np.cos(psi)], 1
    )

    # Hair volume: skull points above the hairline (and down to the nape at the back).
    volume = rng.uniform(0.02, 0.14)
    nape = rng.uniform(-0.1, 0.35)
    sphere_y = _SKULL_CENTRE[1] + _SKULL_RADII[1] * _SPHERE[:, 1]
    line_y = np.interp(
        np.abs(_SPHERE_AZIMUTH), np.degrees(np.abs(psi[_NUM_HAIRLINE // 2 :])), hy[_NUM_HAIRLINE // 2 :]
    )
    keep = np.where(np.abs(_SPHERE_AZIMUTH) <= 105, sphere_y < line_y - 0.02, sphere_y < nape)
    scale = 1 + volume * (0.6 + 0.4 * np.clip(-_SPHERE[keep, 1], 0, 1))
    hair = _SKULL_CENTRE + _SKULL_RADII * _SPHERE[keep] * scale[:, None]
    if rng.random() < 0.3:  # long hair falling behind the shoulders
        length = rng.uniform(0.6, 1.6)
        ys = np.linspace(0.0, length, 4)
        drape = [(sx * (0.95 + volume), y, z) for sx in (-1, 1) for y in ys for z in (-0.9, -0.25)]
        hair = np.vstack([hair, np.asarray(drape)])

    # Global proportions.
    scale3 = np.array([1 + 0.06 * g[20], 1 + 0.05 * g[21],
                       1 + 0.06 * g[22]])  # fmt: skip
    points = np.vstack([lm, extras, hairline]) * scale3
    return _Head(
        points, hair * scale3, mouth_open, float(rng.uniform(0.035, 0.07)), (eye_open[0], eye_open[1])
    )


# ----------------------------------------------------------------------------------------------
# Rendering


@dataclass
class _Scene:
    """A face being drawn: projected points and the quantities the drawing steps share."""

    img: np.ndarray
    px: np.ndarray  # (_NUM_HEAD_POINTS, 2) pixel coordinates of landmarks + extras
    depth: np.ndarray  # (_NUM_HEAD_POINTS,) rotated z (towards the camera)
    rot: np.ndarray  # (3, 3) head rotation
    scale: float  # pixels per face unit
    up: np.ndarray  # image direction of the face's "up" (unit vector)
    skin: np.ndarray  # RGB float
    hair: np.ndarray
    light: np.ndarray  # 3D unit vector towards the light (camera frame)
    visible: np.ndarray  # (68,) landmark faces the camera
    facing: np.ndarray  # (68,) cosine between the landmark's surface normal and the view direction
    yaw: float
    points3: np.ndarray  # head points in the head frame (before rotation)
    to_px: Callable[[np.ndarray], np.ndarray]  # head-frame 3D points -> pixel coordinates


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Random gradients plus clutter: shapes, lines and text in random colours."""
    k = int(rng.integers(2, 5))
    small = rng.uniform(0, 255, (k, k, 3))
    grey = small.mean(2, keepdims=True)
    small = grey + (small - grey) * rng.uniform(0.15, 1.0)  # from muted to saturated scenes
    img = cv2.resize(small.astype(np.uint8), (w, h), interpolation=cv2.INTER_CUBIC)
    n = int(rng.integers(6, 18))
    params = rng.random((n, 9))
    colours = rng.integers(0, 256, (n, 3))
    size = max(h, w)
    for p, c in zip(params, colours, strict=True):
        colour = (int(c[0]), int(c[1]), int(c[2]))
        kind = int(p[0] * 7)
        cx, cy = int(p[1] * w), int(p[2] * h)
        r = int(4 + p[3] * size * 0.3)
        if kind == 0:
            cv2.rectangle(img, (cx - r, cy - int(r * p[4])), (cx + r, cy + int(r * p[4])), colour, -1)
        elif kind == 1:
            cv2.circle(img, (cx, cy), r // 2, colour, -1, cv2.LINE_AA)
        elif kind == 2:
            cv2.ellipse(
                img, (cx, cy), (r, max(1, int(r * p[4]))), p[5] * 180, 0, 360, colour, -1, cv2.LINE_AA
            )
        elif kind == 3:
            end = (int(p[4] * w), int(p[5] * h))
            cv2.line(img, (cx, cy), end, colour, 1 + int(p[6] * size * 0.03), cv2.LINE_AA)
        elif kind == 4:
            angles = np.sort(rng.uniform(0, 2 * np.pi, 5))
            radii = r * (0.4 + 0.6 * rng.random(5))
            poly = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1)
            _fill(img, poly, colour)
        elif kind == 5:  # parallel lines: a striped panel
            step = 3 + int(p[4] * 10)
            dx = int((p[5] - 0.5) * r)
            for j in range(-r, r, step):
                cv2.line(img, (cx + j, cy - r), (cx + j + dx, cy + r), colour, 1 + int(p[6] * 3))
        else:
            text = "".join(chr(65 + int(v * 26)) for v in rng.random(int(2 + p[4] * 5)))
            cv2.putText(img, text, (cx - r, cy), cv2.FONT_HERSHEY_SIMPLEX, 0.3 + p[5] * size / 200, colour,
                        1 + int(p[6] * 3), cv2.LINE_AA)  # fmt: skip
    if rng.random() < 0.5:  # out-of-focus background, blurred at half resolution (cheaper)
        half = cv2.resize(img, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        half = cv2.GaussianBlur(half, (0, 0), rng.uniform(0.4, 1.3))
        img = cv2.resize(half, (w, h), interpolation=cv2.INTER_LINEAR)
    return img


def _sample_colours(rng: np.random.Generator) -> dict[str, np.ndarray]:
    t = rng.uniform(0, len(_SKIN_TONES) - 1)
    i = int(t)
    skin = _SKIN_TONES[i] + (_SKIN_TONES[min(i + 1, len(_SKIN_TONES) - 1)] - _SKIN_TONES[i]) * (t - i)
    skin = np.clip(skin * rng.uniform(0.9, 1.08) + rng.normal(0, 6, 3), 20, 255)
    if rng.random() < 0.08:  # bald or shaved: the scalp shows
        hair = skin * 0.9
    elif rng.random() < 0.05:  # dyed
        hair = rng.uniform(30, 230, 3)
    else:
        hair = _HAIR_COLOURS[rng.integers(len(_HAIR_COLOURS))] * rng.uniform(0.8, 1.15)
    lip = skin * np.array([0.86, 0.58, 0.58]) + np.array([18, 0, 6])
    if rng.random() < 0.15:  # lipstick
        lip = np.array([(170, 30, 50), (200, 80, 110), (110, 20, 35), (190, 90, 80)][rng.integers(4)], float)
    brow = np.minimum(hair, skin * 0.45) if rng.random() < 0.7 else hair * 0.8
    return {
        "skin": skin,
        "hair": np.clip(hair, 0, 255),
        "lip": np.clip(lip * rng.uniform(0.9, 1.1), 0, 255),
        "brow": np.clip(brow, 0, 255),
        "iris": _IRIS_COLOURS[rng.integers(len(_IRIS_COLOURS))] * rng.uniform(0.8, 1.2),
        "sclera": np.array([235.0, 230, 225]) * rng.uniform(0.85, 1.0),
        "clothes": rng.uniform(0, 255, 3),
    }


def _shade(normal: np.ndarray, light: np.ndarray) -> float:
    """Lambert shading relative to a surface facing the camera, a little darker (ambient occlusion)."""
    return 0.94 * (0.35 + 0.65 * max(0.0, float(normal @ light))) / (0.35 + 0.65 * max(0.0, float(light[2])))


def _draw_eye(sc: _Scene, eye: np.ndarray, colours, gaze: np.ndarray, openness: float) -> None:
    img, px = sc.img, sc.px
    pts = px[eye]
    outline = _spline(pts, closed=True, n=4)
    width = float(np.linalg.norm(pts[3] - pts[0]))
    skin = sc.skin
    # Socket shadow, then the eye white and iris clipped to the eye opening.
    centre = pts.mean(0)
    angle = math.degrees(math.atan2(pts[3, 1] - pts[0, 1], pts[3, 0] - pts[0, 0]))
    _ellipse(img, centre - sc.up * width * 0.1, (width * 0.6, width * 0.32), angle, _col(skin * 0.93))
    x0, y0 = np.floor(outline.min(0)).astype(int) - 2
    x1, y1 = np.ceil(outline.max(0)).astype(int) + 3
    H, W = img.shape[:2]
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, W), min(y1, H)
    if x1 - x0 > 1 and y1 - y0 > 1 and openness > 0.15:
        roi = img[y0:y1, x0:x1]
        local = outline - (x0, y0)
        m = np.zeros(roi.shape[:2], np.uint8)
        _fill(m, local, 255, aa=False)
        tmp = roi.copy()
        _fill(tmp, local, _col(colours["sclera"]))
        r = (
            0.21
            * float(np.linalg.norm(sc.px[eye[3]] - sc.px[eye[0]]))
            / max(0.35, abs(math.cos(math.radians(sc.yaw))))
        )
        r = min(r, 0.23 * width / max(0.35, abs(math.cos(math.radians(sc.yaw)))))
        squash = max(0.35, abs(math.cos(math.radians(sc.yaw))))
        iris_c = centre - (x0, y0) + gaze * (width * 0.18, width * 0.06)
        _ellipse(tmp, iris_c, (r * squash, r), angle, _col(colours["iris"]))
        _ellipse(tmp, iris_c, (r * squash * 0.45, r * 0.45), angle, (15.0, 12.0, 12.0))
        _ellipse(tmp, iris_c + (-r * 0.3, -r * 0.35), (r * 0.18, r * 0.18), 0, (250.0, 250.0, 250.0))
        np.copyto(roi, tmp, where=m[..., None] > 0)
    lid = max(1.0, width * 0.06)
    upper = _spline(pts[[0, 1, 2, 3]], n=4)
    lower = _spline(pts[[3, 4, 5, 0]], n=4)
    _line(img, upper - sc.up * width * 0.16 * openness, _col(skin * 0.72), max(1.0, lid * 0.5))  # lid crease
    _line(img, lower, _col(skin * 0.62), max(1.0, lid * 0.55))
    _line(img, upper, (28.0, 22.0, 20.0), lid)


def _draw_brow(sc: _Scene, brow: np.ndarray, colour, thickness: float) -> None:
    top = _spline(sc.px[brow], n=4)
    # thick near the inner end, tapering towards the tail (brow points run outer->inner for 17-21)
    profile = np.interp(np.linspace(0, 1, len(top)), [0, 0.3, 1], [0.45, 0.9, 1.0])
    if brow[0] > brow[-1]:
        profile = profile[::-1]
    bottom = top - sc.up * (thickness * sc.scale) * profile[:, None]
    _fill(sc.img, np.vstack([top, bottom[::-1]]), _col(colour))


def _draw_nose(sc: _Scene, colours) -> None:
    img, px, skin = sc.img, sc.px, sc.skin
    root, alar, nostril = _IDX["nose_root"][:, 0], _IDX["alar_top"][:, 0], _IDX["nostril"][:, 0]
    walls = []
    for side, wing, soft in ((0, 31, 32), (1, 35, 34)):
        poly = px[[27, 28, 29, 30, 33, soft, wing, alar[side], root[side]]]
        template_normal = np.array([-0.6 if side == 0 else 0.6, 0.1, 0.8])
        normal = sc.rot @ (template_normal / np.linalg.norm(template_normal))
        area = 0.5 * float(
            np.sum(poly[:, 0] * np.roll(poly[:, 1], -1) - np.roll(poly[:, 0], -1) * poly[:, 1])
        )
        facing = area > 0 if side == 0 else area < 0  # orientation of the frontal template polygon
        walls.append((float(sc.depth[[31, 35][side]]), side, poly, normal, facing))
    walls.sort()  # far wall first
    near_side = walls[-1][1]
    for _, _side, poly, normal, facing in walls:
        if facing:
            _fill(img, poly, _col(skin * _shade(normal, sc.light)))
    w = sc.scale
    # nostrils (facing down), the alar creases, the lower edge and a highlight on the tip
    for side, (wing, soft) in enumerate(((31, 32), (35, 34))):
        n = sc.rot @ np.array([0.3 * (1 if side else -1), 0.8, 0.5])
        if n[2] > -0.1:
            axis = px[soft] - px[wing]
            angle = math.degrees(math.atan2(axis[1], axis[0]))
            _ellipse(
                img,
                px[nostril[side]],
                (0.045 * w, 0.022 * w * max(0.3, n[2] + 0.3)),
                angle,
                _col(skin * 0.32),
            )
        if side == near_side or abs(sc.yaw) < 25:
            _line(img, _spline(px[[alar[side], wing, soft]], n=3), _col(skin * 0.62), 0.016 * w)
    _line(img, _spline(px[[32, 33, 34]], n=3), _col(skin * 0.7), 0.012 * w)
    if abs(sc.yaw) > 12:  # the nose profile against the far cheek
        _line(img, _spline(px[[27, 28, 29, 30, 33]], n=3), _col(skin * 0.72), 0.012 * w)
    toward = sc.light[:2] * 0.02 * w
    _ellipse(img, px[30] + toward - sc.up * 0.02 * w, (0.03 * w, 0.025 * w), 0, _col(skin * 1.08 + 4))
    _line(img, px[[28, 29]] + toward, _col(np.minimum(skin * 1.1 + 5, 255)), 0.02 * w)


def _draw_mouth(sc: _Scene, colours, mouth_open: float) -> None:
    img, px = sc.img, sc.px
    lip = colours["lip"]
    outer = _spline(px[48:60], closed=True, n=4)
    _fill(img, outer, _col(lip))
    upper_outer = _spline(px[48:55], n=4)
    upper_inner = _spline(px[[64, 63, 62, 61, 60]], n=4)
    _fill(img, np.vstack([upper_outer, upper_inner]), _col(lip * 0.82))
    inner = _spline(px[60:68], closed=True, n=4)
    _fill(img, inner, (55.0, 22.0, 25.0))
    if mouth_open > 0.08:
        top = _spline(px[[60, 61, 62, 63, 64]], n=4)
        bottom = _spline(px[[60, 67, 66, 65, 64]], n=4)
        teeth_edge = top + (bottom - top) * min(0.45, 0.05 / max(mouth_open * 0.24, 1e-3))
        _fill(img, np.vstack([top, teeth_edge[::-1]]), (225.0, 220.0, 205.0))
    _line(img, _spline(px[[60, 61, 62, 63, 64]], n=4), _col(lip * 0.45), max(1.0, 0.012 * sc.scale))
    highlight = 0.5 * (px[57] + px[66])
    _ellipse(img, highlight, (0.06 * sc.scale, 0.015 * sc.scale), 0, _col(np.minimum(lip * 1.18 + 10, 255)))


def _place(rng, prof, uv: np.ndarray, size: int, face_width_units: float) -> tuple[float, np.ndarray]:
    """Scale (pixels per unit) and offset so the face has the profile's width and fits the image."""
    scale = rng.uniform(*prof.face_width) * size / face_width_units
    lo, hi = uv.min(0), uv.max(0)
    margin = 0.03 * size
    box = (hi - lo) * scale
    fit = (size - 2 * margin) / max(box.max(), 1e-6)
    if fit < 1:
        scale *= fit
        box = box * fit
    cut = prof.cut * box
    offset = np.empty(2)
    for a in range(2):
        low = margin - lo[a] * scale - cut[a]
        high = size - 1 - margin - hi[a] * scale + cut[a]
        offset[a] = rng.uniform(low, max(low, high))
    return float(scale), offset


def render_face(
    rng: np.random.Generator,
    profile: str | SplitProfile = "train",
    image_size: int = 256,
    *,
    pose: Sequence[float] | None = None,
    occluders: Sequence[str] | None = None,
) -> SyntheticFace:
    """Render one random face. `pose=(yaw, pitch, roll)` and `occluders` (kinds, [] for none) override
    the profile's random choices; the face's shape, expression and colours stay random.
    """
    prof = _profile(profile)
    size = int(image_size)
    # Independent streams per stage, so overriding the pose or the occluders leaves the rest unchanged.
    r_pose, r_face, r_back, r_occ, r_cam = (np.random.default_rng(int(v)) for v in rng.integers(0, 2**63, 5))
    sampled_pose = _sample_pose(r_pose, prof)
    yaw, pitch, roll = (float(v) for v in pose) if pose is not None else sampled_pose
    if occluders is None:
        count = int(
            r_pose.choice(
                len(prof.occluder_counts), p=np.asarray(prof.occluder_counts) / sum(prof.occluder_counts)
            )
        )
        names = [k for k, _ in prof.occluder_kinds]
        weights = np.array([w for _, w in prof.occluder_kinds])
        picked = r_pose.choice(
            len(names), size=min(count, len(names)), replace=False, p=weights / weights.sum()
        )
        kinds = [names[k] for k in picked]
    else:
        unknown = sorted(set(occluders) - set(OCCLUDER_KINDS))
        if unknown:
            raise ValueError(f"unknown occluder kinds {unknown}; choose from {list(OCCLUDER_KINDS)}")
        kinds = list(occluders)

    head = _build_head(r_face, prof)
    colours = _sample_colours(r_face)

    # Rotate about the top of the neck, project with a mild perspective.
    rot = _rotation(yaw, pitch, roll)
    focal = r_face.uniform(6.0, 14.0)

    def project(points: np.ndarray, r: np.ndarray = rot) -> tuple[np.ndarray, np.ndarray]:
        p = (points - _HEAD_PIVOT) @ r.T
        return p[:, :2] * (focal / (focal - p[:, 2]))[:, None], p[:, 2]

    uv, depth = project(head.points)
    hair_uv, _ = project(head.hair)
    body_rot = _rotation(0.0, 0.0, roll * 0.4)
    t = np.linspace(0, 2 * np.pi, 10, endpoint=False)
    neck = np.concatenate(
        [np.stack([0.42 * np.cos(t), np.full_like(t, y), -0.25 + 0.4 * np.sin(t)], 1) for y in (0.3, 2.8)]
    )
    torso = np.array([(-0.5, 1.2, -0.2), (0.5, 1.2, -0.2), (1.7, 1.45, -0.3), (-1.7, 1.45, -0.3),
                      (-2.6, 4.0, -0.3), (2.6, 4.0, -0.3)])  # fmt: skip
    neck_uv, _ = project(neck, _rotation(0.0, 0.0, roll * 0.7))
    torso_uv, _ = project(torso, body_rot)

    # Self-occlusion: the surface faces away from the camera, or the point hides behind the nose.
    rotated = (head.points[:NUM_POINTS] - _HEAD_PIVOT) @ rot.T
    view = np.array([0.0, 0.0, focal]) - rotated
    view /= np.linalg.norm(view, axis=1, keepdims=True)
    facing = np.einsum("ij,ij->i", _NORMALS @ rot.T, view)
    self_occ = facing < 0.1

    jaw_width_units = float(np.linalg.norm(head.points[16] - head.points[0]))
    scale, offset = _place(r_face, prof, uv[:NUM_POINTS], size, jaw_width_units)
    px = uv * scale + offset
    hair_px = hair_uv * scale + offset
    neck_px, torso_px = neck_uv * scale + offset, torso_uv * scale + offset

    self_occ |= _behind_nose(px, depth)

    img = _background(r_back, size, size)
    background = img.copy()
    # Lighting: a 3D direction for the shaded parts and its image projection for the head gradient.
    light_angle = r_face.uniform(0, 2 * np.pi)
    strength = r_face.uniform(*prof.light)
    light = np.array([math.cos(light_angle) * strength, math.sin(light_angle) * strength * 0.6, 1.0])
    light /= np.linalg.norm(light)
    up = rot @ np.array([0.0, -1.0, 0.0])
    up = up[:2] / max(np.linalg.norm(up[:2]), 1e-6)
    sc = _Scene(
        img,
        px,
        depth,
        rot,
        scale,
        up,
        colours["skin"],
        colours["hair"],
        light,
        ~self_occ,
        facing,
        yaw,
        head.points,
        lambda points: project(points)[0] * scale + offset,
    )

    head_mask = np.zeros((size, size), np.uint8)
    _draw_head(sc, r_face, head, colours, hair_px, neck_px, torso_px, head_mask)
    _apply_lighting(sc, head_mask, light_angle, strength)

    mask = np.zeros((size, size), np.uint8)
    for kind in kinds:
        _OCCLUDER_DRAWERS[kind](sc, r_occ, prof, colours, mask, background)

    img = _camera(r_cam, prof, sc.img)

    landmarks = px[:NUM_POINTS].astype(np.float32)
    occlusion = self_occ.astype(np.uint8) * SELF_OCCLUDED
    occlusion |= object_flags(landmarks, mask) * OCCLUDED_BY_OBJECT
    return SyntheticFace(img, landmarks, occlusion, mask, (yaw, pitch, roll), kinds)


def object_flags(landmarks: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(N,) uint8: 1 where the landmark's rounded pixel is covered by the mask (0 outside the image)."""
    H, W = mask.shape
    ij = np.rint(np.asarray(landmarks, dtype=np.float64)).astype(np.int64)
    inside = (ij[:, 0] >= 0) & (ij[:, 0] < W) & (ij[:, 1] >= 0) & (ij[:, 1] < H)
    flags = np.zeros(len(ij), np.uint8)
    flags[inside] = mask[ij[inside, 1], ij[inside, 0]] > 0
    return flags


def _behind_nose(px: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Landmarks that project inside a nose wall while lying well behind the nose bridge."""
    hidden = np.zeros(NUM_POINTS, bool)
    root, alar = _IDX["nose_root"][:, 0], _IDX["alar_top"][:, 0]
    ridge_depth = float(depth[[28, 29]].mean())
    candidates = [i for i in range(NUM_POINTS) if not 27 <= i <= 35 and depth[i] < ridge_depth - 0.15]
    for side, (wing, soft) in enumerate(((31, 32), (35, 34))):
        poly = px[[27, 28, 29, 30, 33, soft, wing, alar[side], root[side]]].astype(np.float32)
        lo, hi = poly.min(0), poly.max(0)
        for i in candidates:
            p = px[i]
            if lo[0] <= p[0] <= hi[0] and lo[1] <= p[1] <= hi[1]:
                if cv2.pointPolygonTest(poly, (float(p[0]), float(p[1])), False) > 0:
                    hidden[i] = True
    return hidden


def _draw_head(sc: _Scene, rng, head: _Head, colours, hair_px, neck_px, torso_px, head_mask) -> None:
    img, px, skin = sc.img, sc.px, sc.skin
    lm_px = px[:NUM_POINTS]
    # torso and neck
    _fill(img, torso_px[[0, 1, 2, 5, 4, 3]], _col(colours["clothes"]))
    neck_hull = _hull(neck_px)
    _fill(img, neck_hull, _col(skin * 0.72))
    _fill(head_mask, neck_hull, 255, aa=False)
    # the far ear, hidden by the head where they overlap
    ears = _IDX["ear"]
    near_ear = 0 if sc.yaw > 0 else 1
    ear_hulls = [_hull(px[ears[k]]) for k in range(2)]
    _fill(img, ear_hulls[1 - near_ear], _col(skin * 0.85))
    _fill(head_mask, ear_hulls[1 - near_ear], 255, aa=False)
    # hair volume behind, then the face region (landmarks, cheeks, jaw back, hairline)
    hair_hull = _spline(_hull(hair_px), closed=True, n=3)
    _fill(img, hair_hull, _col(sc.hair))
    _fill(head_mask, hair_hull, 255, aa=False)
    face_idx = np.concatenate(
        [np.arange(NUM_POINTS), _IDX["cheek"].ravel(), _IDX["jaw_back"].ravel(), _IDX["hairline"]]
    )
    face_hull = _spline(_hull(px[face_idx]), closed=True, n=3)
    _fill(img, face_hull, _col(skin))
    _fill(head_mask, face_hull, 255, aa=False)
    # hair texture: a few darker strands over the hair region
    hair_top = hair_px[np.argsort(hair_px[:, 1])[: max(3, len(hair_px) // 6)]]
    if sc.hair.mean() < skin.mean() * 0.95:
        for _ in range(3):
            a, b = hair_top[rng.integers(len(hair_top), size=2)]
            _line(img, np.stack([a, b]), _col(sc.hair * 0.8), 0.02 * sc.scale)
    # the near ear
    near_hull = ear_hulls[near_ear]
    _fill(img, near_hull, _col(skin * 0.95))
    centre = px[ears[near_ear]].mean(0)
    _line(img, (px[ears[near_ear]] - centre) * 0.6 + centre, _col(skin * 0.72), 0.02 * sc.scale, closed=True)
    _fill(head_mask, near_hull, 255, aa=False)

    # jaw line: only between consecutive points that face the camera
    vis = sc.visible
    jaw_curve = _spline(lm_px[JAW], n=3)
    for i in range(16):
        if vis[i] and vis[i + 1]:
            _line(img, jaw_curve[3 * i : 3 * i + 4], _col(skin * 0.8), max(1.0, 0.018 * sc.scale))

    # features, far side first so the near side and the nose overlap them
    gaze = np.clip(rng.normal(0, 0.5, 2), -1, 1)
    sides = [(R_EYE, np.arange(17, 22), 0), (L_EYE, np.arange(22, 27), 1)]
    if sc.depth[36] > sc.depth[45]:
        sides = sides[::-1]
    for eye, brow, k in sides:
        if sc.facing[brow].mean() > 0.1:
            _draw_brow(sc, brow, colours["brow"], head.brow_thickness)
        if sc.facing[eye].mean() > 0.15:
            _draw_eye(sc, eye, colours, gaze, head.eye_open[k])
    _draw_mouth(sc, colours, head.mouth_open)
    _draw_nose(sc, colours)


def _apply_lighting(sc: _Scene, head_mask: np.ndarray, angle: float, strength: float) -> None:
    """A linear brightness gradient across the head, brighter towards the light."""
    roi = _roi_of(head_mask)
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


def _camera(rng: np.random.Generator, prof: SplitProfile, img: np.ndarray) -> np.ndarray:
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
    img = cv2.addWeighted(img, 1.0, _noise_crop(rng, h, w), sigma / 40.0, -128.0 * sigma / 40.0)
    if rng.random() < 0.05:
        img = cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    return img


# ----------------------------------------------------------------------------------------------
# Occluders: each draws on a copy of the image and on its own mask, then composites the copy where
# its mask is set, so the occluder mask covers exactly the pixels the occluder changed.


def _composite(img: np.ndarray, layer: np.ndarray, own: np.ndarray, mask: np.ndarray) -> None:
    roi = _roi_of(own)
    if roi is None:
        return
    sel = own[roi] > 0
    np.copyto(img[roi], layer[roi], where=sel[..., None])
    mask[roi][sel] = 255


def _gradient(layer: np.ndarray, own: np.ndarray, rng: np.random.Generator, strength: float) -> None:
    """Shade an occluder with a random linear gradient (in place, inside its mask)."""
    roi = _roi_of(own)
    if roi is None:
        return
    ys, xs = roi
    a = rng.uniform(0, 2 * np.pi)
    h, w = ys.stop - ys.start, xs.stop - xs.start
    gx = np.linspace(-1, 1, w, dtype=np.float32) * math.cos(a) * strength
    gy = np.linspace(-1, 1, h, dtype=np.float32) * math.sin(a) * strength
    factor = 1.0 + gy[:, None] + gx[None, :]
    layer[ys, xs] = np.clip(layer[ys, xs] * factor[..., None], 0, 255).astype(np.uint8)


def _glasses(sc: _Scene, rng, prof, colours, mask, background) -> None:
    img = sc.img
    layer, own = img.copy(), np.zeros(mask.shape, np.uint8)
    sun = rng.random() < prof.sunglasses_prob
    frame = rng.uniform(0, 80, 3) if rng.random() < 0.7 else rng.uniform(0, 255, 3)
    thickness = max(1.0, sc.scale * rng.uniform(0.012, 0.04))
    rx, ry = rng.uniform(0.2, 0.27), rng.uniform(0.12, 0.18)
    power = rng.uniform(2.0, 5.0)  # superellipse: round to rectangular lenses
    t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    ct, st = np.cos(t), np.sin(t)
    ring2 = np.stack(
        [np.sign(ct) * np.abs(ct) ** (2 / power) * rx, np.sign(st) * np.abs(st) ** (2 / power) * ry], 1
    )
    lenses, inner, outer = [], [], []
    points3 = sc.points3
    for eye, side in ((R_EYE, -1.0), (L_EYE, 1.0)):
        c = points3[eye].mean(0) + np.array([0.0, 0.01, 0.12])
        ring = np.column_stack(
            [c[0] + ring2[:, 0], c[1] + ring2[:, 1], c[2] - 0.06 * side * ring2[:, 0] / rx]
        )
        lens = sc.to_px(ring)
        lenses.append(lens)
        inner.append(lens[np.argmin(side * ring2[:, 0])])
        outer.append((lens[np.argmax(side * ring2[:, 0])], side))
    for lens in lenses:
        if sun:
            tint = rng.uniform(5, 60) * np.array([1.0, 1.0, 1.0]) + rng.uniform(0, 30, 3)
            _fill(layer, lens, _col(tint))
            _fill(own, lens, 255, aa=False)
        _line(layer, lens, _col(frame), thickness, closed=True)
        _line(own, lens, 255, thickness, closed=True, aa=False)
    bridge_mid = sc.to_px(points3[[27]] + np.array([0.0, -0.03, 0.14]))[0]
    bridge = _spline(np.stack([inner[0], bridge_mid, inner[1]]), n=3)
    _line(layer, bridge, _col(frame), thickness)
    _line(own, bridge, 255, thickness, aa=False)
    ears = _IDX["ear"]
    for (start, side), k in zip(outer, (0, 1), strict=True):
        near = (side < 0 and sc.yaw > 10) or (side > 0 and sc.yaw < -10) or abs(sc.yaw) <= 10
        if near:
            end = sc.px[ears[k]].mean(0)
            _line(layer, np.stack([start, end]), _col(frame), thickness)
            _line(own, np.stack([start, end]), 255, thickness, aa=False)
    _composite(img, layer, own, mask)


def _hand(sc: _Scene, rng, prof, colours, mask, background) -> None:
    img, px, w = sc.img, sc.px, sc.scale
    layer, own = img.copy(), np.zeros(mask.shape, np.uint8)
    targets = [
        np.arange(48, 68),
        R_EYE,
        L_EYE,
        np.array([30]),
        np.array([8]),
        np.arange(0, 6),
        np.arange(11, 17),
    ]
    target = px[targets[rng.integers(len(targets))]].mean(0) + rng.normal(0, 0.12, 2) * w
    tone = colours["skin"] if rng.random() < 0.7 else _sample_colours(rng)["skin"]
    size = prof.occluder_size * rng.uniform(0.8, 1.15)
    # fingers point from the wrist towards the target; the arm comes from below or a side
    direction = rng.uniform(-np.pi, 0.0)  # pointing upwards in the image (y down)
    d = np.array([math.cos(direction), math.sin(direction)])
    n = np.array([-d[1], d[0]])
    palm = target - d * 0.35 * w * size
    finger_w = 0.12 * w * size
    outline = _col(tone * 0.6)
    # forearm with a sleeve
    wrist = palm - d * 0.4 * w * size
    elbow = palm - d * 2.5 * w * size
    sleeve = rng.uniform(0, 255, 3)
    arm = np.stack([wrist, elbow])
    _line(layer, arm, _col(tone * 0.9), 0.36 * w * size)
    _line(own, arm, 255, 0.36 * w * size, aa=False)
    sleeve_line = np.stack([wrist - d * 0.35 * w * size, elbow])
    _line(layer, sleeve_line, _col(sleeve), 0.46 * w * size)
    _line(own, sleeve_line, 255, 0.46 * w * size, aa=False)
    angle = math.degrees(math.atan2(d[1], d[0]))
    axes = np.array([0.3, 0.26]) * w * size
    _ellipse(layer, palm, axes + 1.5, angle, outline)
    _ellipse(layer, palm, axes, angle, _col(tone))
    _ellipse(own, palm, axes + 1.5, angle, 255, aa=False)
    lengths = np.array([0.38, 0.46, 0.43, 0.33]) * rng.uniform(0.9, 1.1) * w * size
    spread = rng.uniform(0.0, 0.15)
    for k, length in enumerate(lengths):
        offset = (k - 1.5) * finger_w * 1.02
        base = palm + n * offset + d * 0.15 * w * size
        fd = d + n * (k - 1.5) * spread
        fd /= np.linalg.norm(fd)
        tip = base + fd * length
        seg = np.stack([base, tip])
        _line(layer, seg, outline, finger_w + 2)
        _line(layer, seg, _col(tone * (1.0 - 0.04 * k)), finger_w)
        _line(own, seg, 255, finger_w + 2, aa=False)
    side = 1.0 if rng.random() < 0.5 else -1.0
    thumb = np.stack(
        [palm + n * side * 0.22 * w * size, palm + n * side * 0.45 * w * size + d * 0.15 * w * size]
    )
    _line(layer, thumb, outline, finger_w * 1.15 + 2)
    _line(layer, thumb, _col(tone), finger_w * 1.15)
    _line(own, thumb, 255, finger_w * 1.15 + 2, aa=False)
    _gradient(layer, own, rng, 0.25)
    _composite(img, layer, own, mask)


def _face_mask(sc: _Scene, rng, prof, colours, mask, background) -> None:
    img, px = sc.img, sc.px
    layer, own = img.copy(), np.zeros(mask.shape, np.uint8)
    points3 = sc.points3
    top_y = float(points3[[29, 30], 1].mean() + rng.uniform(-0.05, 0.04))
    top = np.array([(-0.84, top_y + 0.16, 0.2), (-0.6, top_y + 0.06, 0.55), (-0.25, top_y, 0.84),
                    (0.0, top_y - 0.02, points3[29, 2] + 0.06)])  # fmt: skip
    top = np.vstack([top, top[-2::-1] * [-1.0, 1.0, 1.0]])
    scarf = rng.random() < 0.3
    jaw = points3[JAW[2:15]].copy()
    jaw[:, 1] += 0.05 + (0.3 if scarf else 0.0)
    centre = points3[JAW].mean(0)
    jaw[:, 0] = centre[0] + (jaw[:, 0] - centre[0]) * 1.04
    outline3 = np.vstack([top, jaw[::-1]])
    outline = sc.to_px(outline3)
    poly = _spline(outline, closed=True, n=3)
    roi_mask = np.zeros(mask.shape, np.uint8)
    _fill(roi_mask, poly, 255, aa=False)
    roi = _roi_of(roi_mask)
    if roi is None:
        return
    ys, xs = roi
    if scarf or rng.random() < 0.3:
        layer[ys, xs] = _texture(rng, ys.stop - ys.start, xs.stop - xs.start, background)
    else:
        colour = [(170, 200, 225), (235, 235, 235), (30, 30, 35), (120, 160, 200)][rng.integers(4)]
        _fill(layer, poly, _col(np.asarray(colour) * rng.uniform(0.85, 1.05)))
        for f in (0.3, 0.5, 0.7):  # pleats
            left = outline[0] + (outline[len(top) + len(jaw) - 1] - outline[0]) * f
            right = outline[len(top) - 1] + (outline[len(top)] - outline[len(top) - 1]) * f
            _line(layer, np.stack([left, right]), _col(np.asarray(colour) * 0.75), max(1.0, 0.012 * sc.scale))
    own[:] = roi_mask
    _gradient(layer, own, rng, 0.2)
    # ear loops
    ears = _IDX["ear"]
    for k, corner in ((0, outline[0]), (1, outline[len(top) - 1])):
        if sc.visible[[0, 16][k]]:
            loop = np.stack([corner, px[ears[k]].mean(0)])
            _line(layer, loop, (230.0, 230.0, 230.0), max(1.0, 0.012 * sc.scale))
            _line(own, loop, 255, max(1.0, 0.012 * sc.scale), aa=False)
    _composite(img, layer, own, mask)


def _shape(sc: _Scene, rng, prof, colours, mask, background) -> None:
    img, px, w = sc.img, sc.px, sc.scale
    layer, own = img.copy(), np.zeros(mask.shape, np.uint8)
    centre = px[rng.integers(NUM_POINTS)] + rng.normal(0, 0.12, 2) * w
    radius = prof.occluder_size * rng.uniform(0.16, 0.4) * w
    kind = rng.integers(3)
    if kind == 0:
        _ellipse(own, centre, (radius, radius * rng.uniform(0.4, 1.0)), rng.uniform(0, 180), 255, aa=False)
    elif kind == 1:
        a = rng.uniform(0, np.pi)
        hw = radius * np.array([1.0, rng.uniform(0.25, 1.0)])
        corners = np.array([(-1, -1), (1, -1), (1, 1), (-1, 1)]) * hw
        rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        _fill(own, centre + corners @ rot.T, 255, aa=False)
    else:
        k = int(rng.integers(5, 10))
        angles = np.sort(rng.uniform(0, 2 * np.pi, k))
        radii = radius * rng.uniform(0.5, 1.2, k)
        _fill(own, centre + np.stack([np.cos(angles), np.sin(angles)], 1) * radii[:, None], 255, aa=False)
    roi = _roi_of(own)
    if roi is None:
        return
    ys, xs = roi
    layer[ys, xs] = _texture(rng, ys.stop - ys.start, xs.stop - xs.start, background)
    _gradient(layer, own, rng, 0.2)
    _composite(img, layer, own, mask)


def _hair_lock(sc: _Scene, rng, prof, colours, mask, background) -> None:
    img, px, w = sc.img, sc.px, sc.scale
    layer, own = img.copy(), np.zeros(mask.shape, np.uint8)
    hairline = px[_IDX["hairline"]]
    start = hairline[rng.integers(3, len(hairline) - 3)]
    eye = R_EYE if rng.random() < 0.5 else L_EYE
    end = (
        px[eye].mean(0) + rng.normal(0, 0.1, 2) * w - sc.up * rng.uniform(-0.2, 0.3) * w * prof.occluder_size
    )
    across = np.array([-sc.up[1], sc.up[0]])
    strands = int(rng.integers(3, 7))
    width = 0.05 * w * min(prof.occluder_size, 1.2)
    for k in range(strands):
        shift = (k - strands / 2) * width * 0.9
        mid = 0.5 * (start + end) + across * (shift + rng.normal(0, 0.08) * w)
        curve = _spline(np.stack([start + across * shift * 0.5, mid, end + across * shift]), n=6)
        tone = _col(sc.hair * rng.uniform(0.8, 1.2))
        _line(layer, curve, tone, width)
        _line(own, curve, 255, width, aa=False)
    _composite(img, layer, own, mask)


_OCCLUDER_DRAWERS = {
    "glasses": _glasses,
    "hand": _hand,
    "mask": _face_mask,
    "shape": _shape,
    "hair": _hair_lock,
}


# ----------------------------------------------------------------------------------------------
# Splits on disk


def render_split_face(seed: int, split: str, index: int, image_size: int = 256) -> SyntheticFace:
    """Face `index` of `split`: a pure function of (seed, split, index, image_size)."""
    return render_face(face_rng(seed, split, index), _profile_for_split(split), image_size)


def _profile_for_split(split: str) -> SplitProfile:
    if split not in SPLIT_PROFILES:
        raise ValueError(f"unknown synthetic split '{split}'; valid splits are {sorted(SPLIT_PROFILES)}")
    return SPLIT_PROFILES[split]


def write_face(folder: Path, stem: str, face: SyntheticFace) -> Path:
    """Write one face in the 300W layout: image, `.pts`, `.occ` and `masks/<stem>.png`."""
    image_path = folder / f"{stem}.jpg"
    if not cv2.imwrite(
        str(image_path), cv2.cvtColor(face.image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95]
    ):
        raise OSError(f"{image_path}: cannot write the image")
    write_pts(image_path.with_suffix(".pts"), face.landmarks)
    write_occlusion(occlusion_path(image_path), face.occlusion)
    mask_path = mask_path_for(image_path)
    mask_path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(mask_path), face.mask):
        raise OSError(f"{mask_path}: cannot write the mask")
    return image_path


def _write_one(job: tuple[str, int, str, int, int]) -> None:
    folder, seed, split, index, image_size = job
    write_face(Path(folder), f"{split}_{index:05d}", render_split_face(seed, split, index, image_size))


def generate_split(
    root: str | Path,
    split: str,
    count: int,
    seed: int,
    image_size: int = 256,
    progress: bool = True,
    workers: int = 1,
) -> Path:
    """Write faces 0..count-1 of `split` to `root/<split>/`; returns that folder.

    Serial generation takes ~5 ms per 256 px face. Every face depends only on (seed, split, index,
    image_size), so `workers` > 1 (spawned processes) writes identical files; it only pays off when
    the machine has idle cores.
    """
    _profile_for_split(split)
    folder = Path(root) / split
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    jobs = [(str(folder), int(seed), split, i, int(image_size)) for i in range(count)]
    bar = tqdm(total=count, desc=f"synthetic {split}", unit="face", disable=not progress)
    try:
        if workers > 1 and count > 1:
            with get_context("spawn").Pool(workers) as pool:
                for _ in pool.imap_unordered(_write_one, jobs, chunksize=16):
                    bar.update()
        else:
            for job in jobs:
                _write_one(job)
                bar.update()
    finally:
        bar.close()
    return folder


def _read_manifest(path: Path) -> dict:
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def _write_manifest(path: Path, manifest: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _split_complete(root: Path, split: str, count: int) -> bool:
    """Cheap check that a split's folder holds its last face (the manifest vouches for the rest)."""
    if count == 0:
        return (root / split).is_dir()
    stem = f"{split}_{count - 1:05d}"
    return (root / split / f"{stem}.pts").exists() and (root / split / "masks" / f"{stem}.png").exists()


def ensure_synthetic(
    root: str | Path,
    sizes: Mapping[str, int],
    seed: int = 0,
    image_size: int = 256,
    progress: bool = True,
    workers: int = 1,
) -> Path:
    """Make `root` hold the synthetic splits `sizes` ({split: count}) for (seed, image_size).

    `root/manifest.json` records what is there; splits that match it are kept untouched (so this is
    fast when nothing changed), the others are deleted and regenerated. The manifest is updated to
    drop the stale splits before generating and rewritten in full only at the end, so an interrupted
    run regenerates what it did not finish.
    """
    root = Path(root)
    for split in sizes:
        _profile_for_split(split)
    manifest_path = root / MANIFEST_NAME
    old = _read_manifest(manifest_path)
    same_setup = (
        old.get("format_version") == FORMAT_VERSION
        and old.get("seed") == seed
        and old.get("image_size") == image_size
    )
    old_splits = old.get("splits", {}) if same_setup and isinstance(old.get("splits"), dict) else {}
    keep = {
        s: n
        for s, n in old_splits.items()
        if s not in sizes or (n == sizes[s] and _split_complete(root, s, n))
    }
    todo = {s: int(n) for s, n in sizes.items() if s not in keep}
    if not todo:
        return root

    root.mkdir(parents=True, exist_ok=True)
    if not same_setup:  # folders of a previous setup are stale even when not requested now
        for split in old.get("splits", {}) if isinstance(old.get("splits"), dict) else {}:
            if split in SPLIT_PROFILES and split not in sizes:
                shutil.rmtree(root / split, ignore_errors=True)
    manifest = {
        "format_version": FORMAT_VERSION,
        "seed": seed,
        "image_size": image_size,
        "splits": dict(keep),
    }
    _write_manifest(manifest_path, manifest)
    summary = ", ".join(f"{s} {n}" for s, n in todo.items())
    print(f"Generating synthetic faces (seed {seed}, {image_size} px): {summary} -> {root}", flush=True)
    for split, count in todo.items():
        shutil.rmtree(root / split, ignore_errors=True)
        generate_split(root, split, count, seed, image_size, progress, workers=workers)
    manifest["splits"] = {**keep, **todo}
    _write_manifest(manifest_path, manifest)
    return root


# ----------------------------------------------------------------------------------------------
# Inspection


def draw_landmarks(face: SyntheticFace, radius: int = 2) -> np.ndarray:
    """A copy of the face image with its landmarks: green visible, red occluded by an object,
    blue self-occluded, magenta both; the occluder mask is tinted."""
    img = face.image.copy()
    tint = face.mask > 0
    img[tint] = (img[tint] * 0.6 + np.array([0, 0, 120]) * 0.4).astype(np.uint8)
    colours = {0: (0, 255, 0), 1: (255, 0, 0), 2: (60, 120, 255), 3: (255, 0, 255)}
    for (x, y), flag in zip(face.landmarks, face.occlusion, strict=True):
        cv2.circle(
            img,
            (int(round(x * _ONE)), int(round(y * _ONE))),
            radius * _ONE,
            colours[int(flag)],
            -1,
            cv2.LINE_AA,
            _SHIFT,
        )
    return img


def contact_sheet(faces: Sequence[SyntheticFace], columns: int = 4, annotate: bool = True) -> np.ndarray:
    """Faces tiled in a grid (RGB), with landmarks drawn when `annotate`."""
    tiles = [draw_landmarks(f) if annotate else f.image for f in faces]
    h, w = tiles[0].shape[:2]
    rows = math.ceil(len(tiles) / columns)
    sheet = np.zeros((rows * h, columns * w, 3), np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, columns)
        sheet[r * h : (r + 1) * h, c * w : (c + 1) * w] = tile
    return sheet
