"""Face crops and augmentation.

Geometry (crop, rotation, scale, translation, flip) is one similarity transform applied in a single
warp from the original image: one interpolation, real image context in the corners a rotation
uncovers, and an exact inverse for mapping predictions back. Photometric augmentation is
albumentations'.

Coordinates: landmarks in pixels are 0-based with pixel centres on integers (OpenCV's convention);
in the crop they are normalised to [-1, 1], -1 and +1 being the crop's outer edges.
"""

from __future__ import annotations

from dataclasses import dataclass

import albumentations as A
import cv2
import numpy as np
import torch

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def face_box(landmarks: np.ndarray) -> np.ndarray:
    """Tight box [x0, y0, x1, y1] around the landmarks."""
    return np.concatenate([landmarks.min(axis=0), landmarks.max(axis=0)]).astype(np.float64)


def crop_matrix(box: np.ndarray, image_size: int, margin: float) -> np.ndarray:
    """2x3 matrix mapping original pixels to a square crop around `box` enlarged by `margin`."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * (1.0 + margin)
    if side <= 0:
        raise ValueError(f"degenerate face box {box.tolist()}")
    scale = image_size / side
    # Continuous coordinates (pixel i spans [i, i+1)) of the crop's top-left corner.
    cx, cy = (x0 + x1) / 2 + 0.5, (y0 + y1) / 2 + 0.5
    left, top = cx - side / 2, cy - side / 2
    return np.array(
        [[scale, 0.0, (0.5 - left) * scale - 0.5], [0.0, scale, (0.5 - top) * scale - 0.5]],
        dtype=np.float64,
    )


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


def apply_matrix(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def invert_matrix(matrix: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(matrix)


def to_normalised(points_px: np.ndarray, image_size: int) -> np.ndarray:
    return (2.0 * points_px + 1.0) / image_size - 1.0


def from_normalised(points: np.ndarray, image_size: int) -> np.ndarray:
    return ((points + 1.0) * image_size - 1.0) / 2.0


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


def crop_to_original(points: torch.Tensor, matrix: torch.Tensor, image_size: int) -> torch.Tensor:
    """Batched: points (B, L, 2) normalised in the crop -> original pixels, by each face's crop
    matrix (B, 2, 3): the exact inverse of the crop."""
    crop_px = from_normalised(points.to(torch.float64), image_size)
    matrix = matrix.to(torch.float64)
    linear, offset = matrix[:, :, :2], matrix[:, :, 2]
    return torch.linalg.solve(linear, (crop_px - offset[:, None, :]).transpose(1, 2)).transpose(1, 2)


def normalise_image(image: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 RGB to float32 3xHxW with ImageNet statistics (what timm backbones expect)."""
    return ((image.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)


def denormalise_image(chw: np.ndarray) -> np.ndarray:
    return np.clip((chw.transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN) * 255.0, 0, 255).astype(np.uint8)
