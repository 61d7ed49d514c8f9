"""The occlusion panels: the paper's Figure 6 of the occlusion map P (`figure6_figure`: crop, P, crop x
P), and Figure-6 panels of the calibrated occlusion output: each face's crop with every ground-truth point
coloured by the calibrated probability that it is occluded (the suite's occlusion output, as predict
and the exported model give it), the points annotated occluded ringed, and the mean probability over
the face's visible and its occluded points printed above it. The paper's Figure 6 shows P, whose sign
training does not fix; these panels show what the suite outputs, for any network with a calibration
(P read at the points, or the visibility head's logit).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .plots import (
    FIGURE_DPI,
    OCCLUDED_RGB,
    OUTLINE_RGB,
    VISIBLE_RGB,
    check_image,
    face_grid,
    legend_dot,
    matplotlib_colour,
    render_rgb,
    tile_inches,
)

# Probability 0 (visible) green through yellow to red (occluded); rings on the points annotated occluded.
COLOUR_MAP = "RdYlGn_r"
RING = "white"
COLUMNS = 4
TILE_INCHES = 2.2
COLOUR_BAR_LABEL = "calibrated probability that the point is occluded"
# Around the panels: FIGURE6_FRAME_INCHES (title, column titles, colour bar, legend), ROW_LABEL_INCHES
# left of Figure 6's rows; its colour bar COLOUR_BAR_INCHES tall, COLOUR_BAR_PAD_INCHES below them.
FIGURE6_FRAME_INCHES = 1.6
COLOUR_BAR_INCHES = 0.35
COLOUR_BAR_PAD_INCHES = 0.1
ROW_LABEL_INCHES = 0.5


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
        check_image(image, f"image {i}")
    if len(occlusion_maps) != n:
        raise ValueError(f"{len(occlusion_maps)} occlusion maps for {n} images")
    masks = list(occluder_masks) if occluder_masks is not None else [None] * n
    marks = list(points) if points is not None else [None] * n
    flags = list(visible) if visible is not None else [None] * n
    if not len(masks) == len(marks) == len(flags) == n:
        raise ValueError(f"occluder_masks, points and visible must each have {n} entries")
    h, w = images.shape[1:3]
    tile_width, tile_height = tile_inches(h, w)
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
                    colors=[matplotlib_colour(OUTLINE_RGB)],
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
                        face[chosen, 0] - 0.5, face[chosen, 1] - 0.5, s=6, color=matplotlib_colour(rgb)
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
        handles.append(Line2D([], [], color=matplotlib_colour(OUTLINE_RGB), label="occluder outline"))
    if any_visible:
        handles.append(legend_dot(VISIBLE_RGB, "landmark, visible" if any_occluded else "landmark"))
    if any_occluded:
        handles.append(legend_dot(OCCLUDED_RGB, "landmark, occluded"))
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


def occlusion_probability_figure(
    images: np.ndarray,
    points: Sequence[np.ndarray],
    probabilities: Sequence[np.ndarray],
    visible: Sequence[np.ndarray | None],
    captions: Sequence[str],
    title: str | None = None,
) -> Figure:
    """images (N, H, W, 3) uint8 crops; per face: points (L, 2) in the crop's pixels, probabilities (L,)
    in [0, 1], visible (L,) bool or None (no flags: nothing ringed, no means), a caption."""
    n = len(images)
    if not len(points) == len(probabilities) == len(visible) == len(captions) == n:
        raise ValueError(f"points, probabilities, visible and captions must each have {n} entries")
    fig, axes = face_grid(n, COLUMNS, TILE_INCHES, TILE_INCHES, FIGURE6_FRAME_INCHES)
    shown = None
    for i in range(n):
        ax = axes.flat[i]
        face, probability = np.asarray(points[i], np.float64), np.clip(np.asarray(probabilities[i]), 0, 1)
        ax.imshow(images[i], interpolation="nearest")
        # Pixel centres are at integer + 0.5 in the crop's pixel frame, at integers in imshow's.
        x, y = face[:, 0] - 0.5, face[:, 1] - 0.5
        shown = ax.scatter(x, y, c=probability, cmap=COLOUR_MAP, vmin=0.0, vmax=1.0, s=14, linewidths=0)
        caption = captions[i]
        if visible[i] is not None:
            seen = np.asarray(visible[i], dtype=bool)
            if (~seen).any():
                ax.scatter(x[~seen], y[~seen], s=40, facecolors="none", edgecolors=RING, linewidths=0.8)
            means = [
                f"{name} {probability[chosen].mean():.2f}"
                for name, chosen in (("visible", seen), ("occluded", ~seen))
                if chosen.any()
            ]
            caption += "\nmean prob. " + ", ".join(means)
        ax.set_title(caption, fontsize="x-small")
    bar = fig.colorbar(shown, ax=axes, location="bottom", shrink=0.8, aspect=30, ticks=[0.0, 0.5, 1.0])
    bar.set_label(COLOUR_BAR_LABEL, fontsize="small")
    if any(v is not None and not np.asarray(v, bool).all() for v in visible):
        ring = Line2D([], [], marker="o", linestyle="", markerfacecolor="none", markeredgecolor="0.2")
        fig.legend(
            handles=[ring], labels=["annotated occluded"], loc="outside lower center", fontsize="x-small"
        )
    if title is not None:
        fig.suptitle(title, fontsize="medium")
    return fig


def occlusion_probability_picture(faces: Sequence[dict], title: str) -> np.ndarray:
    """The panels of report faces (`report_pictures.batch_faces` dicts carrying `occlusion_probability`)."""
    figure = occlusion_probability_figure(
        np.stack([face["image"] for face in faces]),
        [face["target"] for face in faces],
        [face["occlusion_probability"] for face in faces],
        [face.get("visible") for face in faces],
        [f"face {face['index']}" for face in faces],
        title=title,
    )
    return render_rgb(figure)
