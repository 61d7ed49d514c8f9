"""A dataset of face records: reads each image, crops and augments it, returns a training sample."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import albumentations as A
import numpy as np
import torch
from torch.utils.data import Dataset

from ..atomic import shown
from ..crop import apply_matrix, crop_matrix, face_box, invert_matrix, to_normalised
from ..datatypes import Sample
from ..imagenet import normalise_image
from ..schemes import LandmarkScheme
from .records import (
    DECODE_ERRORS,
    DEFAULT_MAX_IMAGE_PIXELS,
    FaceRecord,
    ImageDecodeError,
    decode_reason,
    open_image,
)
from .sampler import SEED_BOUND, SampleKey
from .transforms import CropAugmentation, covered_points, jitter_matrix, warp_crop

log = logging.getLogger(__name__)
CROP_BOXES = ("landmarks", "dataset")
ON_BAD_SAMPLE = ("error", "skip")
DECODE_ADVICE = "fix or remove it, or leave such faces out with data.on_bad_sample=skip"


def load_image(path, mode: str = "RGB", max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
    """The image in Pillow `mode` ("RGB": HxWx3 uint8) in stored pixel order. Pillow, not OpenCV:
    OpenCV decodes what is left of a truncated JPEG with only a warning, and turns images by their
    EXIF orientation, which the annotations (made on the stored pixels) do not follow. A file that
    fails to decode, or is over `max_pixels` (None: no limit), raises ImageDecodeError."""
    try:
        with open_image(path, max_pixels) as image:
            return np.asarray(image.convert(mode))
    except ImageDecodeError:
        raise
    except DECODE_ERRORS as err:
        raise ImageDecodeError(
            f"{shown(path)}: cannot decode the image ({decode_reason(err)})", DECODE_ADVICE
        ) from err


def load_rgb(path, max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
    """HxWx3 uint8 RGB in stored pixel order (`load_image`)."""
    return load_image(path, "RGB", max_pixels)


def append_line(path: Path, line: str) -> None:
    """Add `line` to a text file unless it holds it already; one write with O_APPEND, so the lines of
    loader workers writing at once do not interleave."""
    if path.is_file() and line in path.read_text(errors="surrogateescape").splitlines():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        os.write(fd, f"{line}\n".encode("utf-8", "surrogateescape"))
    finally:
        os.close(fd)


class LandmarkDataset(Dataset):
    """The faces of one split as `Sample`s (see `odn_lightning.datatypes`); with `occluder_masks` and a
    mask for every face (synthetic data), each sample has its `occluder_mask` warped into the crop.

    The crop is a square about the face box enlarged by `crop_margin`; `crop_box` says whose box:
    "landmarks" (tight box of the points) or "dataset" (the box the dataset gives, e.g. WFLW's).
    `occlusion` pastes random patches (training only) and flags the landmarks under them occluded.

    An image that fails to decode (or is over `max_image_pixels`) when a sample is made raises
    ImageDecodeError with `on_bad_sample="error"`; with "skip" the sample is None (`collate_samples`
    drops it), a warning names the file and `bad_samples_dir/bad_samples_<split>.txt` lists it.
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
        on_bad_sample: str = "error",
        bad_samples_dir: str | Path | None = None,
        max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
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
        if on_bad_sample not in ON_BAD_SAMPLE:
            raise ValueError(f"data.on_bad_sample={on_bad_sample!r}; choose one of {ON_BAD_SAMPLE}")
        self.on_bad_sample = on_bad_sample
        self.bad_samples_dir = Path(bad_samples_dir) if bad_samples_dir else None
        self.max_image_pixels = max_image_pixels
        self._skipped: set[int] = set()  # faces this process has reported
        # The split's crop cache (`crop_cache.attach_crop_cache`); None: crops are cut from the images.
        self.crops = None
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

    @staticmethod
    def box_size(record: FaceRecord) -> float:
        """The dataset's own box size, which normalises `box_size` NMEs (HRNet's AFLW CSV); NaN where none."""
        return np.nan if record.box_size is None else float(record.box_size)

    def __getitem__(self, key: int | SampleKey) -> Sample | None:
        """The sample of face `key`: an index, or a `SampleKey` (index and seed) from the training
        sampler, whose seed then drives every random draw of the sample. None: the face's image did
        not decode and `on_bad_sample` is "skip"."""
        index, seed = key if isinstance(key, tuple) else (key, None)
        try:
            return self._sample(index, seed)
        except ImageDecodeError as err:
            if self.on_bad_sample == "error":
                raise
            self._skip(index, err)
            return None

    def _skip(self, index: int, err: ImageDecodeError) -> None:
        if index in self._skipped:
            return
        self._skipped.add(index)
        where = "no list written (no data.bad_samples_dir)"
        if self.bad_samples_dir is not None:
            path = self.bad_samples_dir / f"bad_samples_{self.split}.txt"
            try:
                append_line(path, err.problem)
                where = f"listed in {shown(path)}"
            except OSError as write_err:
                where = f"cannot list it in {shown(path)} ({decode_reason(write_err)})"
        log.warning(f"split '{self.split}': skipped {err.problem} (data.on_bad_sample=skip); {where}")

    def _sample(self, index: int, seed: int | None) -> Sample:
        record = self.records[index]
        matrix = self.eval_matrix(record)
        landmarks = record.landmarks
        visible = record.visible if record.visible is not None else np.ones(len(landmarks), dtype=bool)
        located = record.located if record.located is not None else np.ones(len(landmarks), dtype=bool)
        # Every random draw of a sample derives from one seed: the sampler's (a function of the run's
        # seed, the epoch and the position), else one torch draw (a dataset used on its own).
        if seed is None:
            seed = int(torch.randint(0, SEED_BOUND, (1,))) if self.is_augmented else 0
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
                landmarks, visible, located = landmarks[perm], visible[perm], located[perm]
        cached_mask = None
        if self.crops is not None:
            # The cached patch: the evaluation crop itself, or (augmented) a larger patch from which
            # the training crop is cut with original -> crop composed with patch -> original.
            image, patch_matrix, cached_mask = self.crops.face(index)
            if self.crops.exact:
                image = np.array(image)
            else:
                patch_to_original = np.vstack([invert_matrix(patch_matrix), [0.0, 0.0, 1.0]])
                to_crop = (np.vstack([matrix, [0.0, 0.0, 1.0]]) @ patch_to_original)[:2]
                image = warp_crop(image, to_crop, self.image_size)
                if cached_mask is not None:
                    cached_mask = warp_crop(cached_mask, to_crop, self.image_size, nearest=True)
        else:
            image = warp_crop(load_rgb(record.image_path, self.max_image_pixels), matrix, self.image_size)
        if self.photometric is not None:
            self.photometric.set_random_seed(seed + 1)
            image = self.photometric(image=image)["image"]
        points = apply_matrix(matrix, landmarks.astype(np.float64))
        patches = None  # where occlusion augmentation painted its patches (1), for the occluder mask
        if self.occlusion is not None:
            self.occlusion.set_random_seed(seed + 2)
            patched = self.occlusion(image=image, mask=np.zeros(image.shape[:2], dtype=np.uint8))
            image, patches = patched["image"], patched["mask"]
            visible = visible & ~covered_points(patches, points)
        sample = Sample(
            image=torch.from_numpy(normalise_image(image)),
            landmarks=torch.from_numpy(to_normalised(points, self.image_size).astype(np.float32)),
            visible=torch.from_numpy(np.asarray(visible, dtype=bool)),
            has_visibility=record.visible is not None,
            located=torch.from_numpy(np.asarray(located, dtype=bool)),
            matrix=torch.from_numpy(matrix),
            target_px=torch.from_numpy(landmarks.astype(np.float64)),
            normalising_box=torch.from_numpy(self.normalising_box(record)),
            box_size=torch.tensor(self.box_size(record), dtype=torch.float64),
            index=index,
            split=self.split,
            image_path=str(record.image_path),
        )
        if self.occluder_masks:
            if cached_mask is not None:
                mask = np.array(cached_mask)
            else:
                mask = load_image(record.mask_path, "L", self.max_image_pixels)
                mask = warp_crop(mask, matrix, self.image_size, nearest=True)
            if patches is not None:  # an augmentation patch occludes as the generated occluders do
                mask = np.where(patches > 0, np.uint8(255), mask)
            sample["occluder_mask"] = torch.from_numpy(mask)
        return sample
