from __future__ import annotations

import cv2
import numpy as np
import pytest
from matplotlib.collections import PathCollection
from PIL import Image

from odn_lightning.evaluation.occlusion_panels import (
    FIGURE6_COLOUR_BAR,
    FIGURE6_COLUMNS,
    figure6_figure,
    upsample_map,
)
from odn_lightning.evaluation.plots import (
    ced_figure,
    ced_legend,
    plot_ced,
    prediction_figure,
    prediction_grid,
    prediction_tiles,
    render_rgb,
    save_png,
)

H, W = 64, 48
THRESHOLD = 0.08


def grey_images(n: int, value: int = 100) -> np.ndarray:
    return np.full((n, H, W, 3), value, dtype=np.uint8)


def png_size(path) -> tuple[int, int]:
    image = cv2.imread(str(path))
    assert image is not None
    return image.shape[1], image.shape[0]


# --- plot_ced ---------------------------------------------------------------------------------


def test_plot_ced_one_curve_is_600_by_450(tmp_path):
    errors = np.random.default_rng(0).uniform(0.0, 0.12, size=50)
    path = plot_ced({"test": errors}, THRESHOLD, tmp_path / "nested" / "dir" / "ced.png", title="one")
    assert path.is_file()
    assert png_size(path) == (600, 450)


def test_plot_ced_three_curves_and_empty_one_is_600_by_450(tmp_path):
    rng = np.random.default_rng(1)
    curves = {
        "common": rng.uniform(0.0, 0.06, size=30),
        "challenging": rng.uniform(0.02, 0.15, size=30),
        "run b": rng.uniform(0.0, 0.1, size=30),
        "empty": np.zeros(0),
    }
    path = plot_ced(curves, THRESHOLD, str(tmp_path / "ced3.png"))
    assert png_size(path) == (600, 450)


def test_ced_legend_sits_below_the_axes_and_the_figure_grows_to_hold_seven_long_entries(tmp_path):
    rng = np.random.default_rng(2)
    # Table 4's rows: seven curves, one label too long for two legend columns.
    labels = ["BRNet", "BRNet, conv_pool readout (control)", "+GM+DM", "+DM+LM", "+GM+LM", "w/o L1", "ODN"]
    curves = {label: rng.uniform(0.0, 0.1, size=40) for label in labels}
    fig = ced_figure(curves, THRESHOLD, title="ODN, common", normalisation="inter_ocular")
    render_rgb(fig)  # lays the figure out
    (ax,) = fig.axes
    (legend,) = fig.legends
    box = legend.get_window_extent()
    assert box.y1 <= ax.get_window_extent().y0  # below the axes, its ticks and label: hides no curve
    assert box.x0 >= 0 and box.x1 <= fig.bbox.width and box.y0 >= 0  # and whole
    assert len(legend.get_texts()) == 7 and legend.get_texts()[1].get_text().startswith("BRNet, conv_pool")
    assert ax.get_xlabel() == "NME, normalised by inter_ocular" and ax.get_title() == "ODN, common"
    width, height = png_size(plot_ced(curves, THRESHOLD, tmp_path / "seven.png"))
    assert width == 600 and height > 450


def test_plot_ced_rejects_non_positive_threshold(tmp_path):
    with pytest.raises(ValueError, match="threshold"):
        plot_ced({"a": np.zeros(3)}, 0.0, tmp_path / "bad.png")


def test_ced_legend_all_failures_and_all_perfect():
    failing = ced_legend("bad", np.full(10, THRESHOLD * 2), THRESHOLD)
    perfect = ced_legend("good", np.zeros(10), THRESHOLD)
    assert failing.startswith("bad (")
    assert "FR 1.000" in failing
    assert "AUC 0.000" in failing
    assert "AUC 1.000" in perfect
    assert "FR 0.000" in perfect


def test_ced_legend_empty_says_no_faces():
    assert ced_legend("missing", np.zeros(0), THRESHOLD) == "missing (no faces)"


# --- prediction_grid --------------------------------------------------------------------------


def test_grid_shape_and_empty_tiles_are_black():
    n, columns = 5, 4
    points = np.full((n, 3, 2), 20.0)
    grid = prediction_grid(grey_images(n), points, points.copy(), columns=columns)
    assert grid.shape == (2 * H, 4 * W, 3)
    assert grid.dtype == np.uint8
    # Tile 5 (second row, first column) holds an image; tiles 6, 7, 8 are empty.
    assert grid[H:, :W].any()
    assert not grid[H:, W:].any()


