"""Pictures for landmark research: CED curves, prediction grids, PNG output (Figure 6 and the calibrated
occlusion panels: `evaluation.occlusion_panels`).

The figures a reader sees (`ced_figure`, `prediction_figure`; `face_grid` lays out a grid of faces for
them and the panels) are matplotlib figures that say what they show: a title, axis titles, a legend of
the colours; `render_rgb` gives their pixels. `prediction_grid` and `tile_images` are bare pixel grids."""

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
from matplotlib.lines import Line2D

from ..atomic import atomic_write_bytes
from .metrics import auc_at, ced_curve, failure_rate_at

GROUND_TRUTH_RGB = (0, 255, 0)
PREDICTION_RGB = (255, 0, 0)
TEXT_RGB = (255, 255, 255)
OUTLINE_RGB = (255, 255, 255)
VISIBLE_RGB = (0, 255, 0)
OCCLUDED_RGB = (255, 0, 255)
# Annotated figures (prediction_figure, the occlusion panels): a face is shown at its own pixels but at
# least FACE_MIN_PIXELS wide (`tile_inches`); CAPTION_INCHES above each face, FRAME_INCHES (title,
# legend) around the grid.
FIGURE_DPI = 100
FACE_MIN_PIXELS = 160
CAPTION_INCHES = 0.25
FRAME_INCHES = 0.9
CED_FIGSIZE = (6.0, 4.5)
CED_DPI = 100
# The CED legend's rows beyond CED_LEGEND_ROWS make the figure CED_LEGEND_ROW_INCHES taller each.
CED_LEGEND_ROWS = 2
CED_LEGEND_ROW_INCHES = 0.22


def ced_legend(label: str, errors: np.ndarray, threshold: float) -> str:
    """Legend entry of one CED curve: label with its AUC and failure rate at `threshold`."""
    errors = np.asarray(errors, dtype=np.float64).ravel()
    if errors.size == 0:
        return f"{label} (no faces)"
    tensor = torch.from_numpy(errors)
    auc = auc_at(tensor, threshold).item()
    fr = failure_rate_at(tensor, threshold).item()
    return f"{label} (AUC {auc:.3f}, FR {fr:.3f})"


