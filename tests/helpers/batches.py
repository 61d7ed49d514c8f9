"""Batches as a loader hands them to the module (`odn_lightning.datatypes.Batch`), made without images."""

from __future__ import annotations

import torch

from odn_lightning.crop import crop_to_original
from odn_lightning.datatypes import Batch, Sample, collate_samples
from odn_lightning.schemes import IBUG68

CROP_SIDE = 32


def random_batches(split: str, count: int = 3, size: int = 4, seed: int = 0) -> list[Batch]:
    """`count` batches of `size` random 68-point faces of one split, indexed in order, with a sane
    inter-ocular distance and a crop matrix that scales by 2 and shifts."""
    generator = torch.Generator().manual_seed(seed)
    matrix = torch.tensor([[2.0, 0.0, 1.0], [0.0, 2.0, -3.0]], dtype=torch.float64)
    batches = []
    for b in range(count):
        samples = []
        for i in range(size):
            landmarks = torch.rand(IBUG68.num_landmarks, 2, generator=generator) * 2 - 1
            left, right = IBUG68.outer_eye_corners
            landmarks[left, 0], landmarks[right, 0] = -0.5, 0.5
            target_px = crop_to_original(landmarks[None], matrix[None], CROP_SIDE)[0]
            samples.append(
                Sample(
                    image=torch.randn(3, CROP_SIDE, CROP_SIDE, generator=generator),
                    landmarks=landmarks,
                    visible=torch.ones(IBUG68.num_landmarks, dtype=torch.bool),
                    has_visibility=False,
                    matrix=matrix,
                    target_px=target_px,
                    normalising_box=torch.cat([target_px.amin(dim=0), target_px.amax(dim=0)]),
                    box_size=torch.tensor(float("nan"), dtype=torch.float64),
                    index=b * size + i,
                    split=split,
                    image_path=f"{split}/{b * size + i}.png",
                )
            )
        batches.append(collate_samples(samples))
    return batches
