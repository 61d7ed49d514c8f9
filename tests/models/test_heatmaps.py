"""The heatmap codec (models/heatmaps.py): frames, Gaussian targets, and the plain, HRNet and DARK decoders."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from odn_lightning.crop import to_normalised
from odn_lightning.models.heatmaps import (
    decode_heatmaps,
    from_heatmap_frame,
    gaussian_blur,
    gaussian_heatmaps,
    sigma_for,
    target_weights,
    to_heatmap_frame,
)

S = 64  # heatmap side


def _points(h: list[tuple[float, float]], size: int = S) -> torch.Tensor:
    """Heatmap pixel coordinates -> normalised (1, L, 2) float64."""
    return from_heatmap_frame(torch.tensor([h], dtype=torch.float64), size)


def _decode_px(maps: torch.Tensor, method: str, **kwargs) -> torch.Tensor:
    return to_heatmap_frame(decode_heatmaps(maps, method, **kwargs).points.double(), maps.shape[-1])


# -- Frames ----------------------------------------------------------------------------------------------


def test_the_frames_are_exact_inverses():
    torch.manual_seed(0)
    points = torch.rand(4, 7, 2, dtype=torch.float64) * 2.4 - 1.2
    assert torch.allclose(from_heatmap_frame(to_heatmap_frame(points, S), S), points, rtol=0, atol=1e-15)
    # Pixel centres and edges are dyadic here: the round trip is bit-exact.
    coords = torch.tensor([[-0.5, 0.0], [31.5, 17.0], [63.0, 63.5]], dtype=torch.float64)
    assert torch.equal(to_heatmap_frame(from_heatmap_frame(coords, S), S), coords)


def test_pixel_centres_and_edges_line_up_with_the_crop_frame():
    # Crop and map of the same side: the crop's corner pixel centre is the map's corner pixel centre.
    corner = torch.from_numpy(to_normalised(np.array([[0.0, 0.0], [63.0, 63.0]]), 64))
    assert torch.equal(
        to_heatmap_frame(corner, 64), torch.tensor([[0.0, 0.0], [63.0, 63.0]], dtype=torch.float64)
    )
    # 256 px crop, 64 px map (stride 4): the map's pixel 0 covers crop pixels 0..3, its centre is crop
    # pixel 1.5; the crop's corner pixel centre is at -0.375; the outer edges coincide.
    crop = torch.from_numpy(to_normalised(np.array([[1.5, 253.5], [0.0, -0.5], [255.5, 255.0]]), 256))
    expected = torch.tensor([[0.0, 63.0], [-0.375, -0.5], [63.5, 63.375]], dtype=torch.float64)
    assert torch.equal(to_heatmap_frame(crop, 64), expected)


def test_sigma_scales_linearly_from_hrnet_facial_1_5_at_64():
    assert sigma_for(64) == 1.5
    assert sigma_for(32) == 0.75
    assert sigma_for(56) == 1.3125
    assert sigma_for(64, reference_sigma=1.0) == 1.0


# -- Targets ---------------------------------------------------------------------------------------------


def test_unbiased_targets_peak_at_the_rounded_centre_with_exact_values():
    centres = [(10.3, 40.6), (33.5 - 1e-3, 5.49), (50.0, 50.0)]
    maps = gaussian_heatmaps(_points(centres), S, 2.0)
    assert maps.shape == (1, 3, S, S) and maps.dtype == torch.float32
    for k, (cx, cy) in enumerate(centres):
        row, col = divmod(int(maps[0, k].argmax()), S)
        assert (col, row) == (round(cx), round(cy))
        # The Gaussian is evaluated at every pixel centre, even far from the point.
        for x, y in [(col, row), (0, 0), (col + 3, row - 2)]:
            value = math.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * 2.0**2))
            assert maps[0, k, y, x].item() == pytest.approx(value, rel=1e-5, abs=1e-30)


def _hrnet_window(p: tuple[int, int], sigma: float, size: int = S) -> np.ndarray:
    """An independent hand computation of a pasted window: HRNet-Facial pastes ceil(6 sigma + 1) samples
    whose centre sample (index floor((6 sigma + 1) / 2)) sits at trunc(p - 3 sigma) + that index, on the
    pixels from trunc(p - 3 sigma) up to trunc(p + 3 sigma + 1), exclusive, inside the map."""
    n, middle = math.ceil(6 * sigma + 1), math.floor((6 * sigma + 1) / 2)
    out = np.zeros((size, size))
    left, top = (math.trunc(v - 3 * sigma) for v in p)
    right, bottom = (math.trunc(v + 3 * sigma + 1) for v in p)
    for i in range(n):
        for j in range(n):
            y, x = top + i, left + j
            if 0 <= x < min(size, right) and 0 <= y < min(size, bottom):
                out[y, x] = math.exp(-((j - middle) ** 2 + (i - middle) ** 2) / (2 * sigma**2))
    return out


@pytest.mark.parametrize(
    ("h", "pixel", "sigma", "peak"),
    [
        ((20.5, 30.49), (21, 30), 1.5, (21, 30)),  # round half up: 20.5 -> 21, 30.49 -> 30
        ((20.2, 30.0), (20, 30), 1.0, (20, 30)),
        ((62.4, 10.0), (62, 10), 1.5, (62, 10)),  # cut at the right edge: window [57, 67) -> [57, 64)
        ((63.4, 63.4), (63, 63), 1.3125, (63, 63)),  # corner, sigma 56/64 * 1.5: a 9-sample window
        ((4.0, 30.0), (4, 30), 1.5, (5, 30)),  # trunc(4 - 4.5) = 0: the peak moves right by one
        ((1.2, 0.0), (1, 0), 1.5, (2, 1)),  # trunc(-3.5) = -3, trunc(-4.5) = -4; ends at trunc(6.5) = 6
        ((2.0, 2.0), (2, 2), 1.0, (2, 2)),  # 3 sigma integral: no move
    ],
)
def test_hrnet_targets_match_generate_target_by_hand(h, pixel, sigma, peak):
    maps = gaussian_heatmaps(_points([h]), S, sigma, encoding="hrnet")[0, 0]
    np.testing.assert_allclose(maps.numpy(), _hrnet_window(pixel, sigma), rtol=1e-6, atol=1e-7)
    assert divmod(int(maps.argmax()), S) == (peak[1], peak[0])
    assert maps.max().item() == 1.0


def test_hrnet_targets_are_only_the_window():
    maps = gaussian_heatmaps(_points([(30.0, 30.0)]), S, 1.5, encoding="hrnet")[0, 0]
    rows, cols = torch.nonzero(maps, as_tuple=True)
    assert (cols.min().item(), cols.max().item(), rows.min().item(), rows.max().item()) == (25, 34, 25, 34)
    assert maps[30, 25].item() == pytest.approx(math.exp(-25 / 4.5))  # the window's left-most sample


@pytest.mark.parametrize("encoding", ["unbiased", "hrnet"])
def test_outside_or_invisible_points_give_zero_maps_and_zero_weight(encoding):
    # Just outside the left edge (-0.5), below the bottom, far away, and a visible point inside.
    points = _points([(-0.6, 30.0), (30.0, 63.6), (-100.0, 500.0), (30.0, 30.0), (12.0, 12.0)])
    visible = torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.0]])
    maps = gaussian_heatmaps(points, S, 1.5, visible=visible, encoding=encoding)
    assert maps.flatten(-2).amax(-1).tolist() == [[0.0, 0.0, 0.0, 1.0, 0.0]]
    assert target_weights(points, visible).tolist() == [[0.0, 0.0, 0.0, 1.0, 0.0]]
    # The crop's outer edge itself is inside.
    assert target_weights(torch.tensor([[[-1.0, 1.0]]])).tolist() == [[1.0]]


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="encoding"):
        gaussian_heatmaps(torch.zeros(1, 1, 2), S, 1.5, encoding="msra")
    with pytest.raises(ValueError, match="method"):
        decode_heatmaps(torch.zeros(1, 1, S, S), "soft-argmax")
    with pytest.raises(ValueError, match="odd"):
        decode_heatmaps(torch.zeros(1, 1, S, S), "dark", blur_kernel=10)


# -- Round trips -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("sigma", [1.5, 2.0])
def test_unbiased_targets_decode_back(sigma):
    torch.manual_seed(1)
    centres = torch.rand(3, 40, 2, dtype=torch.float64) * (S - 20) + 10  # well inside the map
    maps = gaussian_heatmaps(from_heatmap_frame(centres, S), S, sigma)
    dark = _decode_px(maps, "dark")
    assert (dark - centres).abs().max().item() < 0.01
    hrnet = _decode_px(maps, "hrnet")
    assert (hrnet - centres).abs().max().item() <= 0.25 + 1e-6
    plain = _decode_px(maps, "plain")
    assert torch.equal(plain, torch.floor(centres + 0.5))
    assert torch.allclose(decode_heatmaps(maps, "dark").scores, maps.flatten(-2).amax(-1))


# -- HRNet decoding --------------------------------------------------------------------------------------


def test_hrnet_decoding_of_hand_built_maps():
    maps = torch.zeros(1, 5, S, S)
    maps[0, 0, 20, 10] = 1.0  # a lone hot pixel
    maps[0, 1, 20, 10], maps[0, 1, 20, 11] = 1.0, 0.5  # higher right neighbour
    maps[0, 2, 20, 10], maps[0, 2, 19, 10], maps[0, 2, 20, 9] = 1.0, 0.5, 0.25  # higher above and left
    maps[0, 3, 20, 0], maps[0, 3, 20, 1], maps[0, 3, 21, 0] = 1.0, 0.5, 0.5  # on the left border: no move
    maps[0, 4] = -1.0  # no positive value
    decoded = decode_heatmaps(maps, "hrnet")
    expected_px = torch.tensor([[10, 20], [10.25, 20], [9.75, 19.75], [0, 20], [-1, -1]], dtype=torch.float64)
    # The frame conversion: heatmap pixel centre j -> (2j + 1) / 64 - 1.
    expected = (2 * expected_px + 1) / S - 1
    assert torch.allclose(decoded.points[0].double(), expected, rtol=0, atol=1e-7)
    assert decoded.points[0, 0].tolist() == [-43 / 64, -23 / 64]
    assert decoded.scores[0].tolist() == [1.0, 1.0, 1.0, 1.0, -1.0]


def test_hrnet_decoding_moves_on_both_axes_only_off_the_border():
    maps = torch.zeros(1, 2, S, S)
    # Off the top border only in y = 0: HRNet-Facial's joint condition keeps x still too.
    maps[0, 0, 0, 30], maps[0, 0, 0, 31] = 1.0, 0.5
    maps[0, 1, 1, 30], maps[0, 1, 1, 31], maps[0, 1, 2, 30] = 1.0, 0.5, 0.5
    assert _decode_px(maps, "hrnet")[0].tolist() == [[30.0, 0.0], [30.25, 1.25]]


# -- DARK ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kernel", [7, 9, 11])  # OpenCV uses fixed tables up to 9, its formula beyond
def test_the_blur_is_opencvs_on_a_zero_padded_map(kernel):
    torch.manual_seed(2)
    maps = torch.rand(1, 2, 24, 24)
    ours = gaussian_blur(maps, kernel)
    border = (kernel - 1) // 2
    for k in range(2):
        padded = np.zeros((24 + 2 * border, 24 + 2 * border), np.float32)
        padded[border:-border, border:-border] = maps[0, k].numpy()
        ref = cv2.GaussianBlur(padded, (kernel, kernel), 0)[border:-border, border:-border]
        ref *= maps[0, k].numpy().max() / ref.max()
        np.testing.assert_allclose(ours[0, k].numpy(), ref, rtol=1e-5, atol=1e-6)


def test_dark_recovers_a_sub_pixel_offset():
    x, y = np.meshgrid(np.arange(32.0), np.arange(32.0))
    cx, cy = 14.0 + 0.37, 17.0 - 0.21
    gaussian = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * 2.0**2))
    maps = torch.from_numpy(gaussian).float()[None, None]
    assert _decode_px(maps, "plain")[0, 0].tolist() == [14.0, 17.0]
    got = _decode_px(maps, "dark")[0, 0]
    assert abs(got[0].item() - cx) < 0.01 and abs(got[1].item() - cy) < 0.01
    # A smaller blur is an argument; it recovers the offset too.
    got = _decode_px(maps, "dark", blur_kernel=7)[0, 0]
    assert abs(got[0].item() - cx) < 0.02 and abs(got[1].item() - cy) < 0.02


def test_dark_recovers_the_centre_of_a_tilted_gaussian():
    # A correlated Gaussian: the Hessian's off-diagonal term matters.
    x, y = np.meshgrid(np.arange(40.0), np.arange(40.0))
    cx, cy = 19.0 - 0.3, 21.0 + 0.42
    dx, dy = x - cx, y - cy
    precision = np.linalg.inv(np.array([[4.0, 2.4], [2.4, 3.0]]))
    quadratic = precision[0, 0] * dx**2 + 2 * precision[0, 1] * dx * dy + precision[1, 1] * dy**2
    maps = torch.from_numpy(np.exp(-quadratic / 2)).float()[None, None]
    got = _decode_px(maps, "dark", blur_kernel=3)[0, 0]
    assert abs(got[0].item() - cx) < 0.02 and abs(got[1].item() - cy) < 0.02


def test_dark_on_flat_and_degenerate_maps_gives_no_nan():
    maps = torch.zeros(1, 5, 16, 16)
    maps[0, 0] = 0.3  # flat and positive: the first pixel
    # maps[0, 1] flat zero: (-1, -1) like the references
    maps[0, 2, 5:11, 5:11] = 1.0  # a plateau: its argmax corner has a singular Hessian or not, no NaN
    maps[0, 3, 8, 8] = 1.0  # a lone hot pixel
    maps[0, 4, 8, 8] = 1e-12  # blurred below the 1e-10 floor: the log is flat, the Hessian zero
    decoded = decode_heatmaps(maps, "dark")
    assert torch.isfinite(decoded.points).all()
    px = _decode_px(maps, "dark")[0]
    assert px[0].tolist() == [0.0, 0.0] and px[1].tolist() == [-1.0, -1.0]
    assert (px[3] - 8.0).abs().max().item() < 1e-5  # symmetric: stays on the pixel
    assert px[4].tolist() == [8.0, 8.0]
