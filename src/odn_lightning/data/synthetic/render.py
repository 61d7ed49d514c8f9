"""One face from a random generator: pose, head, projection, drawing, occluders and the per-landmark
occlusion flags; faces of a split are seeded by (seed, split, index).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from ..records import OCCLUDED_BY_OBJECT, SELF_OCCLUDED
from .background import random_background
from .camera import apply_camera, apply_lighting
from .features import draw_head
from .head import build_head, rotation, sample_pose
from .occluders import OCCLUDER_DRAWERS, OCCLUDER_KINDS
from .palette import sample_colours
from .profiles import SplitProfile, resolve_profile, split_profile
from .scene import Scene
from .template import EXTRA_INDEX, HEAD_PIVOT, NORMALS, NUM_LANDMARKS


@dataclass
class SyntheticFace:
    """One rendered face with its annotations."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    landmarks: np.ndarray  # (NUM_LANDMARKS, 2) float32, 0-based pixel coordinates
    occlusion: np.ndarray  # (NUM_LANDMARKS,) uint8 bit mask: 1 occluder, 2 self-occluded, 3 both
    mask: np.ndarray  # (H, W) uint8, 255 where an occluder covers the pixel
    pose: tuple[float, float, float]  # yaw, pitch, roll in degrees
    occluders: list[str]  # kinds drawn, e.g. ["glasses", "hand"]


def stable_hash(name: str) -> int:
    """A process-independent 64-bit hash of a split name (Python's `hash()` is salted per process)."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "little")


def face_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of face `index` of `split`: a pure function of its arguments."""
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence([int(seed), stable_hash(split), int(index)]))
    )


def render_split_face(seed: int, split: str, index: int, image_size: int = 256) -> SyntheticFace:
    """Face `index` of `split`: a pure function of (seed, split, index, image_size)."""
    return render_face(face_rng(seed, split, index), split_profile(split), image_size)


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
    prof = resolve_profile(profile)
    size = int(image_size)
    # Independent streams per stage, so overriding the pose or the occluders leaves the rest unchanged.
    r_pose, r_face, r_back, r_occ, r_cam = (np.random.default_rng(int(v)) for v in rng.integers(0, 2**63, 5))
    sampled_pose = sample_pose(r_pose, prof)
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

    head = build_head(r_face, prof)
    colours = sample_colours(r_face)

    # Rotate about the top of the neck, project with a mild perspective.
    rot = rotation(yaw, pitch, roll)
    focal = r_face.uniform(6.0, 14.0)

    def project(points: np.ndarray, r: np.ndarray = rot) -> tuple[np.ndarray, np.ndarray]:
        p = (points - HEAD_PIVOT) @ r.T
        return p[:, :2] * (focal / (focal - p[:, 2]))[:, None], p[:, 2]

    uv, depth = project(head.points)
    hair_uv, _ = project(head.hair)
    body_rot = rotation(0.0, 0.0, roll * 0.4)
    t = np.linspace(0, 2 * np.pi, 10, endpoint=False)
    neck = np.concatenate(
        [np.stack([0.42 * np.cos(t), np.full_like(t, y), -0.25 + 0.4 * np.sin(t)], 1) for y in (0.3, 2.8)]
    )
    torso = np.array([(-0.5, 1.2, -0.2), (0.5, 1.2, -0.2), (1.7, 1.45, -0.3), (-1.7, 1.45, -0.3),
                      (-2.6, 4.0, -0.3), (2.6, 4.0, -0.3)])  # fmt: skip
    neck_uv, _ = project(neck, rotation(0.0, 0.0, roll * 0.7))
    torso_uv, _ = project(torso, body_rot)

    # Self-occlusion: the surface faces away from the camera, or the point hides behind the nose.
    rotated = (head.points[:NUM_LANDMARKS] - HEAD_PIVOT) @ rot.T
    view = np.array([0.0, 0.0, focal]) - rotated
    view /= np.linalg.norm(view, axis=1, keepdims=True)
    facing = np.einsum("ij,ij->i", NORMALS @ rot.T, view)
    self_occ = facing < 0.1

    jaw_width_units = float(np.linalg.norm(head.points[16] - head.points[0]))
    scale, offset = _place(r_face, prof, uv[:NUM_LANDMARKS], size, jaw_width_units)
    px = uv * scale + offset
    hair_px = hair_uv * scale + offset
    neck_px, torso_px = neck_uv * scale + offset, torso_uv * scale + offset

    self_occ |= _behind_nose(px, depth)

    img = random_background(r_back, size, size)
    background = img.copy()
    # Lighting: a 3D direction for the shaded parts and its image projection for the head gradient.
    light_angle = r_face.uniform(0, 2 * np.pi)
    strength = r_face.uniform(*prof.light)
    light = np.array([math.cos(light_angle) * strength, math.sin(light_angle) * strength * 0.6, 1.0])
    light /= np.linalg.norm(light)
    up = rot @ np.array([0.0, -1.0, 0.0])
    up = up[:2] / max(np.linalg.norm(up[:2]), 1e-6)
    sc = Scene(
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
    draw_head(sc, r_face, head, colours, hair_px, neck_px, torso_px, head_mask)
    apply_lighting(sc, head_mask, light_angle, strength)

    mask = np.zeros((size, size), np.uint8)
    for kind in kinds:
        OCCLUDER_DRAWERS[kind](sc, r_occ, prof, colours, mask, background)

    img = apply_camera(r_cam, prof, sc.img)

    landmarks = px[:NUM_LANDMARKS].astype(np.float32)
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
    hidden = np.zeros(NUM_LANDMARKS, bool)
    root, alar = EXTRA_INDEX["nose_root"][:, 0], EXTRA_INDEX["alar_top"][:, 0]
    ridge_depth = float(depth[[28, 29]].mean())
    candidates = [i for i in range(NUM_LANDMARKS) if not 27 <= i <= 35 and depth[i] < ridge_depth - 0.15]
    for side, (wing, soft) in enumerate(((31, 32), (35, 34))):
        poly = px[[27, 28, 29, 30, 33, soft, wing, alar[side], root[side]]].astype(np.float32)
        lo, hi = poly.min(0), poly.max(0)
        for i in candidates:
            p = px[i]
            if lo[0] <= p[0] <= hi[0] and lo[1] <= p[1] <= hi[1]:
                if cv2.pointPolygonTest(poly, (float(p[0]), float(p[1])), False) > 0:
                    hidden[i] = True
    return hidden
