"""Occlusion-adaptive Deep Network, ODN (Zhu et al., CVPR 2019, §3 and Fig. 2).

    images -> ResNet-18 up to the last residual unit -> Z
    Z -> GM (geometry-aware, §3.2)                                 -> G
    Z -> DM (distillation, §3.3): pathway C (the last residual block) * P(Z) -> clean features
    [G, clean] -> readout (down-sample, flatten) -> X -> LM (§3.4): M^T X -> FC -> S (2L coordinates)

Each module can be switched off (the ablation of Table 4): without the DM the clean branch is pathway
C alone (the original residual block), without the GM there is no geometric branch, without the LM X
goes straight to the FC layer. With all three off and the "gap" readout this is exactly timm's
ResNet-18 with a 2L-output head (BRNet).

The network also follows the regularised-network protocol of `odn_lightning.training.objective`
(`conv_weights`, `fc_weight`, `structural_matrix`), which eq. 3 needs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from .backbone import (
    PAPER_BACKBONE,
    create_backbone,
    features_before_last_block,
    last_block,
    last_block_channels,
)
from .distillation import DistillationModule
from .geometry import GeometryAwareModule
from .low_rank import FeatureReadout, LowRankModule
from .visibility import VisibilityHead


class ODN(nn.Module):
    """ODN for `num_landmarks` points; forward returns landmarks in the crop's [-1, 1] frame.

    Args:
        num_landmarks: L; the FC layer has 2L outputs, read as (x, y) per point.
        use_gm, use_dm, use_lm: switch the geometry-aware, distillation and low-rank modules.
        backbone: timm ResNet name, optionally with a weight tag ("resnet18.tv_in1k"); the paper uses
            ResNet-18.
        pretrained: ImageNet weights through timm (needs the Hugging Face hub).
        backbone_checkpoint: local .pth/.safetensors ResNet state_dict, for offline machines; wins
            over `pretrained`.
        gm_channels: width of GM pathways A and B; gm_out_channels: channels of the geometric
            representation (ResNet-18: 512, as many as the clean features).
        dm_channels: width of DM pathway D; dm_initial_p: P of the untrained DM (None: about 0.5).
        readout: how the hybrid features become X: "gap" (global average pool, d = channels) or
            "conv_pool" (1x1 conv to `readout_channels`, average pool to `readout_grid`^2, flatten:
            d = readout_channels * readout_grid^2 = 256 by default). None: "gap" when all three
            modules are off (BRNet), else "conv_pool".
        output_stride: 32 (the paper's: Z and P are S/32 on a side) or 16 (layer4 dilated, not
            strided: twice as fine a map for the GM and P, about 1.7x the cost at the same weights).
        visibility_head: add a per-landmark visibility head (`VisibilityHead`, beyond the paper) on the
            hybrid features: forward then also returns each point's occlusion logit. Built last, so a
            network without it is initialised exactly as before.
        visibility_channels: the width the head reduces the features to.
    """

    def __init__(
        self,
        num_landmarks: int,
        use_gm: bool = True,
        use_dm: bool = True,
        use_lm: bool = True,
        backbone: str = PAPER_BACKBONE,
        pretrained: bool = False,
        backbone_checkpoint: str | os.PathLike | None = None,
        gm_channels: int = 128,
        gm_out_channels: int = 512,
        dm_channels: int = 64,
        readout: str | None = None,
        readout_channels: int = 64,
        readout_grid: int = 2,
        output_stride: int = 32,
        dm_initial_p: float | None = None,
        visibility_head: bool = False,
        visibility_channels: int = 64,
    ) -> None:
        super().__init__()
        self.num_landmarks = num_landmarks
        self.use_gm, self.use_dm, self.use_lm = use_gm, use_dm, use_lm
        self.backbone = create_backbone(
            backbone, pretrained=pretrained, checkpoint=backbone_checkpoint, output_stride=output_stride
        )
        z_channels, clean_channels = last_block_channels(self.backbone)

        self.geometry = GeometryAwareModule(z_channels, gm_channels, gm_out_channels) if use_gm else None
        self.distillation = DistillationModule(z_channels, dm_channels, dm_initial_p) if use_dm else None
        hybrid_channels = clean_channels + (gm_out_channels if use_gm else 0)
        if readout is None:
            readout = "conv_pool" if (use_gm or use_dm or use_lm) else "gap"
        self.readout = FeatureReadout(hybrid_channels, readout, readout_channels, readout_grid)
        self.low_rank = LowRankModule(self.readout.dim) if use_lm else None
        self.fc = nn.Linear(self.readout.dim, 2 * num_landmarks)
        self.visibility = (
            VisibilityHead(hybrid_channels, num_landmarks, visibility_channels) if visibility_head else None
        )

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """images (B, 3, S, S), ImageNet-normalised -> {"landmarks": (B, L, 2), "occlusion_map": ...}.

        `landmarks` are (x, y) per point in the crop's [-1, 1] frame. `occlusion_map`, present when the
        DM is on, is P (B, 1, n, n) in [0, 1] at the feature resolution n = S / output_stride.
        `occlusion_logit`, present with the visibility head, is each point's occlusion logit (B, L).
        """
        outputs: dict[str, Tensor] = {}
        z = features_before_last_block(self.backbone, images)
        clean = last_block(self.backbone)(z)  # pathway C
        if self.distillation is not None:
            clean, outputs["occlusion_map"] = self.distillation(z, clean)
        hybrid = torch.cat([self.geometry(z), clean], dim=1) if self.geometry is not None else clean
        x = self.readout(hybrid)
        if self.low_rank is not None:
            x = self.low_rank(x)
        outputs["landmarks"] = self.fc(x).view(-1, self.num_landmarks, 2)
        if self.visibility is not None:
            outputs["occlusion_logit"] = self.visibility(hybrid, outputs["landmarks"])
        return outputs

    @torch.no_grad()
    def init_output_bias(self, landmarks: Tensor) -> None:
        """Make the untrained network predict `landmarks` (L, 2), e.g. the mean training shape."""
        self.fc.bias.copy_(landmarks.reshape(-1).to(self.fc.bias))

    # The regularised-network protocol of odn_lightning.training.objective (eq. 3).
    def conv_weights(self) -> Iterator[Tensor]:
        """Every convolution weight of the network (alpha term)."""
        return (module.weight for module in self.modules() if isinstance(module, nn.Conv2d))

    def fc_weight(self) -> Tensor:
        """W_fc of the final FC layer (lambda term)."""
        return self.fc.weight

    def structural_matrix(self) -> Tensor | None:
        """M of the LM (beta and gamma terms); None without the LM."""
        return self.low_rank.structural_matrix if self.low_rank is not None else None

    @property
    def variant(self) -> str:
        """Which Table-4 network the switches make, as the paper names it: "BRNet" (no module),
        "+GM+DM" (the modules on), "ODN (GM+LM+DM)" (all three); a readout other than the one those
        rows use is named after it. (Eq. 3's eta, which makes "w/o L1", belongs to the objective.)"""
        modules = [name for name, on in (("GM", self.use_gm), ("DM", self.use_dm), ("LM", self.use_lm)) if on]
        if not modules:
            name = "BRNet"
        elif len(modules) == 3:
            name = "ODN (GM+LM+DM)"
        else:
            name = "+" + "+".join(modules)
        usual_readout = "conv_pool" if modules else "gap"
        if self.readout.mode != usual_readout:
            name = f"{name}, {self.readout.mode} readout"
        return name if self.visibility is None else f"{name} + visibility head"

    def extra_repr(self) -> str:
        switches = f"use_gm={self.use_gm}, use_dm={self.use_dm}, use_lm={self.use_lm}"
        return f"num_landmarks={self.num_landmarks}, {switches}"
