from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from odn_lightning.plots import (
    ced_legend,
    figure6_panel,
    plot_ced,
    prediction_grid,
    save_png,
    upsample_map,
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
    assert (labelled[corner] == 255).all(axis=-1).any()


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


def test_grid_rejects_non_rgb_images():
    with pytest.raises(ValueError, match="images"):
        prediction_grid(np.zeros((2, H, W), np.uint8), np.zeros((2, 1, 2)), np.zeros((2, 1, 2)))


# --- figure6_panel / upsample_map -------------------------------------------------------------


def random_image() -> np.ndarray:
    return np.random.default_rng(3).integers(1, 256, size=(H, W, 3), dtype=np.uint8)


def test_figure6_panel_zero_map_blacks_out_third_panel():
    image = random_image()
    panel = figure6_panel(image, np.zeros((8, 6)))
    assert panel.shape == (H, 3 * W + W // 8, 3)  # three panels and the colour bar
    assert panel.dtype == np.uint8
    np.testing.assert_array_equal(panel[:, :W], image)
    assert not panel[:, 2 * W : 3 * W].any()


def test_figure6_panel_one_map_keeps_image_in_third_panel():
    image = random_image()
    panel = figure6_panel(image, np.ones((8, 6)))
    np.testing.assert_array_equal(panel[:, 2 * W : 3 * W], image)


def test_figure6_colour_bar_runs_from_red_at_the_top_to_blue_at_the_bottom():
    bar = figure6_panel(random_image(), np.zeros((4, 4)))[:, 3 * W :].astype(int)
    middle = bar.shape[1] // 2
    top, bottom = bar[H // 3 - 4, middle], bar[-H // 5, middle]  # away from the printed 1 and 0
    assert top[0] > top[2] and bottom[2] > bottom[0]


def test_figure6_outlines_the_occluder_and_marks_points_by_visibility():
    image = np.full((H, W, 3), 100, dtype=np.uint8)
    mask = np.zeros((H, W), dtype=np.uint8)
    mask[10:30, 10:30] = 255
    points = np.array([[6.0, 6.0], [20.0, 20.0]])
    panel = figure6_panel(image, np.full((4, 4), 0.5), mask, points, np.array([True, False]))
    first, coloured = panel[:, :W], panel[:, W : 2 * W]
    outline = (first == 255).all(axis=-1)
    assert outline[10, 15] and outline[29, 15] and not outline[20, 20]  # the border, not the inside
    assert tuple(coloured[6, 6]) == (0, 255, 0) and tuple(coloured[20, 20]) == (255, 0, 255)
    # The third panel prints the mean occlusion score of the visible and of the occluded points.
    assert (panel[:, 2 * W : 3 * W] == 255).any()


def test_figure6_colour_panel_is_rgb_jet():
    image = random_image()
    low = figure6_panel(image, np.zeros((4, 4)))[:, W : 2 * W].astype(int)
    high = figure6_panel(image, np.ones((4, 4)))[:, W : 2 * W].astype(int)
    # Jet runs from blue (P = 0) to red (P = 1); swapped channels would invert this.
    assert (low[..., 2] > low[..., 0]).all()
    assert (high[..., 0] > high[..., 2]).all()


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
