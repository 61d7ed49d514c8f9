"""Pictures for landmark research: CED curves, prediction grids, Figure 6 occlusion panels, PNG output.

The figures a reader sees (`ced_figure`, `prediction_figure`, `figure6_figure`) are matplotlib
figures that say what they show: a title, axis or column titles, a legend of the colours and, for P,
a colour bar; `render_rgb` gives their pixels. `prediction_grid` and `tile_images` are bare pixel grids."""

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

from .atomic import atomic_write_bytes
from .metrics import auc_at, ced_curve, failure_rate_at

GROUND_TRUTH_RGB = (0, 255, 0)
PREDICTION_RGB = (255, 0, 0)
TEXT_RGB = (255, 255, 255)
OUTLINE_RGB = (255, 255, 255)
VISIBLE_RGB = (0, 255, 0)
OCCLUDED_RGB = (255, 0, 255)
# Annotated figures (prediction_figure, figure6_figure): a face is shown at its own pixels but at least
# FACE_MIN_PIXELS wide; CAPTION_INCHES above each face, FRAME_INCHES (title, legend) and
# FIGURE6_FRAME_INCHES (title, column titles, colour bar, legend) around the grid, ROW_LABEL_INCHES
# left of Figure 6's rows; its colour bar is COLOUR_BAR_INCHES tall, COLOUR_BAR_PAD_INCHES below them.
FIGURE_DPI = 100
FACE_MIN_PIXELS = 160
CAPTION_INCHES = 0.25
FRAME_INCHES = 0.9
FIGURE6_FRAME_INCHES = 1.6
COLOUR_BAR_INCHES = 0.35
COLOUR_BAR_PAD_INCHES = 0.1
ROW_LABEL_INCHES = 0.5
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


def _matplotlib_colour(rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    return (rgb[0] / 255, rgb[1] / 255, rgb[2] / 255)


def _dot(rgb: tuple[int, int, int], label: str) -> Line2D:
    """A legend entry for dots of one colour."""
    return Line2D([], [], linestyle="", marker="o", markersize=6, color=_matplotlib_colour(rgb), label=label)


def _tile_inches(height: int, width: int) -> tuple[float, float]:
    """How large a face is shown: its own pixels, but never so small that its caption does not fit."""
    scale = max(1.0, FACE_MIN_PIXELS / width) / FIGURE_DPI
    return width * scale, height * scale


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
    if columns < 1:
        raise ValueError(f"columns must be at least 1, got {columns}")
    columns = min(columns, len(tiles))
    rows = math.ceil(len(tiles) / columns)
    tile_width, tile_height = _tile_inches(*tiles[0].shape[:2])
    fig = Figure(
        figsize=(columns * tile_width, rows * (tile_height + CAPTION_INCHES) + FRAME_INCHES),
        dpi=FIGURE_DPI,
        layout="constrained",
    )
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, columns, squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if k < len(tiles):
            ax.imshow(tiles[k], interpolation="nearest")
            if captions is not None:
                ax.set_title(captions[k], fontsize="small")
    handles = [_dot(PREDICTION_RGB, "prediction"), _dot(GROUND_TRUTH_RGB, "ground truth")]
    if visible is not None and not np.asarray(visible, dtype=bool).all():
        handles[1].set_label("ground truth, visible")
        handles.append(_dot(OCCLUDED_RGB, "ground truth, occluded"))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize="small")
    if title is not None:
        fig.suptitle(title, fontsize="medium")
    return fig


