"""The head drawn part by part: body, ears, hair, face, jaw line, brows, eyes, mouth and nose."""

from __future__ import annotations

import math

import numpy as np

from .drawing import convex_hull, cv_colour, ellipse, fill, polyline, spline
from .head import Head
from .scene import Scene
from .template import EXTRA_INDEX, JAW, L_EYE, NUM_LANDMARKS, R_EYE


def draw_head(sc: Scene, rng, head: Head, colours, hair_px, neck_px, torso_px, head_mask) -> None:
    """Draw the body and the head, far parts first, and set `head_mask` where the head and neck are."""
    img, px, skin = sc.img, sc.px, sc.skin
    lm_px = px[:NUM_LANDMARKS]
    # torso and neck
    fill(img, torso_px[[0, 1, 2, 5, 4, 3]], cv_colour(colours["clothes"]))
    neck_hull = convex_hull(neck_px)
    fill(img, neck_hull, cv_colour(skin * 0.72))
    fill(head_mask, neck_hull, 255, aa=False)
    # the far ear, hidden by the head where they overlap
    ears = EXTRA_INDEX["ear"]
    near_ear = 0 if sc.yaw > 0 else 1
    ear_hulls = [convex_hull(px[ears[k]]) for k in range(2)]
    fill(img, ear_hulls[1 - near_ear], cv_colour(skin * 0.85))
    fill(head_mask, ear_hulls[1 - near_ear], 255, aa=False)
    # hair volume behind, then the face region (landmarks, cheeks, jaw back, hairline)
    hair_hull = spline(convex_hull(hair_px), closed=True, n=3)
    fill(img, hair_hull, cv_colour(sc.hair))
    fill(head_mask, hair_hull, 255, aa=False)
    face_idx = np.concatenate(
        [
            np.arange(NUM_LANDMARKS),
            EXTRA_INDEX["cheek"].ravel(),
            EXTRA_INDEX["jaw_back"].ravel(),
            EXTRA_INDEX["hairline"],
        ]
    )
    face_hull = spline(convex_hull(px[face_idx]), closed=True, n=3)
    fill(img, face_hull, cv_colour(skin))
    fill(head_mask, face_hull, 255, aa=False)
    # hair texture: a few darker strands over the hair region
    hair_top = hair_px[np.argsort(hair_px[:, 1])[: max(3, len(hair_px) // 6)]]
    if sc.hair.mean() < skin.mean() * 0.95:
        for _ in range(3):
            a, b = hair_top[rng.integers(len(hair_top), size=2)]
            polyline(img, np.stack([a, b]), cv_colour(sc.hair * 0.8), 0.02 * sc.scale)
    # the near ear
    near_hull = ear_hulls[near_ear]
    fill(img, near_hull, cv_colour(skin * 0.95))
    centre = px[ears[near_ear]].mean(0)
    polyline(
        img,
        (px[ears[near_ear]] - centre) * 0.6 + centre,
        cv_colour(skin * 0.72),
        0.02 * sc.scale,
        closed=True,
    )
    fill(head_mask, near_hull, 255, aa=False)

    # jaw line: only between consecutive points that face the camera
    vis = sc.visible
    jaw_curve = spline(lm_px[JAW], n=3)
    for i in range(16):
        if vis[i] and vis[i + 1]:
            polyline(img, jaw_curve[3 * i : 3 * i + 4], cv_colour(skin * 0.8), max(1.0, 0.018 * sc.scale))

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


def _shade(normal: np.ndarray, light: np.ndarray) -> float:
    """Lambert shading relative to a surface facing the camera, a little darker (ambient occlusion)."""
    return 0.94 * (0.35 + 0.65 * max(0.0, float(normal @ light))) / (0.35 + 0.65 * max(0.0, float(light[2])))


def _draw_eye(sc: Scene, eye: np.ndarray, colours, gaze: np.ndarray, openness: float) -> None:
    img, px = sc.img, sc.px
    pts = px[eye]
    outline = spline(pts, closed=True, n=4)
    width = float(np.linalg.norm(pts[3] - pts[0]))
    skin = sc.skin
    # Socket shadow, then the eye white and iris clipped to the eye opening.
    centre = pts.mean(0)
    angle = math.degrees(math.atan2(pts[3, 1] - pts[0, 1], pts[3, 0] - pts[0, 0]))
    ellipse(img, centre - sc.up * width * 0.1, (width * 0.6, width * 0.32), angle, cv_colour(skin * 0.93))
    x0, y0 = np.floor(outline.min(0)).astype(int) - 2
    x1, y1 = np.ceil(outline.max(0)).astype(int) + 3
    H, W = img.shape[:2]
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, W), min(y1, H)
    if x1 - x0 > 1 and y1 - y0 > 1 and openness > 0.15:
        roi = img[y0:y1, x0:x1]
        local = outline - (x0, y0)
        m = np.zeros(roi.shape[:2], np.uint8)
        fill(m, local, 255, aa=False)
        tmp = roi.copy()
        fill(tmp, local, cv_colour(colours["sclera"]))
        r = (
            0.21
            * float(np.linalg.norm(sc.px[eye[3]] - sc.px[eye[0]]))
            / max(0.35, abs(math.cos(math.radians(sc.yaw))))
        )
        r = min(r, 0.23 * width / max(0.35, abs(math.cos(math.radians(sc.yaw)))))
        squash = max(0.35, abs(math.cos(math.radians(sc.yaw))))
        iris_c = centre - (x0, y0) + gaze * (width * 0.18, width * 0.06)
        ellipse(tmp, iris_c, (r * squash, r), angle, cv_colour(colours["iris"]))
        ellipse(tmp, iris_c, (r * squash * 0.45, r * 0.45), angle, (15.0, 12.0, 12.0))
        ellipse(tmp, iris_c + (-r * 0.3, -r * 0.35), (r * 0.18, r * 0.18), 0, (250.0, 250.0, 250.0))
        np.copyto(roi, tmp, where=m[..., None] > 0)
    lid = max(1.0, width * 0.06)
    upper = spline(pts[[0, 1, 2, 3]], n=4)
    lower = spline(pts[[3, 4, 5, 0]], n=4)
    polyline(
        img, upper - sc.up * width * 0.16 * openness, cv_colour(skin * 0.72), max(1.0, lid * 0.5)
    )  # lid crease
    polyline(img, lower, cv_colour(skin * 0.62), max(1.0, lid * 0.55))
    polyline(img, upper, (28.0, 22.0, 20.0), lid)


def _draw_brow(sc: Scene, brow: np.ndarray, colour, thickness: float) -> None:
    top = spline(sc.px[brow], n=4)
    # thick near the inner end, tapering towards the tail (brow points run outer->inner for 17-21)
    profile = np.interp(np.linspace(0, 1, len(top)), [0, 0.3, 1], [0.45, 0.9, 1.0])
    if brow[0] > brow[-1]:
        profile = profile[::-1]
    bottom = top - sc.up * (thickness * sc.scale) * profile[:, None]
    fill(sc.img, np.vstack([top, bottom[::-1]]), cv_colour(colour))


def _draw_nose(sc: Scene, colours) -> None:
    img, px, skin = sc.img, sc.px, sc.skin
    root, alar, nostril = (
        EXTRA_INDEX["nose_root"][:, 0],
        EXTRA_INDEX["alar_top"][:, 0],
        EXTRA_INDEX["nostril"][:, 0],
    )
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
            fill(img, poly, cv_colour(skin * _shade(normal, sc.light)))
    w = sc.scale
    # nostrils (facing down), the alar creases, the lower edge and a highlight on the tip
    for side, (wing, soft) in enumerate(((31, 32), (35, 34))):
        n = sc.rot @ np.array([0.3 * (1 if side else -1), 0.8, 0.5])
        if n[2] > -0.1:
            axis = px[soft] - px[wing]
            angle = math.degrees(math.atan2(axis[1], axis[0]))
            ellipse(
                img,
                px[nostril[side]],
                (0.045 * w, 0.022 * w * max(0.3, n[2] + 0.3)),
                angle,
                cv_colour(skin * 0.32),
            )
        if side == near_side or abs(sc.yaw) < 25:
            polyline(img, spline(px[[alar[side], wing, soft]], n=3), cv_colour(skin * 0.62), 0.016 * w)
    polyline(img, spline(px[[32, 33, 34]], n=3), cv_colour(skin * 0.7), 0.012 * w)
    if abs(sc.yaw) > 12:  # the nose profile against the far cheek
        polyline(img, spline(px[[27, 28, 29, 30, 33]], n=3), cv_colour(skin * 0.72), 0.012 * w)
    toward = sc.light[:2] * 0.02 * w
    ellipse(img, px[30] + toward - sc.up * 0.02 * w, (0.03 * w, 0.025 * w), 0, cv_colour(skin * 1.08 + 4))
    polyline(img, px[[28, 29]] + toward, cv_colour(np.minimum(skin * 1.1 + 5, 255)), 0.02 * w)


def _draw_mouth(sc: Scene, colours, mouth_open: float) -> None:
    img, px = sc.img, sc.px
    lip = colours["lip"]
    outer = spline(px[48:60], closed=True, n=4)
    fill(img, outer, cv_colour(lip))
    upper_outer = spline(px[48:55], n=4)
    upper_inner = spline(px[[64, 63, 62, 61, 60]], n=4)
    fill(img, np.vstack([upper_outer, upper_inner]), cv_colour(lip * 0.82))
    inner = spline(px[60:68], closed=True, n=4)
    fill(img, inner, (55.0, 22.0, 25.0))
    if mouth_open > 0.08:
        top = spline(px[[60, 61, 62, 63, 64]], n=4)
        bottom = spline(px[[60, 67, 66, 65, 64]], n=4)
        teeth_edge = top + (bottom - top) * min(0.45, 0.05 / max(mouth_open * 0.24, 1e-3))
        fill(img, np.vstack([top, teeth_edge[::-1]]), (225.0, 220.0, 205.0))
    polyline(img, spline(px[[60, 61, 62, 63, 64]], n=4), cv_colour(lip * 0.45), max(1.0, 0.012 * sc.scale))
    highlight = 0.5 * (px[57] + px[66])
    ellipse(
        img, highlight, (0.06 * sc.scale, 0.015 * sc.scale), 0, cv_colour(np.minimum(lip * 1.18 + 10, 255))
    )