def ced_figure(
    curves: Mapping[str, np.ndarray],
    threshold: float,
    title: str | None = None,
    normalisation: str | None = None,
) -> Figure:
    """The cumulative error distributions of `curves` up to `threshold`, overlaid, with the legend
    below the axes (a long list of curves never hides one) and the NME's normaliser on the x axis:
    600 x 450 px while the legend has at most two rows (four short entries), taller with more. A
    face with a non-finite NME never reaches the curve."""
    if not threshold > 0:
        raise ValueError(f"CED threshold must be positive, got {threshold}")
    legends = {label: ced_legend(label, errors, threshold) for label, errors in curves.items()}
    fig = Figure(figsize=CED_FIGSIZE, dpi=CED_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for label, errors in curves.items():
        errors = np.asarray(errors, dtype=np.float64).ravel()
        if errors.size == 0:
            # An empty line still gets a legend entry, so a missing split is visible.
            ax.plot([], [], label=legends[label])
            continue
        xs, fractions = ced_curve(torch.from_numpy(errors), threshold)
        ax.plot(xs.numpy(), fractions.numpy(), label=legends[label])
    ax.set_xlim(0.0, threshold)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel(f"NME, normalised by {normalisation}" if normalisation else "NME (normalised)")
    ax.set_ylabel("fraction of faces with NME below x")
    ax.grid(True, alpha=0.3)
    if title is not None:
        ax.set_title(title)
    if curves:
        _ced_legend_below(fig, len(curves), f"AUC and failure rate (FR) at NME {threshold:g}")
    return fig


def _ced_legend_below(fig: Figure, entries: int, title: str) -> None:
    """The axes' legend below them: two entries a row where two fit in the figure's width, else one;
    each row beyond CED_LEGEND_ROWS makes the figure CED_LEGEND_ROW_INCHES taller, so that the axes
    keep their height."""
    renderer = fig.canvas.get_renderer()
    for columns in (2, 1) if entries > 1 else (1,):
        legend = fig.legend(loc="outside lower center", ncols=columns, fontsize="small", title=title)
        if legend.get_window_extent(renderer).width <= fig.bbox.width or columns == 1:
            break
        legend.remove()
    rows = math.ceil(entries / columns)
    width, height = fig.get_size_inches()
    fig.set_size_inches(width, height + max(0, rows - CED_LEGEND_ROWS) * CED_LEGEND_ROW_INCHES)


def plot_ced(
    curves: Mapping[str, np.ndarray],
    threshold: float,
    path: str | Path,
    title: str | None = None,
    normalisation: str | None = None,
) -> Path:
    """`ced_figure` saved as a PNG (written atomically)."""
    fig = ced_figure(curves, threshold, title, normalisation)
    # No bbox_inches="tight": it would change the pixel size from run to run.
    encoded = io.BytesIO()
    fig.savefig(encoded, format="png", dpi=CED_DPI)
    return atomic_write_bytes(path, encoded.getvalue())


def check_image(image: np.ndarray, name: str) -> None:
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
        check_image(tile, f"tile {k}")
    h, w, _ = tiles[0].shape
    if any(tile.shape != tiles[0].shape for tile in tiles):
        raise ValueError(f"tiles differ in size: {sorted({tile.shape for tile in tiles})}")
    rows = math.ceil(len(tiles) / columns)
    grid = np.zeros((rows * h, columns * w, 3), dtype=np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, columns)
        grid[r * h : (r + 1) * h, c * w : (c + 1) * w] = tile
    return grid


def _check_faces(
    images: np.ndarray,
    predicted: np.ndarray,
    target: np.ndarray,
    errors: np.ndarray | None,
    visible: np.ndarray | None,
) -> None:
    if images.ndim != 4 or images.shape[3] != 3:
        raise ValueError(f"images must have shape (N, H, W, 3), got {images.shape}")
    if images.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got {images.dtype}")
    n = images.shape[0]
    if n == 0:
        raise ValueError("images is empty: nothing to put in a grid")
    if predicted.ndim != 3 or predicted.shape[2] != 2:
        raise ValueError(f"predicted must have shape (N, L, 2), got {predicted.shape}")
    if target.shape != predicted.shape:
        raise ValueError(f"target shape {target.shape} does not match predicted shape {predicted.shape}")
    if predicted.shape[0] != n:
        raise ValueError(f"predicted has {predicted.shape[0]} faces but images has {n}")
    if errors is not None and errors.shape[0] != n:
        raise ValueError(f"errors has {errors.shape[0]} values but images has {n}")
    if visible is not None and visible.shape != predicted.shape[:2]:
        raise ValueError(f"visible must have shape {predicted.shape[:2]}, got {visible.shape}")


def prediction_tiles(
    images: np.ndarray, predicted: np.ndarray, target: np.ndarray, visible: np.ndarray | None = None
) -> list[np.ndarray]:
    """Each image with its ground truth (green; magenta where `visible` (N, L) says occluded) and
    prediction (red, drawn last) as dots, in the crop's pixels."""
    images = np.asarray(images)
    predicted = np.asarray(predicted, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    visible = None if visible is None else np.asarray(visible, dtype=bool)
    _check_faces(images, predicted, target, None, visible)
    radius = max(1, round(images.shape[1] / 100))
    tiles = []
    for i in range(len(images)):
        # cv2 draws in place and needs a contiguous array, so each tile is drawn on a copy.
        tile = np.ascontiguousarray(images[i]).copy()
        seen = np.ones(len(target[i]), dtype=bool) if visible is None else visible[i]
        _draw_points(tile, target[i][seen], GROUND_TRUTH_RGB, radius)
        _draw_points(tile, target[i][~seen], OCCLUDED_RGB, radius)
        _draw_points(tile, predicted[i], PREDICTION_RGB, radius)
        tiles.append(tile)
    return tiles


def prediction_grid(
    images: np.ndarray,
    predicted: np.ndarray,
    target: np.ndarray,
    errors: np.ndarray | None = None,
    columns: int = 4,
    visible: np.ndarray | None = None,
) -> np.ndarray:
    """Tile images in a grid with ground truth (green) and predictions (red) drawn on, optionally NME
    text; a bare pixel grid (`prediction_figure` is the one with a title and a legend)."""
    images = np.asarray(images)
    predicted = np.asarray(predicted, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if errors is not None:
        errors = np.asarray(errors, dtype=np.float64).ravel()
    _check_faces(images, predicted, target, errors, None)
    if columns < 1:
        raise ValueError(f"columns must be at least 1, got {columns}")
    tiles = prediction_tiles(images, predicted, target, visible)
    font_scale = max(0.3, images.shape[1] / 400)
    for i, tile in enumerate(tiles):
        if errors is not None:
            text = f"NME {errors[i]:.3f}"
            (_, text_h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
            cv2.putText(
                tile, text, (2, 2 + text_h), cv2.FONT_HERSHEY_SIMPLEX, font_scale, TEXT_RGB, 1, cv2.LINE_AA
            )
    return tile_images(tiles, min(columns, len(tiles)))


def render_rgb(fig: Figure) -> np.ndarray:
    """A figure's pixels, (H, W, 3) uint8 RGB: for save_png and the loggers."""
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return np.array(canvas.buffer_rgba())[..., :3]


def matplotlib_colour(rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    return (rgb[0] / 255, rgb[1] / 255, rgb[2] / 255)


def legend_dot(rgb: tuple[int, int, int], label: str) -> Line2D:
    """A legend entry for dots of one colour."""
    return Line2D([], [], linestyle="", marker="o", markersize=6, color=matplotlib_colour(rgb), label=label)


def tile_inches(height: int, width: int) -> tuple[float, float]:
    """How large a face is shown: its own pixels, but never so small that its caption does not fit."""
    scale = max(1.0, FACE_MIN_PIXELS / width) / FIGURE_DPI
    return width * scale, height * scale


def face_grid(
    count: int, columns: int, tile_width: float, tile_height: float, frame_inches: float
) -> tuple[Figure, np.ndarray]:
    """A figure of `count` faces in a grid at most `columns` wide, each tile_width x tile_height inches
    with room for a caption above it, `frame_inches` more for title and legend: the figure and its axes
    (rows, columns), every axis off."""
    if columns < 1:
        raise ValueError(f"columns must be at least 1, got {columns}")
    columns = min(columns, count)
    rows = math.ceil(count / columns)
    fig = Figure(
        figsize=(columns * tile_width, rows * (tile_height + CAPTION_INCHES) + frame_inches),
        dpi=FIGURE_DPI,
        layout="constrained",
    )
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    return fig, axes


def prediction_figure(
    images: np.ndarray,
    predicted: np.ndarray,
    target: np.ndarray,
    captions: Sequence[str] | None = None,
    visible: np.ndarray | None = None,
    title: str | None = None,
    columns: int = 4,
) -> Figure:
    """The faces of `prediction_tiles` in a grid, `columns` wide, each under its caption (e.g. its
    index and NME), with `title` above and a legend of the dots' colours below."""
    tiles = prediction_tiles(images, predicted, target, visible)
    if captions is not None and len(captions) != len(tiles):
        raise ValueError(f"{len(captions)} captions for {len(tiles)} faces")
    fig, axes = face_grid(len(tiles), columns, *tile_inches(*tiles[0].shape[:2]), FRAME_INCHES)
    for k, ax in enumerate(axes.flat):
        if k < len(tiles):
            ax.imshow(tiles[k], interpolation="nearest")
            if captions is not None:
                ax.set_title(captions[k], fontsize="small")
    handles = [legend_dot(PREDICTION_RGB, "prediction"), legend_dot(GROUND_TRUTH_RGB, "ground truth")]
    if visible is not None and not np.asarray(visible, dtype=bool).all():
        handles[1].set_label("ground truth, visible")
        handles.append(legend_dot(OCCLUDED_RGB, "ground truth, occluded"))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize="small")
    if title is not None:
        fig.suptitle(title, fontsize="medium")
    return fig


def save_png(image: np.ndarray, path: str | Path) -> Path:
    """Write an RGB uint8 image as a PNG file, atomically, creating parent directories."""
    check_image(image, "image")
    path = Path(path)
    # Encoded in memory: the file is PNG whatever its extension, and is written whole or not at all.
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"could not encode PNG for {path}")
    return atomic_write_bytes(path, encoded.tobytes())
