"""The 300W `.pts` annotation format: `version: 1`, `n_points: N`, then N `x y` lines in braces.

Coordinates in `.pts` files are 1-based pixels (Matlab convention). Inside the suite, landmarks are
0-based pixel coordinates (the centre of the top-left pixel is (0, 0), as in OpenCV).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np


class AnnotationError(ValueError):
    """An annotation file that cannot be read; the message names the file and the reason."""


def read_annotation_text(path: Path) -> str:
    """The text of an annotation file; unreadable files raise AnnotationError naming them."""
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise AnnotationError(f"{path}: cannot read ({err})") from err


def read_pts(path: str | Path) -> np.ndarray:
    """Read a `.pts` file into an (N, 2) float32 array of 0-based pixel coordinates."""
    path = Path(path)
    lines = [ln.strip() for ln in read_annotation_text(path).splitlines() if ln.strip()]
    header = {}
    body_start = None
    for i, line in enumerate(lines):
        if line == "{":
            body_start = i + 1
            break
        key, _, value = line.partition(":")
        header[key.strip()] = value.strip()
    if body_start is None or "}" not in lines[body_start:]:
        raise AnnotationError(f"{path}: not a .pts file (missing '{{' ... '}}' around the points)")
    try:
        n_points = int(header["n_points"])
    except (KeyError, ValueError):
        raise AnnotationError(f"{path}: missing or invalid 'n_points' header") from None
    body = lines[body_start : lines.index("}", body_start)]
    if len(body) != n_points:
        raise AnnotationError(f"{path}: header says {n_points} points but {len(body)} are listed")
    points = []
    for line in body:
        parts = line.split()
        try:
            xy = [float(v) for v in parts]
        except ValueError:
            raise AnnotationError(f"{path}: non-numeric point line '{line}'") from None
        if len(xy) != 2 or not all(math.isfinite(v) for v in xy):
            raise AnnotationError(f"{path}: point line '{line}' is not two finite numbers")
        points.append(xy)
    return np.asarray(points, dtype=np.float32).reshape(n_points, 2) - 1.0


def write_pts(path: str | Path, landmarks: np.ndarray) -> None:
    """Write (N, 2) 0-based pixel coordinates as a 300W `.pts` file (1-based)."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    lines = ["version: 1", f"n_points: {len(landmarks)}", "{"]
    lines += [f"{x + 1.0:.3f} {y + 1.0:.3f}" for x, y in landmarks]
    lines.append("}")
    Path(path).write_text("\n".join(lines) + "\n")
