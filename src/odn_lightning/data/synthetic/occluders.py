"""Occluders drawn over the face: glasses, hands, face masks, textured shapes and hair locks.

Each draws on a copy of the image and on its own mask, then composites the copy where its mask is set,
so the occluder mask covers exactly the pixels the occluder changed.
"""

from __future__ import annotations

import math

import numpy as np

from .drawing import bounding_roi, cv_colour, ellipse, fill, polyline, random_texture, spline
from .palette import sample_colours
from .scene import Scene
from .template import EXTRA_INDEX, JAW, L_EYE, NUM_LANDMARKS, R_EYE


def _composite(img: np.ndarray, layer: np.ndarray, own: np.ndarray, mask: np.ndarray) -> None:
    """Copy `layer` onto `img` where the occluder's own mask is set, and mark those pixels in `mask`."""
    roi = bounding_roi(own)
    if roi is None:
        return
    sel = own[roi] > 0
    np.copyto(img[roi], layer[roi], where=sel[..., None])
    mask[roi][sel] = 255


def _gradient(layer: np.ndarray, own: np.ndarray, rng: np.random.Generator, strength: float) -> None:
    """Shade an occluder with a random linear gradient (in place, inside its mask)."""
    roi = bounding_roi(own)
    if roi is None:
        return
    ys, xs = roi
    a = rng.uniform(0, 2 * np.pi)
    h, w = ys.stop - ys.start, xs.stop - xs.start
    gx = np.linspace(-1, 1, w, dtype=np.float32) * math.cos(a) * strength
    gy = np.linspace(-1, 1, h, dtype=np.float32) * math.sin(a) * strength
    factor = 1.0 + gy[:, None] + gx[None, :]
    layer[ys, xs] = np.clip(layer[ys, xs] * factor[..., None], 0, 255).astype(np.uint8)


def _glasses(sc: Scene, rng, prof, colours, mask, background) -> None:
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
            fill(layer, lens, cv_colour(tint))
            fill(own, lens, 255, aa=False)
        polyline(layer, lens, cv_colour(frame), thickness, closed=True)
        polyline(own, lens, 255, thickness, closed=True, aa=False)
    bridge_mid = sc.to_px(points3[[27]] + np.array([0.0, -0.03, 0.14]))[0]
    bridge = spline(np.stack([inner[0], bridge_mid, inner[1]]), n=3)
    polyline(layer, bridge, cv_colour(frame), thickness)
    polyline(own, bridge, 255, thickness, aa=False)
    ears = EXTRA_INDEX["ear"]
    for (start, side), k in zip(outer, (0, 1), strict=True):
        near = (side < 0 and sc.yaw > 10) or (side > 0 and sc.yaw < -10) or abs(sc.yaw) <= 10
        if near:
            end = sc.px[ears[k]].mean(0)
            polyline(layer, np.stack([start, end]), cv_colour(frame), thickness)
            polyline(own, np.stack([start, end]), 255, thickness, aa=False)
    _composite(img, layer, own, mask)


def _hand(sc: Scene, rng, prof, colours, mask, background) -> None:
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
    tone = colours["skin"] if rng.random() < 0.7 else sample_colours(rng)["skin"]
    size = prof.occluder_size * rng.uniform(0.8, 1.15)
    # fingers point from the wrist towards the target; the arm comes from below or a side
    direction = rng.uniform(-np.pi, 0.0)  # pointing upwards in the image (y down)
    d = np.array([math.cos(direction), math.sin(direction)])
    n = np.array([-d[1], d[0]])
    palm = target - d * 0.35 * w * size
    finger_w = 0.12 * w * size
    outline = cv_colour(tone * 0.6)
    # forearm with a sleeve
    wrist = palm - d * 0.4 * w * size
    elbow = palm - d * 2.5 * w * size
    sleeve = rng.uniform(0, 255, 3)
    arm = np.stack([wrist, elbow])
    polyline(layer, arm, cv_colour(tone * 0.9), 0.36 * w * size)
    polyline(own, arm, 255, 0.36 * w * size, aa=False)
    sleeve_line = np.stack([wrist - d * 0.35 * w * size, elbow])
    polyline(layer, sleeve_line, cv_colour(sleeve), 0.46 * w * size)
    polyline(own, sleeve_line, 255, 0.46 * w * size, aa=False)
    angle = math.degrees(math.atan2(d[1], d[0]))
    axes = np.array([0.3, 0.26]) * w * size
    ellipse(layer, palm, axes + 1.5, angle, outline)
    ellipse(layer, palm, axes, angle, cv_colour(tone))
    ellipse(own, palm, axes + 1.5, angle, 255, aa=False)
    lengths = np.array([0.38, 0.46, 0.43, 0.33]) * rng.uniform(0.9, 1.1) * w * size
    spread = rng.uniform(0.0, 0.15)
    for k, length in enumerate(lengths):
        offset = (k - 1.5) * finger_w * 1.02
        base = palm + n * offset + d * 0.15 * w * size
        fd = d + n * (k - 1.5) * spread
        fd /= np.linalg.norm(fd)
        tip = base + fd * length
        seg = np.stack([base, tip])
        polyline(layer, seg, outline, finger_w + 2)
        polyline(layer, seg, cv_colour(tone * (1.0 - 0.04 * k)), finger_w)
        polyline(own, seg, 255, finger_w + 2, aa=False)
    side = 1.0 if rng.random() < 0.5 else -1.0
    thumb = np.stack(
        [palm + n * side * 0.22 * w * size, palm + n * side * 0.45 * w * size + d * 0.15 * w * size]
    )
    polyline(layer, thumb, outline, finger_w * 1.15 + 2)
    polyline(layer, thumb, cv_colour(tone), finger_w * 1.15)
    polyline(own, thumb, 255, finger_w * 1.15 + 2, aa=False)
    _gradient(layer, own, rng, 0.25)
    _composite(img, layer, own, mask)


