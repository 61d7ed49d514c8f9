"""How well an occlusion map P finds occluders, the face and the occluded landmarks, as binned AUROCs
(`BinnedAUROC`: memory that does not grow with the pixels, each face counted once under DDP), and how
P is read: up-sampled to the crop (`crop_probability`), at the points (`landmark_occlusion_scores`),
against the face region (`face_region`). The landmark metrics (NME, AUC, FR) are `metrics`'.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from ..crop import from_normalised
from .metrics import first_of_each_index


def crop_probability(occlusion_map: Tensor, size: int | tuple[int, int]) -> Tensor:
    """P (B, 1, h, w) up-sampled bilinearly (align_corners=False) to the crop: (B, S, S) float32."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    upsampled = F.interpolate(occlusion_map.detach().float(), size=size, mode="bilinear", align_corners=False)
    return upsampled[:, 0]


def landmark_occlusion_scores(occlusion_map: Tensor, landmarks: Tensor) -> Tensor:
    """Each point's occlusion score, 1 - P read bilinearly at the point: occlusion_map (B, 1, h, w),
    landmarks (B, L, 2) in the crop frame -> (B, L) float32.

    The crop frame's -1 and +1 are the crop's outer edges (`crop.to_normalised`), as in grid_sample with
    align_corners=False, so a point reads the same value as the map up-sampled to the crop
    (`crop_probability`) holds at that point; points outside the crop read the nearest border value."""
    grid = landmarks.detach().float()[:, :, None, :]  # (B, L, 1, 2): x, y
    probability = F.grid_sample(
        occlusion_map.detach().float(), grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    return 1.0 - probability[:, 0, :, 0]


def face_region(landmarks: Tensor, size: int) -> Tensor:
    """The face region of each crop: the pixels whose centre lies inside (or on) the convex hull of the
    face's landmarks. landmarks (B, L, 2) in the crop frame, size S -> (B, S, S) bool, [face, y, x].
    A face whose landmarks are collinear has an empty region."""
    if len(landmarks) == 0:
        return torch.zeros(0, size, size, dtype=torch.bool, device=landmarks.device)
    points = from_normalised(landmarks.detach().to(torch.float64), size)  # crop pixels, centres on integers
    hulls = []
    for face in points.cpu().numpy():
        order = cv2.convexHull(face.astype(np.float32), returnPoints=False)[:, 0]
        hull = face[order]
        x, y = hull[:, 0], hull[:, 1]
        area = 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))
        hulls.append((hull if area >= 0 else hull[::-1], abs(area) > 1e-9))
    count = max(len(hull) for hull, _ in hulls)
    # Counter-clockwise vertices (x right, y down: interior on the left of each edge), padded by repeating
    # the first vertex: the padding's edges have zero length and exclude nothing.
    vertices = np.stack([np.concatenate([h, np.repeat(h[:1], count - len(h), axis=0)]) for h, _ in hulls])
    vertices = torch.from_numpy(vertices).to(landmarks.device)  # (B, K, 2) float64
    start, end = vertices, vertices.roll(-1, dims=1)
    dx, dy = (end - start).unbind(-1)
    # Pixel centre (x, y) is inside edge k when a x + b y + c >= 0.
    a, b = -dy, dx
    c = dy * start[..., 0] - dx * start[..., 1]
    rows = torch.arange(size, device=landmarks.device, dtype=torch.float64)
    row_term = b[..., None] * rows + c[..., None]  # (B, K, S)
    bound = -row_term / a[..., None].where(a[..., None] != 0, torch.ones_like(a[..., None]))
    tolerance = 1e-6  # a centre on the hull counts despite rounding
    lower = bound.where(a[..., None] > 0, torch.full_like(bound, -torch.inf)).amax(dim=1)  # (B, S)
    upper = bound.where(a[..., None] < 0, torch.full_like(bound, torch.inf)).amin(dim=1)
    rows_in = ((row_term >= -tolerance) | (a[..., None] != 0)).all(dim=1)
    rows_in &= torch.tensor([proper for _, proper in hulls], device=landmarks.device)[:, None]
    columns = rows.view(1, 1, -1)
    inside = (columns >= lower[..., None] - tolerance) & (columns <= upper[..., None] + tolerance)
    return inside & rows_in[..., None]


