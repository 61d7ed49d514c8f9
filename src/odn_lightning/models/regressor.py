"""A plain landmark regressor over any timm backbone: global pooling then a linear head."""

from __future__ import annotations

import timm
from torch import Tensor, nn


class TimmRegressor(nn.Module):
    """Any timm image model with a 2L-output head; predicts landmarks in the crop's [-1, 1] frame."""

    def __init__(self, num_landmarks: int, backbone: str = "resnet18", pretrained: bool = False) -> None:
        super().__init__()
        self.num_landmarks = num_landmarks
        self.model = timm.create_model(backbone, pretrained=pretrained, num_classes=2 * num_landmarks)

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        return {"landmarks": self.model(images).view(-1, self.num_landmarks, 2)}


__all__ = ["TimmRegressor"]
