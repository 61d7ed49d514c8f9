"""Head geometry: the pose, its rotation, and one random head (shape, expression, hair) built
from the template.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .profiles import SplitProfile
from .template import (
    EXTRA_INDEX,
    EXTRAS,
    FLIP,
    JAW,
    L_EYE,
    NUM_HAIRLINE,
    NUM_LANDMARKS,
    R_EYE,
    SKULL_CENTRE,
    SKULL_RADII,
    SPHERE,
    SPHERE_AZIMUTH,
    TEMPLATE,
)


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Rotation (x right, y down, z to the camera): yaw > 0 turns the nose to +x, pitch > 0 lifts it."""
    a, b, c = np.radians([yaw, pitch, roll])
    ry = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    rx = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return rz @ rx @ ry


def sample_pose(rng: np.random.Generator, prof: SplitProfile) -> tuple[float, float, float]:
    """A random (yaw, pitch, roll) in degrees within the profile's ranges."""
    if rng.random() < prof.extreme_yaw_prob:
        yaw = rng.uniform(*prof.extreme_yaw) * rng.choice([-1.0, 1.0])
    else:
        yaw = np.clip(rng.normal(0, prof.yaw_sd), -prof.yaw_max, prof.yaw_max)
    pitch = np.clip(rng.normal(0, prof.pitch_sd), -prof.pitch_max, prof.pitch_max)
    roll = np.clip(rng.normal(0, prof.roll_sd), -prof.roll_max, prof.roll_max)
    return float(yaw), float(pitch), float(roll)


@dataclass
class Head:
    """One random head in the head frame, before rotation."""

    points: np.ndarray  # (NUM_HEAD_POINTS, 3): landmarks, extras, hairline
    hair: np.ndarray  # (K, 3) hair/scalp volume points
    mouth_open: float
    brow_thickness: float
    eye_open: tuple[float, float]


def build_head(rng: np.random.Generator, prof: SplitProfile) -> Head:
    """Landmarks and extras of one random face: shape variation, expression, hair."""
    e = prof.expression
    lm = TEMPLATE.copy()
    extras = EXTRAS.copy()
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
        EXTRA_INDEX["nose_root"].ravel().tolist()
        + EXTRA_INDEX["alar_top"].ravel().tolist()
        + EXTRA_INDEX["nostril"].ravel().tolist()
    )
    extras[np.array(side_idx) - NUM_LANDMARKS, 2] = (
        0.7 + (extras[np.array(side_idx) - NUM_LANDMARKS, 2] - 0.7) * protrusion
    )
    nostril = EXTRA_INDEX["nostril"].ravel() - NUM_LANDMARKS
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
        j = FLIP[i]
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
    lower_cheek = EXTRA_INDEX["cheek"][:, 1:3].ravel() - NUM_LANDMARKS
    extras[lower_cheek, 0] *= 1 + (jaw_w - 1) * 0.6
    lower_back = EXTRA_INDEX["jaw_back"][:, 2:].ravel() - NUM_LANDMARKS
    extras[lower_back, 0] *= jaw_w
    extras[lower_back, 1] += chin * 0.5

    lm[:, :2] += rng.normal(0, 0.006, (NUM_LANDMARKS, 2))
    # Lids and inner lips touch at most (closed eyes, closed mouth); the jitter must not cross them.
    upper, lower = [37, 38, 43, 44, 61, 62, 63], [41, 40, 47, 46, 67, 66, 65]
    lm[lower, 1] = np.maximum(lm[lower, 1], lm[upper, 1])

    # Hairline on the skull, from one temple over the forehead to the other.
    y_front = rng.uniform(-1.05, -0.82)
    y_side = rng.uniform(-0.45, -0.25)
    psi = np.radians(np.linspace(-105, 105, NUM_HAIRLINE))
    hy = y_front + (y_side - y_front) * (np.abs(psi) / np.radians(105)) ** 1.6
    f = np.sqrt(np.clip(1 - ((hy - SKULL_CENTRE[1]) / SKULL_RADII[1]) ** 2, 0.05, 1))
    hairline = np.stack(
        [SKULL_RADII[0] * f * np.sin(psi), hy, SKULL_CENTRE[2] + SKULL_RADII[2] * f * np.cos(psi)], 1
    )

    # Hair volume: skull points above the hairline (and down to the nape at the back).
    volume = rng.uniform(0.02, 0.14)
    nape = rng.uniform(-0.1, 0.35)
    sphere_y = SKULL_CENTRE[1] + SKULL_RADII[1] * SPHERE[:, 1]
    line_y = np.interp(
        np.abs(SPHERE_AZIMUTH), np.degrees(np.abs(psi[NUM_HAIRLINE // 2 :])), hy[NUM_HAIRLINE // 2 :]
    )
    keep = np.where(np.abs(SPHERE_AZIMUTH) <= 105, sphere_y < line_y - 0.02, sphere_y < nape)
    scale = 1 + volume * (0.6 + 0.4 * np.clip(-SPHERE[keep, 1], 0, 1))
    hair = SKULL_CENTRE + SKULL_RADII * SPHERE[keep] * scale[:, None]
    if rng.random() < 0.3:  # long hair falling behind the shoulders
        length = rng.uniform(0.6, 1.6)
        ys = np.linspace(0.0, length, 4)
        drape = [(sx * (0.95 + volume), y, z) for sx in (-1, 1) for y in ys for z in (-0.9, -0.25)]
        hair = np.vstack([hair, np.asarray(drape)])

    # Global proportions.
    scale3 = np.array([1 + 0.06 * g[20], 1 + 0.05 * g[21],
                       1 + 0.06 * g[22]])  # fmt: skip
    points = np.vstack([lm, extras, hairline]) * scale3
    return Head(
        points, hair * scale3, mouth_open, float(rng.uniform(0.035, 0.07)), (eye_open[0], eye_open[1])
    )
