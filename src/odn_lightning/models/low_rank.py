"""The low-rank learning module, LM (paper §3.4, eq. 1-2), and the readout that builds its input X.

The hybrid features (GM and DM outputs, concatenated over channels) are down-sampled and flattened
into X of dimension d (`FeatureReadout`). The LM multiplies X by a shared structural matrix M
(d x d, no bias), and the final FC layer gives the 2L coordinates: S = W_fc^T M^T X. M is pushed to
low rank by the nuclear-norm term of eq. 3, so that the landmarks are predicted from a few latent
shape factors. With the LM off, X goes straight to the FC layer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import conv_bn

READOUTS = ("gap", "conv_pool")


class FeatureReadout(nn.Module):
    """Feature maps (B, C, n, n) -> X (B, d).

    mode "gap": global average pooling, d = C (ResNet-18's own head: BRNet).
    mode "conv_pool": 1x1 conv + BN + ReLU to `channels`, adaptive average pooling to a `grid` x `grid`
    map, flattened: d = channels * grid^2. Keeps a coarse spatial layout while d stays small, so that
    the d x d matrix M and its nuclear norm are cheap (d = 256 by default: M has 65k entries).
    """

    def __init__(self, in_channels: int, mode: str = "conv_pool", channels: int = 64, grid: int = 2) -> None:
        super().__init__()
        if mode not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {mode!r}")
        self.mode, self.grid = mode, grid
        if mode == "gap":
            self.reduce = None
            self.dim = in_channels
        else:
            self.reduce = conv_bn(in_channels, channels, 1)
            self.dim = channels * grid * grid

    def forward(self, features: Tensor) -> Tensor:
        if self.reduce is None:
            return F.adaptive_avg_pool2d(features, 1).flatten(1)
        return F.adaptive_avg_pool2d(self.reduce(features), self.grid).flatten(1)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, dim={self.dim}"


class LowRankModule(nn.Module):
    """X (B, d) -> M^T X (B, d) with a shared structural matrix M, initialised to the identity.

    Identity start: switching the LM on does not change the network's initial function.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.structural_matrix = nn.Parameter(torch.eye(dim))

    def forward(self, x: Tensor) -> Tensor:
        return x @ self.structural_matrix  # rows of X: (M^T x)^T = x^T M

    def extra_repr(self) -> str:
        return f"dim={self.structural_matrix.shape[0]}"