def upsample_map(occlusion_map: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinearly resize a 2-D map to `size` = (H, W); returns float32 (H, W)."""
    occlusion_map = np.asarray(occlusion_map, dtype=np.float32)
    if occlusion_map.ndim != 2:
        raise ValueError(f"occlusion_map must have shape (h, w), got {occlusion_map.shape}")
    height, width = size
    # cv2 takes the destination size as (width, height).
    return cv2.resize(occlusion_map, (int(width), int(height)), interpolation=cv2.INTER_LINEAR)


FIGURE6_COLUMNS = ("input crop", "occlusion map P\n(1 = kept, 0 = suppressed)", "P over the face\n(crop x P)")
FIGURE6_COLOUR_BAR = "P: 1 = feature kept (visible), 0 = suppressed (occluded)"


def figure6_figure(
    images: np.ndarray,
    occlusion_maps: np.ndarray,
    occluder_masks: Sequence[np.ndarray | None] | None = None,
    points: Sequence[np.ndarray] | None = None,
    visible: Sequence[np.ndarray | None] | None = None,
    title: str | None = None,
    row_labels: Sequence[str] | None = None,
) -> Figure:
    """The paper's Figure 6, one face a row: the input crop, its occlusion map P (jet, 0 to 1 against
    the colour bar below) and the crop x P, under the column titles of FIGURE6_COLUMNS.

    images (N, H, W, 3) uint8; occlusion_maps (N, h, w) in [0, 1], up-sampled bilinearly to the crop.
    With `occluder_masks` (each (H, W) or None), the occluders' outline (white) is drawn on the first
    two columns; with `points` (each (L, 2) in the crop's pixels), each landmark is marked on the map,
    green visible, magenta occluded by `visible` (each (L,) bool or None: all visible), and the mean
    occlusion score 1 - P at the visible and at the occluded points is printed on the third column.
    """
    images = np.asarray(images)
    n = len(images)
    for i, image in enumerate(images):
        _check_image(image, f"image {i}")
    if len(occlusion_maps) != n:
        raise ValueError(f"{len(occlusion_maps)} occlusion maps for {n} images")
    masks = list(occluder_masks) if occluder_masks is not None else [None] * n
    marks = list(points) if points is not None else [None] * n
    flags = list(visible) if visible is not None else [None] * n
    if not len(masks) == len(marks) == len(flags) == n:
        raise ValueError(f"occluder_masks, points and visible must each have {n} entries")
    h, w = images.shape[1:3]
    tile_width, tile_height = _tile_inches(h, w)
    fig = Figure(
        figsize=(3 * tile_width + ROW_LABEL_INCHES, n * tile_height + FIGURE6_FRAME_INCHES),
        dpi=FIGURE_DPI,
        layout="constrained",
    )
    FigureCanvasAgg(fig)
    axes = fig.subplots(n, 3, squeeze=False)
    outline, any_visible, any_occluded = False, False, False
    for i in range(n):
        image = images[i]
        prob = np.clip(upsample_map(occlusion_maps[i], (h, w)), 0.0, 1.0)
        masked = np.clip(np.round(image.astype(np.float32) * prob[..., None]), 0, 255).astype(np.uint8)
        shown = axes[i, 1].imshow(prob, cmap="jet", vmin=0.0, vmax=1.0, interpolation="nearest")
        axes[i, 0].imshow(image, interpolation="nearest")
        axes[i, 2].imshow(masked, interpolation="nearest")
        for ax in axes[i]:
            ax.set_axis_off()
        if masks[i] is not None and (np.asarray(masks[i]) > 0).any():
            outline = True
            for ax in axes[i, :2]:
                ax.contour(
                    (np.asarray(masks[i]) > 0).astype(np.float32),
                    levels=[0.5],
                    colors=[_matplotlib_colour(OUTLINE_RGB)],
                    linewidths=1.0,
                )
        if marks[i] is not None:
            face = np.asarray(marks[i], dtype=np.float64)
            seen = np.ones(len(face), dtype=bool) if flags[i] is None else np.asarray(flags[i], dtype=bool)
            any_visible, any_occluded = any_visible or seen.any(), any_occluded or (~seen).any()
            # Pixel centres are at integer + 0.5 in the crop's pixel frame, at integers in imshow's.
            for chosen, rgb in ((seen, VISIBLE_RGB), (~seen, OCCLUDED_RGB)):
                if chosen.any():
                    axes[i, 1].scatter(
                        face[chosen, 0] - 0.5, face[chosen, 1] - 0.5, s=6, color=_matplotlib_colour(rgb)
                    )
            columns = np.clip(np.round(face[:, 0] - 0.5).astype(int), 0, w - 1)
            rows = np.clip(np.round(face[:, 1] - 0.5).astype(int), 0, h - 1)
            scores = 1.0 - prob[rows, columns]
            lines = [f"1-P visible {scores[seen].mean():.2f}" if seen.any() else ""]
            lines.append(f"1-P occluded {scores[~seen].mean():.2f}" if (~seen).any() else "")
            axes[i, 2].text(
                0.02,
                0.98,
                "\n".join(line for line in lines if line),
                transform=axes[i, 2].transAxes,
                va="top",
                fontsize="x-small",
                color="white",
                bbox={"facecolor": "black", "alpha": 0.5, "linewidth": 0, "pad": 1.5},
            )
        if row_labels is not None:
            axes[i, 0].text(
                -0.04,
                0.5,
                row_labels[i],
                transform=axes[i, 0].transAxes,
                rotation=90,
                ha="right",
                va="center",
                fontsize="x-small",
            )
    for ax, column in zip(axes[0], FIGURE6_COLUMNS, strict=True):
        ax.set_title(column, fontsize="small")
    # The bar's size and its gap as fractions of the grid's height: matplotlib's defaults (15% and 15%)
    # would leave a gap of inches under a tall grid.
    bar = fig.colorbar(
        shown,
        ax=axes,
        location="bottom",
        fraction=COLOUR_BAR_INCHES / (n * tile_height),
        pad=COLOUR_BAR_PAD_INCHES / (n * tile_height),
        shrink=0.9,
        aspect=30,
        ticks=[0.0, 0.5, 1.0],
    )
    bar.set_label(FIGURE6_COLOUR_BAR, fontsize="small")
    bar.ax.set_xticklabels(["0 suppressed", "0.5", "1 kept"], fontsize="x-small")
    handles = []
    if outline:
        handles.append(Line2D([], [], color=_matplotlib_colour(OUTLINE_RGB), label="occluder outline"))
    if any_visible:
        handles.append(_dot(VISIBLE_RGB, "landmark, visible" if any_occluded else "landmark"))
    if any_occluded:
        handles.append(_dot(OCCLUDED_RGB, "landmark, occluded"))
    if handles:
        # Grey behind the entries: the outline is white.
        fig.legend(
            handles=handles,
            loc="outside lower center",
            ncols=len(handles),
            fontsize="x-small",
            facecolor="0.55",
        )
    if title is not None:
        fig.suptitle(title, fontsize="medium")
    return fig


def save_png(image: np.ndarray, path: str | Path) -> Path:
    """Write an RGB uint8 image as a PNG file, atomically, creating parent directories."""
    _check_image(image, "image")
    path = Path(path)
    # Encoded in memory: the file is PNG whatever its extension, and is written whole or not at all.
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"could not encode PNG for {path}")
    return atomic_write_bytes(path, encoded.tobytes())
