"""Heatmap-regression landmark networks (issue 28): the field's standard beside ODN's coordinates.

Two bodies, one output: a heatmap per landmark at a quarter of the crop, decoded to the crop's
[-1, 1] frame (models/heatmaps.py), so metrics, reports, predict and export read them as ODN's.

- `backbone="hrnet_w18"`: HRNetV2-W18 as HRNet-Facial defines it (Wang et al., TPAMI 2020;
  HRNet-Facial lib/models/hrnet.py, `HighResolutionNet.forward` and its `head`): the four branch
  outputs of the last stage (timm's `hrnet_w18`, `features_only`, `feature_location=""`: 18, 36, 72
  and 144 channels at strides 4 to 32) upsampled bilinearly to the stride-4 one and concatenated
  (270 channels), then a 1x1 convolution, batch norm and ReLU, then a 1x1 convolution to one map
  per point.
- `backbone="resnet18"`: SimpleBaseline (Xiao et al., ECCV 2018; mmpose's `HeatmapHead`): ResNet-18's
  last stage (stride 32), three 4x4 deconvolutions of 256 channels (stride 2 each, batch norm, ReLU)
  to stride 4, then a 1x1 convolution to one map per point: the heatmap-against-regression question
  answered on BRNet's backbone.

An optional visibility head (models/visibility.py) reads the stride-4 features at the decoded points.
"""

from __future__ import annotations

import timm
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .backbone import create_backbone
from .heatmaps import decode_heatmaps
from .visibility import VisibilityHead

BACKBONES = ("hrnet_w18", "resnet18")
NAMES = {"hrnet_w18": "HRNetV2-W18", "resnet18": "ResNet-18 + deconv (SimpleBaseline)"}


class _HRNetV2Body(nn.Module):
    """HRNetV2's representation: the four branches at stride 4, concatenated."""

    def __init__(self, pretrained: bool, checkpoint: str | None) -> None:
        super().__init__()
        # A local weights file (offline machines) through timm's own loading, as for the hub's.
        overlay = {"file": str(checkpoint)} if checkpoint else None
        self.branches = timm.create_model(
            "hrnet_w18",
            features_only=True,
            feature_location="",
            out_indices=(1, 2, 3, 4),
            pretrained=pretrained or bool(checkpoint),
            pretrained_cfg_overlay=overlay,
        )
        self.channels = sum(self.branches.feature_info.channels())

    def forward(self, images: Tensor) -> Tensor:
        finest, *coarser = self.branches(images)
        size = finest.shape[-2:]
        upsampled = [F.interpolate(x, size=size, mode="bilinear", align_corners=False) for x in coarser]
        return torch.cat([finest, *upsampled], dim=1)


class _SimpleBaselineBody(nn.Module):
    """ResNet-18's last stage, three stride-2 deconvolutions back to stride 4."""

    def __init__(self, pretrained: bool, checkpoint: str | None, channels: int) -> None:
        super().__init__()
        self.backbone = create_backbone("resnet18", pretrained=pretrained, checkpoint=checkpoint)
        layers, width = [], self.backbone.num_features
        for _ in range(3):
            layers += [
                nn.ConvTranspose2d(width, channels, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(channels),
                nn.ReLU(inplace=True),
            ]
            width = channels
        self.deconv = nn.Sequential(*layers)
        self.channels = channels

    def forward(self, images: Tensor) -> Tensor:
        return self.deconv(self.backbone.forward_features(images))


class HeatmapNet(nn.Module):
    """images (B, 3, S, S), ImageNet-normalised -> {"heatmaps": (B, L, S/4, S/4), "landmarks": (B, L, 2)}.

    `landmarks` are the heatmaps decoded (`decode`: "hrnet", HRNet-Facial's quarter-pixel step;
    "dark"; "plain" argmax) in the crop's [-1, 1] frame, without gradient: the objective trains the
    heatmaps (training/heatmap_objective.py). With `visibility_head`, `occlusion_logit` (B, L) too.
    """

    def __init__(
        self,
        num_landmarks: int,
        backbone: str = "hrnet_w18",
        pretrained: bool = False,
        backbone_checkpoint: str | None = None,
        decode: str = "hrnet",
        deconv_channels: int = 256,
        visibility_head: bool = False,
        visibility_channels: int = 64,
    ) -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"model.net.backbone={backbone!r}; choose one of {', '.join(BACKBONES)}")
        if decode not in ("hrnet", "dark", "plain"):
            raise ValueError(f"model.net.decode={decode!r}; choose hrnet, dark or plain")
        self.num_landmarks, self.backbone_name, self.decode = num_landmarks, backbone, decode
        if backbone == "hrnet_w18":
            self.body = _HRNetV2Body(pretrained, backbone_checkpoint)
            width = self.body.channels
            self.head = nn.Sequential(
                nn.Conv2d(width, width, 1),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.Conv2d(width, num_landmarks, 1),
            )
        else:
            self.body = _SimpleBaselineBody(pretrained, backbone_checkpoint, deconv_channels)
            width = self.body.channels
            self.head = nn.Conv2d(width, num_landmarks, 1)
        self.visibility = (
            VisibilityHead(width, num_landmarks, visibility_channels) if visibility_head else None
        )

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        features = self.body(images)
        heatmaps = self.head(features)
        landmarks = decode_heatmaps(heatmaps.detach().float(), self.decode).points.to(heatmaps.dtype)
        outputs = {"heatmaps": heatmaps, "landmarks": landmarks}
        if self.visibility is not None:
            outputs["occlusion_logit"] = self.visibility(features, landmarks)
        return outputs

    @property
    def variant(self) -> str:
        """The network's name in tables and reports."""
        return NAMES[self.backbone_name] + (" + visibility head" if self.visibility is not None else "")
