"""The geometry-aware module, GM (paper §3.2, Fig. 3).

Two pathways read Z: A = 1x1 -> 3x3 -> 1x1 conv and B = 1x1 -> 5x5 -> 1x1 conv (batch norm and ReLU
between), with the same output channels. Channel by channel the two square maps are multiplied as
matrices, G_c = A_c B_c, so that G_c(i, j) = sum_k A_c(i, k) B_c(k, j) combines row i of A_c with
column j of B_c: every output position sees a whole row and a whole column of the map (a non-local
operation that relates distant facial parts). A 1x1 conv then gives the geometric representation.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .layers import conv_bn


def bottleneck_pathway(in_channels: int, channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    """1x1 -> kxk -> 1x1 convs, each followed by batch norm; ReLU between them, none at the end."""
    return nn.Sequential(
        conv_bn(in_channels, channels, 1),
        conv_bn(channels, channels, kernel_size),
        conv_bn(channels, out_channels, 1, relu=False),
    )


def channelwise_matmul(a: Tensor, b: Tensor) -> Tensor:
    """(B, C, n, n) x (B, C, n, n) -> (B, C, n, n): A_c @ B_c per sample and channel, scaled by 1/sqrt(n).

    The pathways end in batch norm (entries ~ zero mean, unit variance), so a sum of n products has a
    spread of ~sqrt(n): dividing by sqrt(n), as in scaled dot-product attention, keeps it O(1) whatever
    the input size.
    """
    if a.shape[-1] != a.shape[-2] or a.shape != b.shape:
        raise ValueError(
            f"GM multiplies square maps of equal shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    return torch.matmul(a, b) / math.sqrt(a.shape[-1])


class GeometryAwareModule(nn.Module):
    """Z (B, in_channels, n, n) -> geometric representation (B, out_channels, n, n).

    channels: width of pathways A and B (also the number of matrix products per sample).
    """

    def __init__(self, in_channels: int, channels: int = 128, out_channels: int = 512) -> None:
        super().__init__()
        self.pathway_a = bottleneck_pathway(in_channels, channels, channels, kernel_size=3)
        self.pathway_b = bottleneck_pathway(in_channels, channels, channels, kernel_size=5)
        self.project = conv_bn(channels, out_channels, 1)

    def forward(self, z: Tensor) -> Tensor:
        return self.project(channelwise_matmul(self.pathway_a(z), self.pathway_b(z)))
