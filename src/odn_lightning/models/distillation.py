"""The distillation module, DM (paper §3.3, Fig. 4).

Pathway C is a residual block on Z: the backbone's own last block (see `backbone.py`), which keeps
its ImageNet weights and its timm name. Pathway D, 1x1 -> 3x3 -> 1x1 conv with fewer channels, ends
in a single channel whose sigmoid is the occlusion probability map P (B, 1, n, n). The clean
features are pathway C's output times P, broadcast over channels: positions that P judges occluded
are suppressed. The L1 penalty on P (eq. 3, eta) lives in `odn_lightning.losses`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .layers import conv_bn


class DistillationModule(nn.Module):
    """Pathway D and the masking: (Z, pathway C's output) -> (clean features, P).

    channels: width of pathway D (fewer than Z's channels).
    """

    def __init__(self, in_channels: int, channels: int = 64) -> None:
        super().__init__()
        self.occlusion_logits = nn.Sequential(
            conv_bn(in_channels, channels, 1),
            conv_bn(channels, channels, 3),
            nn.Conv2d(channels, 1, kernel_size=1, bias=True),
        )

    def occlusion_map(self, z: Tensor) -> Tensor:
        """P in [0, 1], (B, 1, n, n)."""
        return torch.sigmoid(self.occlusion_logits(z))

    def forward(self, z: Tensor, residual_features: Tensor) -> tuple[Tensor, Tensor]:
        probability = self.occlusion_map(z)
        return residual_features * probability, probability
