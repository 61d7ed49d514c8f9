"""The typed contracts between the rooms (as lightning-pose's `data/datatypes.py`): what the dataset
returns for one face, what a loader hands the module, what a network returns, and what an
evaluation step hands the callbacks.

Shapes: L landmarks, S the crop side, B the batch size, n the network's feature resolution (S / 32).
"Crop frame": the crop's normalised [-1, 1] coordinates; "_px": 0-based pixels of the original image
(see `odn_lightning.crop`).
"""

from __future__ import annotations

from torch import Tensor
from torch.utils.data import default_collate
from typing_extensions import NotRequired, TypedDict


class Sample(TypedDict):
    """One face, as `LandmarkDataset.__getitem__` returns it."""

    image: Tensor  # (3, S, S) float32, ImageNet-normalised crop
    landmarks: Tensor  # (L, 2) float32, crop frame: the regression target
    visible: Tensor  # (L,) bool; all True where the dataset has no visibility
    has_visibility: bool  # whether `visible` comes from the dataset
    located: Tensor  # (L,) bool: points with a position (MERL-RAV's self-occluded have none); else all True
    matrix: Tensor  # (2, 3) float64, original pixels -> crop pixels
    target_px: Tensor  # (L, 2) float64, the annotation in original pixels (what errors are measured on)
    normalising_box: Tensor  # (4,) float64 x0 y0 x1 y1: the dataset's face box, else the landmarks' box
    box_size: Tensor  # () float64: the dataset's own box size (HRNet's AFLW CSV column), NaN where none
    index: int  # position in the split's dataset: identifies the face (DDP padding repeats faces)
    split: str
    image_path: str
    occluder_mask: NotRequired[Tensor]  # (S, S) uint8, non-zero on occluders (synthetic evaluation splits)


class Batch(TypedDict):
    """Samples collated by `collate_samples`: tensors stacked along a first dimension B, strings listed."""

    image: Tensor  # (B, 3, S, S)
    landmarks: Tensor  # (B, L, 2)
    visible: Tensor  # (B, L)
    has_visibility: Tensor  # (B,) bool
    located: NotRequired[Tensor]  # (B, L) bool: present only where some point of the batch has no position
    matrix: Tensor  # (B, 2, 3)
    target_px: Tensor  # (B, L, 2)
    normalising_box: Tensor  # (B, 4)
    box_size: Tensor  # (B,)
    index: Tensor  # (B,) int64
    split: list[str]  # every face of a batch comes from one split
    image_path: list[str]
    occluder_mask: NotRequired[Tensor]  # (B, S, S)


class NetworkOutput(TypedDict):
    """What a landmark network's forward returns."""

    landmarks: Tensor  # (B, L, 2), crop frame
    occlusion_map: NotRequired[Tensor]  # (B, 1, n, n), P in [0, 1]: networks with the distillation module
    occlusion_logit: NotRequired[
        Tensor
    ]  # (B, L), each point's occlusion logit: networks with the visibility head


class EvalStepOutput(NetworkOutput):
    """What the module's validation and test steps return to the callbacks (reports, pictures)."""

    predicted_px: Tensor  # (B, L, 2) float64, predictions in original pixels
    nme: Tensor  # (B,) float64, each face's NME
    normalising_distance: Tensor  # (B,) float64, what divided each face's mean error
    # (B, L) float32, each point's raw occlusion score: the visibility head's sigmoid, else 1 - P read
    # bilinearly at the ground-truth point (`evaluation.occlusion_output.raw_scores`)
    landmark_occlusion: NotRequired[Tensor]
    # (B, L) float32, the calibrated probability that each point is occluded (checkpoints with a calibration)
    occlusion_probability: NotRequired[Tensor]


def collate_samples(samples: list[Sample | None]) -> Batch | None:
    """The loaders' collate function: PyTorch's default collation, typed. None samples (faces left
        out under data.on_bad_sample=skip) are dropped; a batch of only such faces is None (Lightning
        skips a None training batch; the evaluation loaders leave it out). `located` is dropped from a batch
    whose every point has a position."""
    kept = [sample for sample in samples if sample is not None]
    if not kept:
        return None
    batch = default_collate(kept)
    # `located` only where some point has no position: decided here, on the host, so that the training
    # step never reads a device tensor to find out (and a batch of ordinary faces is what it always was).
    if "located" in batch and bool(batch["located"].all()):
        del batch["located"]
    return batch
