"""Pictures for landmark research: CED curves, prediction grids, Figure 6 occlusion panels, PNG output."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

# A Figure drawn by its own Agg canvas, not pyplot: no display needed on training machines, and the
# backend of the caller (a notebook's inline one) is left alone.
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .atomic import atomic_write_bytes
from .metrics import auc_at, ced_curve, failure_rate_at

GROUND_TRUTH_RGB = (0, 255, 0)
PREDICTION_RGB = (255, 0, 0)
TEXT_RGB = (255, 255, 255)
CED_FIGSIZE = (6.0, 4.5)
CED_DPI = 100


def ced_legend(label: str, errors: np.ndarray, threshold: float) -> str:
    """Legend entry of one CED curve: label with its AUC and failure rate at `threshold`."""
    errors = np.asarray(errors, dtype=np.float64).ravel()
    if errors.size == 0:
        return f"{label} (no faces)"
    tensor = torch.from_numpy(errors)
    auc = auc_at(tensor, threshold).item()
    fr = failure_rate_at(tensor, threshold).item()
    return f"{label} (AUC {auc:.3f}, FR {fr:.3f})"


def plot_ced(
    curves: Mapping[str, np.ndarray], threshold: float, path: str | Path, title: str | None = None
) -> Path:
    """Overlay the cumulative error distributions of `curves` up to `threshold` and save a 600x450 PNG
    (written atomically). A face with a non-finite NME never reaches the curve."""
    if not threshold > 0:
        raise ValueError(f"CED threshold must be positive, got {threshold}")
    fig = Figure(figsize=CED_FIGSIZE, dpi=CED_DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for label, errors in curves.items():
        errors = np.asarray(errors, dtype=np.float64).ravel()
        legend = ced_legend(label, errors, threshold)
        if errors.size == 0:
            # An empty line still gets a legend entry, so a missing split is visible.
            ax.plot([], [], label=legend)
            continue
        xs, fractions = ced_curve(torch.from_numpy(errors), threshold)
        ax.plot(xs.numpy(), fractions.numpy(), label=legend)
    ax.set_xlim(0.0, threshold)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("NME (normalised)")
    ax.set_ylabel("fraction of faces")
    ax.grid(True, alpha=0.3)
    if title is not None:
        ax.set_title(title)
    if curves:
        ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    # No bbox_inches="tight": it would change the pixel size from run to run.
    encoded = io.BytesIO()
    fig.savefig(encoded, format="png", dpi=CED_DPI)
    return atomic_write_bytes(path, encoded.getvalue())


def _check_image(image: np.ndarray, name: str) -> None:
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{name} must have shape (H, W, 3), got {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8, got {image.dtype}")


def _draw_points(tile: np.ndarray, points: np.ndarray, colour: tuple[int, int, int], radius: int) -> None:
    for x, y in points:
        # A missing landmark (NaN) is skipped rather than crashing the whole grid.
        if not (math.isfinite(x) and math.isfinite(y)):
            continue
        cv2.circle(tile, (int(round(x)), int(round(y))), radius, colour, thickness=-1, lineType=cv2.LINE_8)


def tile_images(tiles: Sequence[np.ndarray], columns: int) -> np.ndarray:
    """Equally sized RGB uint8 images in a grid, row by row, `columns` wide; unfilled cells are black."""
    if len(tiles) == 0:
        raise ValueError("no tiles: nothing to put in a grid")
    if columns < 1:
        raise ValueError(f"columns must be at least 1, got {columns}")
    for k, tile in enumerate(tiles):
        _check_image(tile, f"tile {k}")
    h, w, _ = tiles[0].shape
    if any(tile.shape != tiles[0].shape for tile in tiles):
        raise ValueError(f"tiles differ in size: {sorted({tile.shape for tile in tiles})}")
    rows = math.ceil(len(tiles) / columns)
    grid = np.zeros((rows * h, columns * w, 3), dtype=np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, columns)
        grid[r * h : (r + 1) * h, c * w : (c + 1) * w] = tile
    return grid


def prediction_grid(
    images: np.ndarray,
    predicted: np.ndarray,
    target: np.ndarray,
    errors: np.ndarray | None = None,
    columns: int = 4,
) -> np.ndarray:
    """Tile images in a grid with ground truth (green) and predictions (red) drawn on, optionally NME text."""
    images = np.asarray(images)
    predicted = np.asarray(predicted, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if images.ndim != 4 or images.shape[3] != 3:
        raise ValueError(f"images must have shape (N, H, W, 3), got {images.shape}")
    if images.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got {images.dtype}")
    n, h, w, _ = images.shape
    if n == 0:
        raise ValueError("images is empty: nothing to put in a grid")
    if predicted.ndim != 3 or predicted.shape[2] != 2:
        raise ValueError(f"predicted must have shape (N, L, 2), got {predicted.shape}")
    if target.shape != predicted.shape:
        raise ValueError(f"target shape {target.shape} does not match predicted shape {predicted.shape}")
    if predicted.shape[0] != n:
        raise ValueError(f"predicted has {predicted.shape[0]} faces but images has {n}")
    if errors is not None:
        errors = np.asarray(errors, dtype=np.float64).ravel()
        if errors.shape[0] != n:
            raise ValueError(f"errors has {errors.shape[0]} values but images has {n}")
    if columns < 1:
        raise ValueError(f"columns must be at least 1, got {columns}")

    radius = max(1, round(h / 100))
    font_scale = max(0.3, h / 400)
    tiles = []
    for i in range(n):
        # cv2 draws in place and needs a contiguous array, so each tile is drawn on a copy.
        tile = np.ascontiguousarray(images[i]).copy()
        _draw_points(tile, target[i], GROUND_TRUTH_RGB, radius)
        _draw_points(tile, predicted[i], PREDICTION_RGB, radius)
        if errors is not None:
            text = f"NME {errors[i]:.3f}"
            (_, text_h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
            cv2.putText(
                tile, text, (2, 2 + text_h), cv2.FONT_HERSHEY_SIMPLEX, font_scale, TEXT_RGB, 1, cv2.LINE_AA
            )
        tiles.append(tile)
    return tile_images(tiles, min(columns, n))


def upsample_map(occlusion_map: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinearly resize a 2-D map to `size` = (H, W); returns float32 (H, W)."""
    occlusion_map = np.asarray(occlusion_map, dtype=np.float32)
    if occlusion_map.ndim != 2:
        raise ValueError(f"occlusion_map must have shape (h, w), got {occlusion_map.shape}")
    height, width = size
    # cv2 takes the destination size as (width, height).
    return cv2.resize(occlusion_map, (int(width), int(height)), interpolation=cv2.INTER_LINEAR)


