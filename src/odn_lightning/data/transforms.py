"""Training augmentation of face crops, and the warp that cuts a crop.

Geometry (crop, rotation, scale, translation, flip) is one similarity transform applied in a single
warp from the original image (or, with the face-crop cache, from the face's cached patch, which holds
every crop the augmentation can draw: `data.crop_cache`): real image context in the corners a rotation
uncovers, and an exact inverse for mapping predictions back (`odn_lightning.crop`). Photometric and
occlusion augmentation are albumentations'.
"""

from __future__ import annotations

from dataclasses import dataclass

import albumentations as A
import cv2
import numpy as np


def jitter_matrix(
    rng: np.random.Generator,
    image_size: int,
    rotation: float,
    scale: float,
    translation: float,
    flip: bool,
) -> tuple[np.ndarray, bool]:
    """A random similarity about the crop centre (3x3), and whether it mirrors the image."""
    centre = (image_size - 1) / 2
    angle = np.deg2rad(rng.uniform(-rotation, rotation))
    s = rng.uniform(1.0 - scale, 1.0 + scale)
    tx, ty = rng.uniform(-translation, translation, size=2) * image_size
    mirrored = bool(flip and rng.random() < 0.5)
    cos, sin = s * np.cos(angle), s * np.sin(angle)
    sign = -1.0 if mirrored else 1.0
    # x' = R S (Mx - c) + c + t, with Mx the optional mirror about the crop centre.
    linear = np.array([[cos * sign, -sin], [sin * sign, cos]])
    offset = np.array([centre + tx, centre + ty]) - linear @ np.array([centre, centre])
    jitter = np.eye(3)
    jitter[:2, :2], jitter[:2, 2] = linear, offset
    return jitter, mirrored


@dataclass
class CropAugmentation:
    """Random geometry of a training crop: degrees, relative scale, fraction of the crop, flip."""

    rotation: float = 0.0
    scale: float = 0.0
    translation: float = 0.0
    flip: bool = False


def photometric_augmentation(color_jitter: float = 0.0, blur: float = 0.0, noise: float = 0.0) -> A.Compose:
    """albumentations' pixel-level augmentations; they move no pixel, so landmarks are untouched."""
    transforms: list[A.BasicTransform] = []
    if color_jitter > 0:
        transforms.append(
            A.ColorJitter(
                brightness=color_jitter, contrast=color_jitter, saturation=color_jitter, hue=0.05, p=0.8
            )
        )
    if blur > 0:
        transforms.append(A.GaussianBlur(blur_limit=(3, 5), p=blur))
    if noise > 0:
        transforms.append(A.GaussNoise(std_range=(0.02, 0.08), p=noise))
    return A.Compose(transforms)


def occlusion_augmentation(
    probability: float = 0.0,
    num_patches: tuple[int, int] = (1, 3),
    size: tuple[float, float] = (0.1, 0.3),
    fill: str | float = "random",
) -> A.CoarseDropout | None:
    """Random occluding patches on the crop (albumentations' CoarseDropout): `size` is the patch
    side as a fraction of the crop. The patches come back as a mask (1 under a patch) so that the
    landmarks they cover can be flagged occluded. None when `probability` is 0 (the paper recipe)."""
    if probability <= 0:
        return None
    return A.CoarseDropout(
        num_holes_range=tuple(num_patches),
        hole_height_range=tuple(size),
        hole_width_range=tuple(size),
        fill=fill,
        fill_mask=1,
        p=probability,
    )


def covered_points(mask: np.ndarray, points_px: np.ndarray) -> np.ndarray:
    """(L,) bool: which points (crop pixels) lie on a non-zero pixel of `mask`."""
    height, width = mask.shape[:2]
    cols, rows = np.round(points_px).astype(np.int64).T
    inside = (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
    hit = np.zeros(len(points_px), dtype=bool)
    hit[inside] = mask[rows[inside], cols[inside]] > 0
    return hit


def warp_crop(image: np.ndarray, matrix: np.ndarray, image_size: int, nearest: bool = False) -> np.ndarray:
    """The crop: bilinear for images, `nearest` for masks (keeps their values)."""
    flags = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.warpAffine(
        image, matrix, (image_size, image_size), flags=flags, borderMode=cv2.BORDER_CONSTANT
    )
