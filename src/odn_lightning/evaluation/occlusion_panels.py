"""Figure-6 panels of the calibrated occlusion output: each face's crop with every ground-truth point
coloured by the calibrated probability that it is occluded (the suite's occlusion output, as predict
and the exported model give it), the points annotated occluded ringed, and the mean probability over
the face's visible and its occluded points printed above it. The paper's Figure 6 shows P, whose sign
training does not fix; these panels show what the suite outputs, for any network with a calibration
(P read at the points, or the visibility head's logit).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..plots import CAPTION_INCHES, FIGURE6_FRAME_INCHES, FIGURE_DPI, render_rgb

# Probability 0 (visible) green through yellow to red (occluded); rings on the points annotated occluded.
COLOUR_MAP = "RdYlGn_r"
RING = "white"
COLUMNS = 4
TILE_INCHES = 2.2
COLOUR_BAR_LABEL = "calibrated probability that the point is occluded"


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
    columns = min(COLUMNS, n)
    rows = -(-n // columns)
    fig = Figure(
        figsize=(columns * TILE_INCHES, rows * (TILE_INCHES + CAPTION_INCHES) + FIGURE6_FRAME_INCHES),
        dpi=FIGURE_DPI,
        layout="constrained",
    )
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, columns, squeeze=False)
    shown = None
    for ax in axes.flat:
        ax.set_axis_off()
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
    """The panels of report faces (`reports.faces_of_batch` dicts carrying `occlusion_probability`)."""
    figure = occlusion_probability_figure(
        np.stack([face["image"] for face in faces]),
        [face["target"] for face in faces],
        [face["occlusion_probability"] for face in faces],
        [face.get("visible") for face in faces],
        [f"face {face['index']}" for face in faces],
        title=title,
    )
    return render_rgb(figure)
