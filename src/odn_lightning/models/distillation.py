"""The distillation module, DM (paper §3.3, Fig. 4).

Pathway C is a residual block on Z: the backbone's own last block (see `backbone.py`), which keeps
its ImageNet weights and its timm name. Pathway D, 1x1 -> 3x3 -> 1x1 conv with fewer channels, ends
in a single channel whose sigmoid is the occlusion probability map P (B, 1, n, n). The clean
features are pathway C's output times P, broadcast over channels: positions that P judges occluded
are suppressed. The L1 penalty on P (eq. 3, eta) lives in `odn_lightning.training.objective`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .layers import conv_bn


class DistillationModule(nn.Module):
    """Pathway D and the masking: (Z, pathway C's output) -> (clean features, P).

    channels: width of pathway D (fewer than Z's channels).
    initial_p: P of the untrained module, everywhere (its last bias is logit(initial_p)); None keeps
        PyTorch's initialisation (P about 0.5). Near 1, every position starts as kept and the L1 term
        has to lower P where features do not help, the paper's reading of P.
    """

    def __init__(self, in_channels: int, channels: int = 64, initial_p: float | None = None) -> None:
        super().__init__()
        self.occlusion_logits = nn.Sequential(
            conv_bn(in_channels, channels, 1),
            conv_bn(channels, channels, 3),
            nn.Conv2d(channels, 1, kernel_size=1, bias=True),
        )
        if initial_p is not None:
            if not 0.0 < initial_p < 1.0:
                raise ValueError(f"model.net.dm_initial_p={initial_p}; choose a value in (0, 1)")
            last = self.occlusion_logits[-1]
            nn.init.zeros_(last.weight)
            nn.init.constant_(last.bias, math.log(initial_p / (1.0 - initial_p)))

    def occlusion_map(self, z: Tensor) -> Tensor:
        """P in [0, 1], (B, 1, n, n)."""
        return torch.sigmoid(self.occlusion_logits(z))

    def forward(self, z: Tensor, residual_features: Tensor) -> tuple[Tensor, Tensor]:
        probability = self.occlusion_map(z)
        return residual_features * probability, probability
