"""The heatmap codec for heatmap-regression landmark networks (HRNetV2-W18, issue 28): targets and decoding.

Pure tensor functions, no parameters. Landmarks live in the suite's crop frame, normalised to [-1, 1]
with pixel-centre (align_corners=False) semantics (odn_lightning.crop); a square heatmap of side H
covers the whole crop, so its pixel j (centre at integer j) spans the normalised interval
[2j / H - 1, 2(j + 1) / H - 1]. Coordinates are x then y; maps are indexed [..., y, x].

Targets (`gaussian_heatmaps`), two encodings:
  - "unbiased": DARK's encoding (Zhang et al., "Distribution-Aware Coordinate Representation for Human
    Pose Estimation", CVPR 2020), as mmpose's MSRAHeatmap(unbiased=True) draws it
    (mmpose/codecs/utils/gaussian_heatmap.py, generate_unbiased_gaussian_heatmaps): an unnormalised
    Gaussian centred at the exact float position, evaluated at every pixel centre.
  - "hrnet": HRNet-Facial's target (Wang et al., "Deep High-Resolution Representation Learning for
    Visual Recognition", TPAMI 2020; github.com/HRNet/HRNet-Facial-Landmark-Detection,
    lib/utils/transforms.py, generate_target, with the rounding its datasets apply through
    transform_pixel): a ceil(6 sigma + 1) square Gaussian pasted at the point rounded to a pixel.

Decoding (`decode_heatmaps`), three methods, all starting from each map's argmax:
  - "plain": the argmax pixel.
  - "hrnet": HRNet-Facial's lib/core/evaluation.py, get_preds + decode_preds: a quarter-pixel step
    towards the higher neighbour on each axis.
  - "dark": DARK's Taylor (Newton) refinement as mmpose implements it
    (mmpose/codecs/utils/post_processing.py, get_heatmap_maximum and gaussian_blur;
    mmpose/codecs/utils/refinement.py, refine_keypoints_dark).

Read at HRNet-Facial f776dbe8eb6fec831774a47209dae5547ae2cda5 and mmpose
759b39c13fea6ba094afc1fa932f51dc1b11cbf9. This is an independent, vectorised re-implementation of
the same arithmetic (HRNet-Facial is MIT-licensed, mmpose Apache-2.0), not a copy of their code.
"""

from __future__ import annotations

import functools
import math
from typing import Literal, NamedTuple

import cv2
import torch
import torch.nn.functional as F

Encoding = Literal["unbiased", "hrnet"]
DecodeMethod = Literal["plain", "hrnet", "dark"]

__all__ = [
    "DecodeMethod",
    "DecodedHeatmaps",
    "Encoding",
    "decode_heatmaps",
    "from_heatmap_frame",
    "gaussian_blur",
    "gaussian_heatmaps",
    "sigma_for",
    "target_weights",
    "to_heatmap_frame",
]


# -- Frames -----------------------------------------------------------------------------------------------


def to_heatmap_frame(points: torch.Tensor, heatmap_size: int) -> torch.Tensor:
    """Normalised crop frame [-1, 1] -> heatmap pixel coordinates (pixel centres at integers).

    h = ((x + 1) * H - 1) / 2: the crop's edges -1 and +1 land on -0.5 and H - 0.5, the map's edges.
    """
    return ((points + 1.0) * heatmap_size - 1.0) / 2.0


def from_heatmap_frame(coords: torch.Tensor, heatmap_size: int) -> torch.Tensor:
    """Heatmap pixel coordinates -> the normalised crop frame: x = (2h + 1) / H - 1, the inverse of
    `to_heatmap_frame`."""
    return (2.0 * coords + 1.0) / heatmap_size - 1.0


