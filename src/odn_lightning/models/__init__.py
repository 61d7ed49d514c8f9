"""Landmark networks: ODN (Zhu et al., CVPR 2019) with its GM, DM and LM modules, the heatmap networks
(HRNetV2-W18, SimpleBaseline on ResNet-18), and their helpers."""

from __future__ import annotations

from .backbone import PretrainedWeightsUnavailable, create_backbone, load_backbone_checkpoint
from .distillation import DistillationModule
from .geometry import GeometryAwareModule
from .heatmap_net import HeatmapNet
from .low_rank import FeatureReadout, LowRankModule
from .odn import ODN
from .summary import describe_network

__all__ = [
    "ODN",
    "DistillationModule",
    "FeatureReadout",
    "GeometryAwareModule",
    "HeatmapNet",
    "LowRankModule",
    "PretrainedWeightsUnavailable",
    "create_backbone",
    "describe_network",
    "load_backbone_checkpoint",
]
