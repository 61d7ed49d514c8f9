"""Image normalisation with ImageNet statistics (what timm backbones expect), and its inverse."""

from __future__ import annotations

import numpy as np

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def normalise_image(image: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 RGB -> float32 3xHxW, ImageNet-normalised."""
    return ((image.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)


def denormalise_image(chw: np.ndarray) -> np.ndarray:
    """float32 3xHxW, ImageNet-normalised -> uint8 HxWx3 RGB (for pictures)."""
    return np.clip((chw.transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN) * 255.0, 0, 255).astype(np.uint8)