def sigma_for(heatmap_size: int, reference_sigma: float = 1.5, reference_size: int = 64) -> float:
    """The Gaussian's sigma (heatmap pixels) scaled linearly with the map's side, so that it covers the
    same fraction of the face: HRNet-Facial's default is 1.5 at 64 x 64 maps (256 px crops, stride 4;
    lib/config/defaults.py, MODEL.SIGMA; its 300W experiment overrides it to 1.0)."""
    return reference_sigma * heatmap_size / reference_size


# -- Targets ----------------------------------------------------------------------------------------------


def target_weights(points_norm: torch.Tensor, visible: torch.Tensor | None = None) -> torch.Tensor:
    """(B, L) float32: 1 for a landmark that gets a target (inside the crop, both coordinates in [-1, 1],
    and visible), else 0. Use it as the per-landmark loss weight, as mmpose's keypoint_weights."""
    inside = ((points_norm >= -1.0) & (points_norm <= 1.0)).all(dim=-1)
    if visible is not None:
        # mmpose skips keypoints whose visibility is below 0.5.
        inside = inside & (visible.to(torch.float32) >= 0.5)
    return inside.to(torch.float32)


def gaussian_heatmaps(
    points_norm: torch.Tensor,
    heatmap_size: int,
    sigma: float,
    visible: torch.Tensor | None = None,
    encoding: Encoding = "unbiased",
) -> torch.Tensor:
    """Gaussian target maps (B, L, H, W) float32, peak value 1, for landmarks (B, L, 2) in the
    normalised crop frame.

    encoding="unbiased" (DARK; mmpose generate_unbiased_gaussian_heatmaps): exp(-d^2 / (2 sigma^2)) with d
    the distance from each pixel centre to the exact float position, over the whole map. (mmpose places
    the point at input pixel / stride; here the map is placed on the crop by pixel centres, the suite's
    frame. Either is unbiased as long as decoding uses the same frame.)

    encoding="hrnet" (HRNet-Facial generate_target, fed as its datasets feed it): the position is first
    rounded to a pixel, p = floor(h + 0.5) (their transform_pixel truncates the edge-based coordinate
    h + 0.5), then a window of ceil(6 sigma + 1) Gaussian samples centred on its index
    floor((6 sigma + 1) / 2) is pasted with its top-left corner at trunc(p - 3 sigma) (Python's int():
    towards zero), up to trunc(p + 3 sigma + 1) exclusive, cut at the map's edges. For a non-integer
    3 sigma (sigma 1.5: 4.5) the truncation towards zero moves the peak one pixel right/down for points
    within 3 sigma of the left/top edge (p = 4 peaks at 5), and the window ends a sample early there;
    reproduced, as their published models learnt it.

    Not-visible landmarks (visible < 0.5) and landmarks outside the crop (any coordinate outside
    [-1, 1]) get an all-zero map. The references draw a cut Gaussian for points up to 3 sigma outside
    the map; here they are zero, and `target_weights` gives them zero loss weight (as mmpose does for
    points whose window misses the map).
    """
    if points_norm.dim() != 3 or points_norm.shape[-1] != 2:
        raise ValueError(f"points must be (B, L, 2), got {tuple(points_norm.shape)}")
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    # float64 for the window arithmetic, so the truncations match Python floats exactly.
    centres = to_heatmap_frame(points_norm.to(torch.float64), heatmap_size)
    grid = torch.arange(heatmap_size, dtype=torch.float64, device=points_norm.device)
    if encoding == "unbiased":
        offsets = grid - centres[..., None]  # (B, L, 2, S): x then y
        inside_window = torch.ones_like(offsets, dtype=torch.bool)
    elif encoding == "hrnet":
        radius = 3.0 * sigma
        size = 2.0 * radius + 1.0
        length, middle = math.ceil(size), size // 2  # numpy.arange(0, size) and their x0 = size // 2
        rounded = torch.floor(centres + 0.5)
        start = torch.trunc(rounded - radius)
        stop = torch.trunc(rounded + radius + 1.0)
        index = grid - start[..., None]  # position inside the pasted window
        inside_window = (grid >= start[..., None]) & (grid < stop[..., None]) & (index < length)
        offsets = index - middle
    else:
        raise ValueError(f"unknown encoding {encoding!r}: 'unbiased' or 'hrnet'")
    squared = offsets.square()
    distance = squared[..., 1, :, None] + squared[..., 0, None, :]  # (B, L, H, W)
    maps = torch.exp(-distance / (2.0 * sigma**2))
    mask = inside_window[..., 1, :, None] & inside_window[..., 0, None, :]
    keep = target_weights(points_norm, visible).to(torch.bool)[..., None, None]
    return torch.where(mask & keep, maps, 0.0).to(torch.float32)