class BinnedAUROC(Metric):
    """The AUROC of scores in [0, 1] against binary labels, binned so its memory does not grow with the
    number of pixels: scores are rounded down to the grid of `thresholds` values 0, 1/(thresholds - 1),
    ..., 1 (steps of 0.005 by default), and the AUROC is that of the rounded scores: the probability
    that a positive's score is above a negative's, ties counting half (the area under their ROC curve,
    from (0, 0) to (1, 1), exactly). Scores outside [0, 1] are clamped; a NaN score is below every other.

    NaN when the faces seen have no positive or no negative: the AUROC is not defined.

    Each face keeps its own counts with its dataset index (1.6 kB a face at the default 201 bins): a
    face seen twice (DistributedSampler pads the last batch under DDP) counts once, so N processes give
    exactly the single-process value.
    """

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(self, thresholds: int = 201, **kwargs) -> None:
        super().__init__(**kwargs)
        if thresholds < 2:
            raise ValueError(f"thresholds={thresholds}: at least 2")
        self.thresholds = thresholds
        self.add_state("counts", default=[], dist_reduce_fx="cat")
        self.add_state("indices", default=[], dist_reduce_fx="cat")

    def update(
        self, scores: Tensor, labels: Tensor, keep: Tensor | None = None, index: Tensor | None = None
    ) -> None:
        """scores, labels (bool: positive) and keep (which entries count, (B,): per face; None: all) of B
        faces, (B, ...) each; index (B,) the faces' dataset indices (None: numbered in arrival order)."""
        faces = scores.shape[0]
        scores = scores.detach().float().reshape(faces, -1).clamp(0.0, 1.0)
        grid = torch.linspace(0.0, 1.0, self.thresholds, device=scores.device)
        # Bin k: k grid values are <= the score (a NaN score is in bin 0, below every other).
        bins = torch.bucketize(scores, grid, right=True).masked_fill(scores.isnan(), 0)
        width = self.thresholds + 1
        face = torch.arange(faces, device=scores.device)[:, None]
        codes = bins + width * labels.reshape(faces, -1).long() + 2 * width * face
        if keep is not None:
            codes = codes[keep.to(codes.device, torch.bool).reshape(faces, -1).expand_as(codes)]
        counts = torch.bincount(codes.flatten(), minlength=2 * width * faces).view(faces, 2, width)
        self.counts.append(counts.to(torch.int32))
        if index is None:  # no dataset index: faces are numbered in arrival order
            index = torch.arange(faces) + sum(len(i) for i in self.indices)
        self.indices.append(index.to(device=scores.device, dtype=torch.int64))

    def counts_at_or_above(self) -> Tensor:
        """Entries per label (row 1: positive) in bin k or above, k = 0 .. thresholds + 1; each face once."""
        if isinstance(self.counts, list) and not self.counts:
            return torch.zeros(2, self.thresholds + 2, dtype=torch.int64)
        counts, indices = dim_zero_cat(self.counts), dim_zero_cat(self.indices)
        counts = counts[first_of_each_index(indices)].sum(dim=0, dtype=torch.int64)  # (2, bins): label 0, 1
        return torch.cat([counts.flip(1).cumsum(1).flip(1), counts.new_zeros(2, 1)], dim=1)

    def compute(self) -> Tensor:
        at_least = self.counts_at_or_above().double()  # k = 0 .. last: the ROC from (1, 1) to (0, 0)
        if not bool((at_least[:, 0] > 0).all()):  # no negative or no positive
            return torch.tensor(float("nan"))
        fpr, tpr = at_least / at_least[:, :1]
        return (((fpr[:-1] - fpr[1:]) * (tpr[:-1] + tpr[1:])).sum() / 2).float()


class OccluderAUROC(BinnedAUROC):
    """How well an occlusion map finds occluders: the binned AUROC of (1 - P), P being the network's
    probability map up-sampled bilinearly to the crop, against the occluder mask warped into the crop
    (non-zero: positive), over every pixel of the crop: background counts as not occluded."""

    def update(self, occlusion_map: Tensor, occluder_mask: Tensor, index: Tensor | None = None) -> None:
        """occlusion_map (B, 1, h, w) P in [0, 1]; occluder_mask (B, S, S), non-zero on occluders."""
        occlusion = 1.0 - crop_probability(occlusion_map, occluder_mask.shape[-2:])
        super().update(occlusion, occluder_mask > 0, None, index)


class FaceOccluderAUROC(BinnedAUROC):
    """Occluders within the face (`occluder_auroc_face`): the binned AUROC of (1 - P), P up-sampled
    bilinearly to the crop, against the occluder mask, over the pixels of the face region only (centre
    inside the convex hull of the ground-truth landmarks, `face_region`). NaN where no face pixel is
    occluded (an occluder only on the background) or every one is."""

    def update(
        self, occlusion_map: Tensor, occluder_mask: Tensor, landmarks: Tensor, index: Tensor | None = None
    ) -> None:
        """occlusion_map (B, 1, h, w); occluder_mask (B, S, S), non-zero on occluders; landmarks (B, L, 2)
        the ground truth in the crop frame."""
        size = occluder_mask.shape[-1]
        occlusion = 1.0 - crop_probability(occlusion_map, size)
        super().update(occlusion, occluder_mask > 0, face_region(landmarks, size), index)


class FaceAUROC(BinnedAUROC):
    """Face against background (`face_auroc`): the binned AUROC of P, up-sampled bilinearly to the
    crop, against the face region (`face_region`: positive inside the convex hull of the ground-truth
    landmarks), over every pixel of the crop. Above 0.5 when P is higher on the face than around it."""

    def update(
        self, occlusion_map: Tensor, landmarks: Tensor, size: int, index: Tensor | None = None
    ) -> None:
        """occlusion_map (B, 1, h, w); landmarks (B, L, 2) the ground truth in the crop frame; size S."""
        super().update(crop_probability(occlusion_map, size), face_region(landmarks, size), None, index)


class LandmarkOcclusionAUROC(BinnedAUROC):
    """Occluded landmarks (`landmark_occlusion_auroc`): the binned AUROC of each ground-truth point's
    occlusion score, 1 - P read bilinearly at the point (`landmark_occlusion_scores`), against the
    dataset's occlusion flags (not visible: positive), over the points of the faces with visibility.
    NaN where no such point is occluded or none is visible."""

    def update(
        self,
        occlusion_map: Tensor,
        landmarks: Tensor,
        visible: Tensor,
        has_visibility: Tensor | None = None,
        index: Tensor | None = None,
    ) -> None:
        """occlusion_map (B, 1, h, w); landmarks (B, L, 2) the ground truth in the crop frame; visible
        (B, L) bool; has_visibility (B,) bool, which faces' flags are annotated (None: all)."""
        scores = landmark_occlusion_scores(occlusion_map, landmarks)
        keep = None if has_visibility is None else torch.as_tensor(has_visibility)  # per face
        super().update(scores, ~visible.to(device=scores.device, dtype=torch.bool), keep, index)