def test_grid_uses_fewer_columns_for_few_images():
    points = np.zeros((2, 1, 2))
    grid = prediction_grid(grey_images(2), points, points, columns=4)
    assert grid.shape == (H, 2 * W, 3)


def test_grid_draws_prediction_red_and_ground_truth_green():
    images = grey_images(2)
    predicted = np.array([[[10.2, 30.4]], [[40.0, 55.0]]])
    target = np.array([[[35.0, 8.0]], [[5.0, 12.0]]])
    grid = prediction_grid(images, predicted, target, columns=2)
    # First tile.
    assert tuple(grid[30, 10]) == (255, 0, 0)
    assert tuple(grid[8, 35]) == (0, 255, 0)
    # Second tile is shifted right by W.
    assert tuple(grid[55, W + 40]) == (255, 0, 0)
    assert tuple(grid[12, W + 5]) == (0, 255, 0)
    # Far from any point the image is untouched.
    assert tuple(grid[50, 25]) == (100, 100, 100)


def test_grid_prediction_drawn_over_ground_truth():
    point = np.array([[[20.0, 20.0]]])
    grid = prediction_grid(grey_images(1), point, point.copy())
    assert tuple(grid[20, 20]) == (255, 0, 0)


def test_grid_error_text_is_white_at_top_left():
    images = grey_images(1, value=0)
    points = np.array([[[40.0, 60.0]]])
    plain = prediction_grid(images, points, points)
    labelled = prediction_grid(images, points, points, errors=np.array([0.041]))
    corner = (slice(0, H // 3), slice(0, W // 2))
    assert not plain[corner].any()
    # Anti-aliased (LINE_AA): at this size OpenCV 4 draws the strokes' cores at about 251, not 255.
    text = labelled[corner]
    white = (text >= 200).all(axis=-1) & (text.max(axis=-1) == text.min(axis=-1))
    assert white.any()


@pytest.mark.parametrize(
    ("predicted_shape", "target_shape", "errors", "match"),
    [
        ((3, 5, 2), (3, 6, 2), None, "target shape"),
        ((2, 5, 2), (2, 5, 2), None, "faces"),
        ((3, 5, 3), (3, 5, 3), None, "predicted"),
        ((3, 5, 2), (3, 5, 2), np.zeros(2), "errors"),
    ],
)
def test_grid_shape_mismatch_raises(predicted_shape, target_shape, errors, match):
    with pytest.raises(ValueError, match=match):
        prediction_grid(grey_images(3), np.zeros(predicted_shape), np.zeros(target_shape), errors=errors)


def test_prediction_figure_titles_each_face_and_says_which_colour_is_which():
    images = grey_images(3)
    target = np.array([[[10.0, 10.0], [30.0, 30.0]]] * 3)
    visible = np.array([[True, False]] * 3)
    fig = prediction_figure(
        images,
        target + 2.0,
        target,
        ["face 0: NME 0.010", "face 5: NME 0.020", "face 9: NME 0.030"],
        visible,
        title="ODN, common: the first 3 faces",
        columns=2,
    )
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["face 0: NME 0.010", "face 5: NME 0.020", "face 9: NME 0.030", ""]  # one empty cell
    assert fig.get_suptitle() == "ODN, common: the first 3 faces"
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == [
        "prediction",
        "ground truth, visible",
        "ground truth, occluded",
    ]
    # Each legend dot has the colour its points are drawn in.
    assert [tuple(np.round(np.array(h.get_color()) * 255)) for h in legend.legend_handles] == [
        (255, 0, 0),
        (0, 255, 0),
        (255, 0, 255),
    ]
    tile = prediction_tiles(images[:1], np.full((1, 2, 2), 50.0), target[:1], visible[:1])[0]
    assert tuple(tile[10, 10]) == (0, 255, 0) and tuple(tile[30, 30]) == (255, 0, 255)
    # Without visibility flags the legend has no occluded entry.
    plain = prediction_figure(images, target, target)
    assert [t.get_text() for t in plain.legends[0].get_texts()] == ["prediction", "ground truth"]


def test_grid_rejects_non_rgb_images():
    with pytest.raises(ValueError, match="images"):
        prediction_grid(np.zeros((2, H, W), np.uint8), np.zeros((2, 1, 2)), np.zeros((2, 1, 2)))


# --- figure6_panel / upsample_map -------------------------------------------------------------


def random_image() -> np.ndarray:
    return np.random.default_rng(3).integers(1, 256, size=(H, W, 3), dtype=np.uint8)


def test_figure6_shows_the_crop_p_and_the_crop_times_p():
    image = random_image()
    fig = figure6_figure(np.stack([image, image]), np.stack([np.zeros((8, 6)), np.ones((8, 6))]))
    zero_row, one_row = np.array(fig.axes[:6]).reshape(2, 3)
    np.testing.assert_array_equal(zero_row[0].images[0].get_array(), image)
    assert zero_row[1].images[0].get_array().shape == (H, W)  # P, up-sampled to the crop
    assert not np.asarray(zero_row[2].images[0].get_array()).any()  # P = 0 suppresses everything
    np.testing.assert_array_equal(one_row[2].images[0].get_array(), image)  # P = 1 keeps the crop
    assert fig.legends == []  # no outline, no points: nothing to explain


def test_figure6_columns_are_titled_and_the_colour_bar_says_what_p_means():
    faces = np.stack([random_image()] * 2)
    fig = figure6_figure(faces, np.full((2, 4, 4), 0.5), title="ODN (GM+LM+DM), common")
    assert fig.get_suptitle() == "ODN (GM+LM+DM), common"
    grid = np.array(fig.axes[:6]).reshape(2, 3)
    assert [ax.get_title() for ax in grid[0]] == list(FIGURE6_COLUMNS)
    assert (
        FIGURE6_COLUMNS[1].startswith("occlusion map P") and "1 = kept, 0 = suppressed" in FIGURE6_COLUMNS[1]
    )
    assert [ax.get_title() for ax in grid[1]] == ["", "", ""]
    (bar_axes,) = fig.axes[6:]
    assert bar_axes.get_xlabel() == FIGURE6_COLOUR_BAR
    assert [t.get_text() for t in bar_axes.get_xticklabels()] == ["0 suppressed", "0.5", "1 kept"]
    # The colour bar is P's own scale: jet from 0 to 1, as the map is drawn.
    shown = grid[0, 1].images[0]
    assert shown.get_cmap().name == "jet" and shown.get_clim() == (0.0, 1.0)
    assert bar_axes.collections or bar_axes.images  # the bar's colours are drawn


def test_figure6_outlines_the_occluder_and_marks_points_by_visibility():
    image = np.full((H, W, 3), 100, dtype=np.uint8)
    mask = np.zeros((H, W), dtype=np.uint8)
    mask[10:30, 10:30] = 255
    points = np.array([[6.0, 6.0], [20.0, 20.0]])
    fig = figure6_figure(image[None], np.full((1, 4, 4), 0.5), [mask], [points], [np.array([True, False])])
    crop, occlusion, product = fig.axes[:3]
    # The occluder's outline on the crop and on P.
    assert crop.collections and occlusion.collections
    dots = [c for c in occlusion.collections if isinstance(c, PathCollection)]  # scatter, not contour
    colours = {tuple(np.round(c.get_facecolor()[0][:3] * 255)): c.get_offsets().tolist() for c in dots}
    assert colours[(0, 255, 0)] == [[5.5, 5.5]] and colours[(255, 0, 255)] == [[19.5, 19.5]]
    (text,) = product.texts
    assert text.get_text() == "1-P visible 0.50\n1-P occluded 0.50"
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == [
        "occluder outline",
        "landmark, visible",
        "landmark, occluded",
    ]


def test_upsample_map_of_constant_is_constant():
    out = upsample_map(np.full((5, 7), 0.3), (H, W))
    assert out.shape == (H, W)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, 0.3, rtol=1e-6)


def test_upsample_map_keeps_a_left_to_right_ramp():
    step = np.zeros((4, 4), dtype=np.float32)
    step[:, 2:] = 1.0
    out = upsample_map(step, (H, W))
    assert out.shape == (H, W)
    assert out[:, 0].max() == 0.0
    assert out[:, -1].min() == 1.0
    assert (np.diff(out, axis=1) >= 0).all()
    assert out.min() >= 0.0 and out.max() <= 1.0


# --- save_png ---------------------------------------------------------------------------------


def test_save_png_round_trips_exactly(tmp_path):
    image = random_image()
    path = save_png(image, tmp_path / "a" / "b" / "img.png")
    assert path.is_file()
    np.testing.assert_array_equal(np.asarray(Image.open(path).convert("RGB")), image)


def test_save_png_keeps_red_red(tmp_path):
    red = np.zeros((10, 12, 3), dtype=np.uint8)
    red[..., 0] = 255
    path = save_png(red, tmp_path / "red.png")
    np.testing.assert_array_equal(np.asarray(Image.open(path).convert("RGB")), red)


def test_save_png_failure_names_path(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    target = blocker / "img.png"
    with pytest.raises(OSError, match="img.png"):
        save_png(random_image(), target)