# -- Decoding ---------------------------------------------------------------------------------------------


class DecodedHeatmaps(NamedTuple):
    """points: (B, L, 2) in the normalised crop frame, x then y. scores: (B, L), each raw map's maximum
    value (HRNet-Facial's maxval, mmpose's scores), a confidence; a map whose maximum is <= 0 decodes to
    the heatmap coordinate (-1, -1), just outside its top-left corner, as both references do."""

    points: torch.Tensor
    scores: torch.Tensor


@functools.lru_cache(maxsize=8)
def _opencv_kernel(size: int) -> tuple[float, ...]:
    # OpenCV's own coefficients (sigma 0.3 * ((size - 1) / 2 - 1) + 0.8, fixed tables for small sizes),
    # which cv2.GaussianBlur(..., (size, size), 0) in mmpose's gaussian_blur uses.
    return tuple(float(v) for v in cv2.getGaussianKernel(size, 0)[:, 0])


def gaussian_blur(heatmaps: torch.Tensor, kernel: int = 11) -> torch.Tensor:
    """DARK's modulation (mmpose post_processing.gaussian_blur): each map (B, L, H, W) convolved with
    OpenCV's kernel x kernel Gaussian, zero outside the map, then rescaled to keep its maximum. A map
    that blurs to a zero maximum is left unscaled (mmpose would divide by zero)."""
    if kernel % 2 != 1 or kernel < 1:
        raise ValueError(f"the blur kernel must be a positive odd size, got {kernel}")
    b, n, h, w = heatmaps.shape
    taps = torch.tensor(_opencv_kernel(kernel), dtype=heatmaps.dtype, device=heatmaps.device)
    flat = heatmaps.reshape(b * n, 1, h, w)
    pad = (kernel - 1) // 2
    blurred = F.conv2d(flat, taps.view(1, 1, kernel, 1), padding=(pad, 0))
    blurred = F.conv2d(blurred, taps.view(1, 1, 1, kernel), padding=(0, pad)).view(b, n, h, w)
    before = heatmaps.amax(dim=(-2, -1), keepdim=True)
    after = blurred.amax(dim=(-2, -1), keepdim=True)
    scale = torch.where(after != 0, before / torch.where(after != 0, after, 1.0), 1.0)
    return blurred * scale


