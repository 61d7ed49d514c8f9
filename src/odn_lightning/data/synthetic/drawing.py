"""OpenCV drawing primitives with sub-pixel coordinates, splines, and the noise and textures
that fill occluders and simulate sensor noise.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

SUBPIXEL_SHIFT = 4  # OpenCV sub-pixel drawing: coordinates are fixed point with 4 fractional bits
SUBPIXEL_ONE = 1 << SUBPIXEL_SHIFT


def fixed_point(points: np.ndarray) -> np.ndarray:
    """Pixel coordinates -> OpenCV fixed point (int32), for drawing with shift=SUBPIXEL_SHIFT."""
    return np.rint(np.multiply(points, SUBPIXEL_ONE)).astype(np.int32)


def cv_colour(colour) -> tuple[float, float, float]:
    """An OpenCV colour from an RGB triple, clipped to 0..255."""
    r, g, b = (float(v) for v in colour)
    return (min(max(r, 0.0), 255.0), min(max(g, 0.0), 255.0), min(max(b, 0.0), 255.0))


def _catmull_weights(n: int) -> np.ndarray:
    t = np.arange(n) / n
    t2, t3 = t * t, t * t * t
    return 0.5 * np.stack([-t3 + 2 * t2 - t, 3 * t3 - 5 * t2 + 2, -3 * t3 + 4 * t2 + t, t3 - t2], 1)


_CATMULL = {n: _catmull_weights(n) for n in (3, 4, 6)}


def spline(points: np.ndarray, closed: bool = False, n: int = 4) -> np.ndarray:
    """A Catmull-Rom curve through `points` (M, 2), sampled `n` times per segment."""
    m = len(points)
    if closed:
        idx = (np.arange(m)[:, None] + np.arange(-1, 3)) % m
    else:
        idx = np.clip(np.arange(m - 1)[:, None] + np.arange(-1, 3), 0, m - 1)
    curve = np.einsum("tk,skd->std", _CATMULL[n], points[idx]).reshape(-1, 2)
    return curve if closed else np.vstack([curve, points[-1:]])


def fill(img, poly, colour, aa: bool = True) -> None:
    cv2.fillPoly(img, [fixed_point(poly)], colour, cv2.LINE_AA if aa else cv2.LINE_8, SUBPIXEL_SHIFT)


def polyline(img, poly, colour, thickness: float, closed: bool = False, aa: bool = True) -> None:
    cv2.polylines(
        img,
        [fixed_point(poly)],
        closed,
        colour,
        max(1, int(round(thickness))),
        cv2.LINE_AA if aa else cv2.LINE_8,
        SUBPIXEL_SHIFT,
    )


def ellipse(img, centre, axes, angle: float, colour, aa: bool = True) -> None:
    cv2.ellipse(
        img, tuple(int(v) for v in fixed_point(centre)), tuple(max(1, int(v)) for v in fixed_point(axes)), float(angle), 0.0, 360.0,
        colour, -1, cv2.LINE_AA if aa else cv2.LINE_8, SUBPIXEL_SHIFT,
    )  # fmt: skip


def convex_hull(points: np.ndarray) -> np.ndarray:
    return cv2.convexHull(points.astype(np.float32)).reshape(-1, 2)


def bounding_roi(mask: np.ndarray, pad: int = 0) -> tuple[slice, slice] | None:
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


def noise_crop(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    bank = _noise_bank()
    if h > bank.shape[0] or w > bank.shape[1]:
        bank = np.tile(bank, (h // bank.shape[0] + 1, w // bank.shape[1] + 1, 1))
    y = int(rng.integers(0, bank.shape[0] - h + 1))
    x = int(rng.integers(0, bank.shape[1] - w + 1))
    return bank[y : y + h, x : x + w]


def random_texture(
    rng: np.random.Generator, h: int, w: int, background: np.ndarray | None = None
) -> np.ndarray:
    """A random (h, w, 3) texture: noisy colour, stripes, a checker board, or a crop of the background."""
    kind = rng.integers(0, 4) if background is not None else rng.integers(0, 3)
    c1, c2 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    if kind == 0:  # noisy colour blobs
        small = rng.uniform(0, 255, (3, 3, 3)).astype(np.uint8)
        base = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        amount = rng.uniform(0.2, 0.6)
        return cv2.addWeighted(base, 1.0, noise_crop(rng, h, w), amount, -128 * amount)
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
