"""A per-landmark visibility head: for each point, the logit of the probability that it is occluded,
from the network's last feature map (beyond the paper; any network can carry it, BRNet included).

mmpose's `VisPredictHead` pools the last features over the whole map and maps them by one linear layer
to a logit per keypoint; LUVLi (Kumar et al., CVPR 2020) predicts each landmark's visibility from the
features beside its heatmap. This head does both: the features, reduced by a 1x1 convolution, are read
at each predicted point (bilinearly, the point detached: the head learns what covers a point, not where
it is) and averaged over the map, and each landmark has its own linear map of the two to one logit.
Trained by the objective's `occlusion_weight` term against the visibility flags (`losses`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class VisibilityHead(nn.Module):
    """features (B, C, n, n), landmarks (B, L, 2) in the crop frame -> occlusion logits (B, L).

    Args:
        in_channels: C, the channels of the map it reads.
        num_landmarks: L, one logit each.
        channels: the width the map is reduced to before it is read.
    """

    def __init__(self, in_channels: int, num_landmarks: int, channels: int = 64) -> None:
        super().__init__()
        self.reduce = nn.Sequential(
            nn.Conv2d(in_channels, channels, 1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True)
        )
        # Per landmark: weights on the features at the point and on the map's mean, and a bias.
        self.point_weight = nn.Parameter(torch.randn(num_landmarks, channels) * 0.01)
        self.context_weight = nn.Parameter(torch.randn(num_landmarks, channels) * 0.01)
        self.bias = nn.Parameter(torch.zeros(num_landmarks))

    def forward(self, features: Tensor, landmarks: Tensor) -> Tensor:
        reduced = self.reduce(features)
        grid = landmarks.detach().to(reduced.dtype)[:, :, None, :]  # (B, L, 1, 2): x, y
        at_points = F.grid_sample(reduced, grid, mode="bilinear", padding_mode="border", align_corners=False)
        at_points = at_points[..., 0]  # (B, channels, L)
        context = reduced.mean(dim=(2, 3))  # (B, channels)
        return (
            torch.einsum("bcl,lc->bl", at_points, self.point_weight)
            + context @ self.context_weight.t()
            + self.bias
        )