OUTLINE_RGB = (255, 255, 255)
VISIBLE_RGB = (0, 255, 0)
OCCLUDED_RGB = (255, 0, 255)


def colour_bar(height: int, width: int) -> np.ndarray:
    """A vertical JET scale, P = 1 at the top to 0 at the bottom, labelled: (height, width, 3) uint8."""
    values = np.linspace(255, 0, height).astype(np.uint8)[:, None].repeat(width, axis=1)
    bar = cv2.cvtColor(cv2.applyColorMap(values, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    scale = max(height / 400, 0.25)
    for text, y in (("1", int(12 * scale * 2)), ("0", height - 4)):
        cv2.putText(bar, text, (1, y), cv2.FONT_HERSHEY_SIMPLEX, scale, TEXT_RGB, 1, cv2.LINE_AA)
    return bar


def figure6_panel(
    image: np.ndarray,
    occlusion_map: np.ndarray,
    occluder_mask: np.ndarray | None = None,
    points: np.ndarray | None = None,
    visible: np.ndarray | None = None,
) -> np.ndarray:
    """Image, its occlusion probability map P in colour, image x P and a colour bar of P, side by
    side: (H, 3W + W // 8, 3) uint8. With `occluder_mask` (H, W), the occluders' outline is drawn on
    the first two panels; with `points` (L, 2) in the crop's pixels, each landmark is marked on the map
    (green visible, magenta occluded, by `visible`) and the mean occlusion score 1 - P at the visible
    and at the occluded points is printed on the third panel."""
    _check_image(image, "image")
    h, w, _ = image.shape
    prob = np.clip(upsample_map(occlusion_map, (h, w)), 0.0, 1.0)
    coloured = cv2.applyColorMap(np.round(prob * 255).astype(np.uint8), cv2.COLORMAP_JET)
    coloured = cv2.cvtColor(coloured, cv2.COLOR_BGR2RGB)
    masked = np.ascontiguousarray(
        np.clip(np.round(image.astype(np.float32) * prob[..., None]), 0, 255).astype(np.uint8)
    )
    first = np.array(image, order="C")  # a copy to draw on; OpenCV draws on C-ordered arrays only
    coloured = np.ascontiguousarray(coloured)
    if occluder_mask is not None:
        contours, _ = cv2.findContours(
            (occluder_mask > 0).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE
        )
        for panel in (first, coloured):
            cv2.drawContours(panel, contours, -1, OUTLINE_RGB, 1)
    if points is not None:
        flags = np.ones(len(points), dtype=bool) if visible is None else np.asarray(visible, dtype=bool)
        columns = np.clip(np.round(points[:, 0] - 0.5).astype(int), 0, w - 1)
        rows = np.clip(np.round(points[:, 1] - 0.5).astype(int), 0, h - 1)
        scores = 1.0 - prob[rows, columns]
        radius = max(1, w // 96)
        for (x, y), seen in zip(points, flags, strict=True):
            cv2.circle(
                coloured, (int(round(x)), int(round(y))), radius, VISIBLE_RGB if seen else OCCLUDED_RGB, -1
            )
        size = max(w / 400, 0.3)
        lines = [f"1-P vis {scores[flags].mean():.2f}" if flags.any() else ""]
        lines.append(f"1-P occ {scores[~flags].mean():.2f}" if (~flags).any() else "")
        for i, text in enumerate(t for t in lines if t):
            cv2.putText(
                masked,
                text,
                (2, int((i + 1) * 30 * size)),
                cv2.FONT_HERSHEY_SIMPLEX,
                size,
                TEXT_RGB,
                1,
                cv2.LINE_AA,
            )
    return np.concatenate([first, coloured, masked, colour_bar(h, max(w // 8, 4))], axis=1)


def save_png(image: np.ndarray, path: str | Path) -> Path:
    """Write an RGB uint8 image as a PNG file, atomically, creating parent directories."""
    _check_image(image, "image")
    path = Path(path)
    # Encoded in memory: the file is PNG whatever its extension, and is written whole or not at all.
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"could not encode PNG for {path}")
    return atomic_write_bytes(path, encoded.tobytes())
