"""The ResNet backbone of ODN (paper §3.1 and §4.1: ResNet-18, pre-trained on ImageNet).

ODN "modifies the last residual unit": the feature map Z that enters the last block of the last
stage (layer4[1] of ResNet-18: 512 x 7 x 7 for 224-px inputs) feeds the GM and DM modules, and that
block itself becomes pathway C of the DM. The backbone is timm's ResNet with its classifier removed,
kept whole so that ImageNet state_dicts (timm's or torchvision's: same key names) load unchanged.
"""

from __future__ import annotations

import os
from pathlib import Path

import timm
from timm.models import load_state_dict
from torch import Tensor, nn

PAPER_BACKBONE = "resnet18"
CHECKPOINT_OPTION = "model.net.backbone_checkpoint"


class PretrainedWeightsUnavailable(RuntimeError):
    """ImageNet weights were requested but could not be fetched, and no local file was given."""


def create_backbone(
    name: str = PAPER_BACKBONE,
    pretrained: bool = False,
    checkpoint: str | os.PathLike | None = None,
    output_stride: int = 32,
) -> nn.Module:
    """A timm ResNet without classifier or pooling (forward gives the last stage's maps).

    name: any timm ResNet, optionally with a weight tag (e.g. "resnet18.tv_in1k", torchvision's weights).
    checkpoint: a local .pth / .safetensors state_dict (for offline machines); it wins over `pretrained`.
    pretrained: fetch ImageNet weights through timm (Hugging Face hub); a failure raises one clear line.
    output_stride: 32 (the paper: Z and P are S/32 on a side) or 16 (timm dilates layer4 instead of
        striding it: maps twice as fine, e.g. 8 x 8 for 128-px crops, with the same weights).
    """
    if output_stride not in (16, 32):
        raise ValueError(f"model.net.output_stride={output_stride}; choose 32 (the paper's) or 16")
    options = {"num_classes": 0, "global_pool": "", "output_stride": output_stride}
    if not timm.is_model(name):
        raise ValueError(f"unknown timm model {name!r}")
    if checkpoint is not None:
        backbone = timm.create_model(name, pretrained=False, **options)
        load_backbone_checkpoint(backbone, checkpoint)
    elif pretrained:
        try:
            backbone = timm.create_model(name, pretrained=True, **options)
        except Exception as err:  # offline: OSError, requests/httpx errors, hub errors... all mean "no hub"
            reason = (str(err).strip().splitlines() or [""])[0][:200]
            raise PretrainedWeightsUnavailable(
                f"could not fetch ImageNet weights for {name} ({type(err).__name__}: {reason}); "
                f"offline, set {CHECKPOINT_OPTION}=PATH to a local .pth/.safetensors {name} state_dict "
                "(or model.net.pretrained=false to train from scratch)"
            ) from err
    else:
        backbone = timm.create_model(name, pretrained=False, **options)
    if not all(hasattr(backbone, part) for part in ("conv1", "bn1", "act1", "maxpool", "layer4")):
        raise ValueError(f"{name} is not a ResNet: ODN modifies the last residual unit of a ResNet")
    return backbone


def load_backbone_checkpoint(backbone: nn.Module, path: str | os.PathLike) -> None:
    """Load a timm/torchvision ResNet state_dict from .pth or .safetensors; its classifier is ignored."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{CHECKPOINT_OPTION}: no such file: {path}")
    # timm's loader reads both formats and unwraps "state_dict"/"model" nesting and "module." prefixes.
    state_dict = load_state_dict(str(path))
    state_dict = {key: value for key, value in state_dict.items() if not key.startswith("fc.")}
    missing, unexpected = backbone.load_state_dict(state_dict, strict=False)
    if missing or unexpected:
        raise RuntimeError(
            f"{path} does not fit the backbone: {len(missing)} missing keys (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]})"
        )


def features_before_last_block(backbone: nn.Module, images: Tensor) -> Tensor:
    """Z: the stem, layer1-3 and every block of layer4 but the last (ResNet-18: 512 x S/32 x S/32)."""
    x = backbone.maxpool(backbone.act1(backbone.bn1(backbone.conv1(images))))
    x = backbone.layer3(backbone.layer2(backbone.layer1(x)))
    for block in backbone.layer4[:-1]:
        x = block(x)
    return x


def last_block(backbone: nn.Module) -> nn.Module:
    """The residual block that ODN replaces (pathway C of the DM)."""
    return backbone.layer4[-1]


def last_block_channels(backbone: nn.Module) -> tuple[int, int]:
    """(channels of Z, channels of the last block's output)."""
    block = last_block(backbone)
    return block.conv1.in_channels, backbone.num_features
