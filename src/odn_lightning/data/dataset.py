"""A dataset of face records: reads each image, crops and augments it, returns a training sample."""

from __future__ import annotations

from collections.abc import Sequence

import albumentations as A
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..crop import apply_matrix, crop_matrix, face_box, to_normalised
from ..datatypes import Sample
from ..imagenet import normalise_image
from ..schemes import LandmarkScheme
from .records import FaceRecord
from .transforms import CropAugmentation, covered_points, jitter_matrix, warp_crop

CROP_BOXES = ("landmarks", "dataset")


def load_rgb(path) -> np.ndarray:
    """HxWx3 uint8 RGB in stored pixel order. Pillow, not OpenCV: OpenCV decodes what is left of a
    truncated JPEG with only a warning, and turns images by their EXIF orientation, which the
    annotations (made on the stored pixels) do not follow."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as err:
        raise OSError(
            f"{path}: cannot read the image ({err}); `make data-check` lists every such file"
        ) from err


class LandmarkDataset(Dataset):
    """The faces of one split as `Sample`s (see `odn_lightning.datatypes`); with `occluder_masks` and a
    mask for every face (synthetic data), each sample has its `occluder_mask` warped into the crop.

    The crop is a square about the face box enlarged by `crop_margin`; `crop_box` says whose box:
    "landmarks" (tight box of the points) or "dataset" (the box the dataset gives, e.g. WFLW's).
    `occlusion` pastes random patches (training only) and flags the landmarks under them occluded.
    """

    def __init__(
        self,
        records: Sequence[FaceRecord],
        scheme: LandmarkScheme,
        split: str,
        image_size: int,
        crop_margin: float,
        augmentation: CropAugmentation | None = None,
        photometric: A.Compose | None = None,
        occlusion: A.BasicTransform | None = None,
        crop_box: str = "landmarks",
        occluder_masks: bool = False,
    ) -> None:
        self.records = list(records)
        self.scheme = scheme
        self.split = split
        self.image_size = image_size
        self.crop_margin = crop_margin
        self.augmentation = augmentation
        self.photometric = photometric
        self.occlusion = occlusion
        if crop_box not in CROP_BOXES:
            raise ValueError(f"data.crop_box={crop_box!r}; choose one of {CROP_BOXES}")
        self.crop_box = crop_box
        self.occluder_masks = occluder_masks and all(r.mask_path is not None for r in self.records)
        for record in self.records:
            if len(record.landmarks) != scheme.num_landmarks:
                raise ValueError(
                    f"{record.image_path}: {len(record.landmarks)} landmarks, but the "
                    f"'{scheme.name}' scheme has {scheme.num_landmarks}"
                )
            if crop_box == "dataset" and record.box is None:
                raise ValueError(
                    f"{record.source}: no face box in the dataset, but "
                    "data.crop_box=dataset; crop around the landmarks with data.crop_box=landmarks"
                )

    @property
    def is_augmented(self) -> bool:
        return any(t is not None for t in (self.augmentation, self.photometric, self.occlusion))

    def __len__(self) -> int:
        return len(self.records)

    def eval_matrix(self, record: FaceRecord) -> np.ndarray:
        """The deterministic crop used for evaluation (and as the base of training crops)."""
        box = record.box if self.crop_box == "dataset" else face_box(record.landmarks)
        return crop_matrix(np.asarray(box, dtype=np.float64), self.image_size, self.crop_margin)

    @staticmethod
    def normalising_box(record: FaceRecord) -> np.ndarray:
        """The box that normalises box-based NMEs: the dataset's, else the landmarks' tight box."""
        return np.asarray(record.box if record.box is not None else face_box(record.landmarks), np.float64)

    def __getitem__(self, index: int) -> Sample:
        record = self.records[index]
        matrix = self.eval_matrix(record)
        landmarks = record.landmarks
        visible = record.visible if record.visible is not None else np.ones(len(landmarks), dtype=bool)
        # Every random draw of a sample derives from one torch draw; torch's generator is seeded per
        # worker by the DataLoader, so training samples are reproducible by the run's seed.
        seed = int(torch.randint(0, 2**31 - 3, (1,))) if self.is_augmented else 0
        if self.augmentation is not None:
            rng = np.random.default_rng(seed)
            aug = self.augmentation
            jitter, mirrored = jitter_matrix(
                rng, self.image_size, aug.rotation, aug.scale, aug.translation, aug.flip
            )
            matrix = (jitter @ np.vstack([matrix, [0.0, 0.0, 1.0]]))[:2]
            if mirrored:
                # After mirroring, point i of the scheme sits where point perm[i] was.
                perm = np.asarray(self.scheme.flip_permutation)
                landmarks, visible = landmarks[perm], visible[perm]
        image = warp_crop(load_rgb(record.image_path), matrix, self.image_size)
        if self.photometric is not None:
            self.photometric.set_random_seed(seed + 1)
            image = self.photometric(image=image)["image"]
        points = apply_matrix(matrix, landmarks.astype(np.float64))
        if self.occlusion is not None:
            self.occlusion.set_random_seed(seed + 2)
            patched = self.occlusion(image=image, mask=np.zeros(image.shape[:2], dtype=np.uint8))
            image = patched["image"]
            visible = visible & ~covered_points(patched["mask"], points)
        sample = Sample(
            image=torch.from_numpy(normalise_image(image)),
            landmarks=torch.from_numpy(to_normalised(points, self.image_size).astype(np.float32)),
            visible=torch.from_numpy(np.asarray(visible, dtype=bool)),
            has_visibility=record.visible is not None,
            matrix=torch.from_numpy(matrix),
            target_px=torch.from_numpy(landmarks.astype(np.float64)),
            normalising_box=torch.from_numpy(self.normalising_box(record)),
            index=index,
            split=self.split,
            image_path=str(record.image_path),
        )
        if self.occluder_masks:
            mask = np.asarray(Image.open(record.mask_path).convert("L"))
            sample["occluder_mask"] = torch.from_numpy(warp_crop(mask, matrix, self.image_size, nearest=True))
        return sample
