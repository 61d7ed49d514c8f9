"""The random scenery behind the face: colour gradients and clutter."""

from __future__ import annotations

import cv2
import numpy as np

from .drawing import fill


def random_background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
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
            fill(img, poly, colour)
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