def _gather(maps: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """maps (B, L, H, W) at integer pixels (B, L), indices clamped into the map (callers mask the
    clamped ones out)."""
    h, w = maps.shape[-2:]
    flat = y.clamp(0, h - 1) * w + x.clamp(0, w - 1)
    return maps.flatten(-2).gather(-1, flat[..., None])[..., 0]


def decode_heatmaps(heatmaps: torch.Tensor, method: DecodeMethod, blur_kernel: int = 11) -> DecodedHeatmaps:
    """Landmarks (B, L, 2) in the normalised crop frame from square heatmaps (B, L, H, H), and each map's
    maximum; see `DecodedHeatmaps`. Ties in the argmax go to the first pixel in row-major order.

    method="plain": the argmax pixel's centre.

    method="hrnet" (HRNet-Facial evaluation.py, get_preds + decode_preds): the argmax moved by 0.25 px
    on each axis towards the higher of its two neighbours (by sign(right - left), sign(below - above);
    no move on a tie), only when the argmax is off the map's border (1 <= x <= W - 2 and
    1 <= y <= H - 2, one joint condition for both axes). Their 1-based indices (+1), the `coords += 0.5`
    and transform_pixel's `- 1` together say the argmax index is the pixel centre, as here; their
    later truncation to whole original-image pixels in transform_preds is not part of the codec.

    method="dark" (mmpose refine_keypoints_dark): the argmax of the raw map, then on the map blurred by
    `gaussian_blur(blur_kernel)`, clamped at 1e-10 and logged, one Newton step x - H^-1 g with
    g = central differences (step 1) and H from step-2 differences (dxx = (f(x+2) - 2f(x) + f(x-2)) / 4,
    dxy from the four diagonal neighbours / 4); only for 2 <= x <= W - 3 and 2 <= y <= H - 3 and a
    non-singular H, else the argmax. mmpose pairs blur_kernel 11 with target sigma 2 (17 with 3).
    """
    if heatmaps.dim() != 4 or heatmaps.shape[-1] != heatmaps.shape[-2]:
        raise ValueError(f"heatmaps must be (B, L, H, H), got {tuple(heatmaps.shape)}")
    if not heatmaps.is_floating_point():
        raise ValueError(f"heatmaps must be floating point, got {heatmaps.dtype}")
    maps = heatmaps.detach()
    if maps.dtype in (torch.float16, torch.bfloat16):
        maps = maps.float()
    size = maps.shape[-1]
    scores, flat_index = maps.flatten(-2).max(dim=-1)  # first maximum on ties, as torch.max/np.argmax
    y, x = flat_index // size, flat_index % size
    coords = torch.stack([x, y], dim=-1).to(torch.float64)

    if method == "hrnet":
        interior = (x >= 1) & (x <= size - 2) & (y >= 1) & (y <= size - 2)
        dx = _gather(maps, y, x + 1) - _gather(maps, y, x - 1)
        dy = _gather(maps, y + 1, x) - _gather(maps, y - 1, x)
        step = 0.25 * torch.stack([dx, dy], dim=-1).sign().to(torch.float64)
        coords = coords + torch.where(interior[..., None], step, 0.0)
    elif method == "dark":
        logs = gaussian_blur(maps, blur_kernel).clamp_min(1e-10)

        def at(oy: int, ox: int) -> torch.Tensor:
            # Only the 13 values the step reads are logged, in float64.
            return _gather(logs, y + oy, x + ox).to(torch.float64).log()

        centre = at(0, 0)
        dx = 0.5 * (at(0, 1) - at(0, -1))
        dy = 0.5 * (at(1, 0) - at(-1, 0))
        dxx = 0.25 * (at(0, 2) - 2.0 * centre + at(0, -2))
        dyy = 0.25 * (at(2, 0) - 2.0 * centre + at(-2, 0))
        dxy = 0.25 * (at(1, 1) - at(-1, 1) - at(1, -1) + at(-1, -1))
        det = dxx * dyy - dxy * dxy
        interior = (x >= 2) & (x <= size - 3) & (y >= 2) & (y <= size - 3) & (det != 0)
        safe = torch.where(interior, det, 1.0)
        # -H^-1 g with the 2 x 2 inverse written out: H^-1 = [[dyy, -dxy], [-dxy, dxx]] / det.
        step = torch.stack([-(dyy * dx - dxy * dy) / safe, -(dxx * dy - dxy * dx) / safe], dim=-1)
        coords = coords + torch.where(interior[..., None], step, 0.0)
    elif method != "plain":
        raise ValueError(f"unknown decoding method {method!r}: 'plain', 'hrnet' or 'dark'")

    coords = torch.where((scores > 0)[..., None], coords, -1.0)
    points = from_heatmap_frame(coords, size).to(maps.dtype)
    return DecodedHeatmaps(points=points, scores=scores)