def _face_mask(sc: Scene, rng, prof, colours, mask, background) -> None:
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
    poly = spline(outline, closed=True, n=3)
    roi_mask = np.zeros(mask.shape, np.uint8)
    fill(roi_mask, poly, 255, aa=False)
    roi = bounding_roi(roi_mask)
    if roi is None:
        return
    ys, xs = roi
    if scarf or rng.random() < 0.3:
        layer[ys, xs] = random_texture(rng, ys.stop - ys.start, xs.stop - xs.start, background)
    else:
        colour = [(170, 200, 225), (235, 235, 235), (30, 30, 35), (120, 160, 200)][rng.integers(4)]
        fill(layer, poly, cv_colour(np.asarray(colour) * rng.uniform(0.85, 1.05)))
        for f in (0.3, 0.5, 0.7):  # pleats
            left = outline[0] + (outline[len(top) + len(jaw) - 1] - outline[0]) * f
            right = outline[len(top) - 1] + (outline[len(top)] - outline[len(top) - 1]) * f
            polyline(
                layer,
                np.stack([left, right]),
                cv_colour(np.asarray(colour) * 0.75),
                max(1.0, 0.012 * sc.scale),
            )
    own[:] = roi_mask
    _gradient(layer, own, rng, 0.2)
    # ear loops
    ears = EXTRA_INDEX["ear"]
    for k, corner in ((0, outline[0]), (1, outline[len(top) - 1])):
        if sc.visible[[0, 16][k]]:
            loop = np.stack([corner, px[ears[k]].mean(0)])
            polyline(layer, loop, (230.0, 230.0, 230.0), max(1.0, 0.012 * sc.scale))
            polyline(own, loop, 255, max(1.0, 0.012 * sc.scale), aa=False)
    _composite(img, layer, own, mask)


def _shape(sc: Scene, rng, prof, colours, mask, background) -> None:
    img, px, w = sc.img, sc.px, sc.scale
    layer, own = img.copy(), np.zeros(mask.shape, np.uint8)
    centre = px[rng.integers(NUM_LANDMARKS)] + rng.normal(0, 0.12, 2) * w
    radius = prof.occluder_size * rng.uniform(0.16, 0.4) * w
    kind = rng.integers(3)
    if kind == 0:
        ellipse(own, centre, (radius, radius * rng.uniform(0.4, 1.0)), rng.uniform(0, 180), 255, aa=False)
    elif kind == 1:
        a = rng.uniform(0, np.pi)
        hw = radius * np.array([1.0, rng.uniform(0.25, 1.0)])
        corners = np.array([(-1, -1), (1, -1), (1, 1), (-1, 1)]) * hw
        rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        fill(own, centre + corners @ rot.T, 255, aa=False)
    else:
        k = int(rng.integers(5, 10))
        angles = np.sort(rng.uniform(0, 2 * np.pi, k))
        radii = radius * rng.uniform(0.5, 1.2, k)
        fill(own, centre + np.stack([np.cos(angles), np.sin(angles)], 1) * radii[:, None], 255, aa=False)
    roi = bounding_roi(own)
    if roi is None:
        return
    ys, xs = roi
    layer[ys, xs] = random_texture(rng, ys.stop - ys.start, xs.stop - xs.start, background)
    _gradient(layer, own, rng, 0.2)
    _composite(img, layer, own, mask)


def _hair_lock(sc: Scene, rng, prof, colours, mask, background) -> None:
    img, px, w = sc.img, sc.px, sc.scale
    layer, own = img.copy(), np.zeros(mask.shape, np.uint8)
    hairline = px[EXTRA_INDEX["hairline"]]
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
        curve = spline(np.stack([start + across * shift * 0.5, mid, end + across * shift]), n=6)
        tone = cv_colour(sc.hair * rng.uniform(0.8, 1.2))
        polyline(layer, curve, tone, width)
        polyline(own, curve, 255, width, aa=False)
    _composite(img, layer, own, mask)


# Each drawer is called as drawer(scene, rng, profile, colours, mask, background).
OCCLUDER_DRAWERS = {
    "glasses": _glasses,
    "hand": _hand,
    "mask": _face_mask,
    "shape": _shape,
    "hair": _hair_lock,
}
OCCLUDER_KINDS = tuple(OCCLUDER_DRAWERS)
