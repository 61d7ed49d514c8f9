"""Landmark metrics as torchmetrics: NME per face (for CED curves), its mean, AUC and failure rate at
thresholds, NME over occluded and visible points, and how well an occlusion map finds occluders.

Errors are measured in original image pixels, as the benchmarks define them; a face's NME is its mean
point-to-point error divided by a normalising distance (`NORMALISATIONS`).

A face whose NME is not finite (a NaN or infinite prediction) is a failure: CED, AUC and failure rate
count its NME as +inf, and the split's mean NME is NaN rather than a mean over the other faces.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.classification import BinaryAUROC
from torchmetrics.utilities import dim_zero_cat

from .schemes import LandmarkScheme, get_scheme

# inter_ocular: outer eye corners (300W, COFW, WFLW); inter_pupil: eye centres; box_width: face box
# width (AFLW in the ODN paper); box_size: sqrt(width * height) of the face box (AFLW elsewhere).
NORMALISATIONS = ("inter_ocular", "inter_pupil", "box_width", "box_size")


def check_normalisation(normalisation: str) -> str:
    if normalisation not in NORMALISATIONS:
        raise ValueError(
            f"unknown NME normalisation '{normalisation}' (data.nme_normalisation or model.nme_normalisation); "
            f"choose one of {NORMALISATIONS}"
        )
    return normalisation


def normalising_distance(
    target: Tensor, scheme: LandmarkScheme, normalisation: str, normalising_box: Tensor | None = None
) -> Tensor:
    """Per-face distance that divides the error: target (B, L, 2), normalising_box (B, 4) x0 y0 x1 y1
    (the dataset's face box, else the landmarks' box; used by box_width and box_size) -> (B,)."""
    box = normalising_box
    check_normalisation(normalisation)
    if normalisation == "inter_ocular":
        a, b = scheme.outer_eye_corners
        return (target[:, a] - target[:, b]).norm(dim=-1)
    if normalisation == "inter_pupil":
        left, right = (target[:, list(idx)].mean(dim=1) for idx in scheme.eye_centres)
        return (left - right).norm(dim=-1)
    if box is None:
        raise ValueError(f"NME normalisation '{normalisation}' needs each face's box; none was given")
    width, height = box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]
    return width if normalisation == "box_width" else (width * height).sqrt()


def point_errors(pred: Tensor, target: Tensor, normalising_distance: Tensor) -> Tensor:
    """Each point's error divided by its face's normalising distance: (B, L)."""
    return (pred - target).norm(dim=-1) / normalising_distance[:, None]


def per_sample_nme(
    pred: Tensor,
    target: Tensor,
    scheme: LandmarkScheme,
    normalisation: str,
    normalising_box: Tensor | None = None,
) -> Tensor:
    """Mean point-to-point error of each face divided by its normalising distance: (B,)."""
    distance = normalising_distance(target, scheme, normalisation, normalising_box)
    return point_errors(pred, target, distance).mean(dim=-1)


def failures_as_inf(errors: Tensor) -> Tensor:
    """float64 errors, flat, with every non-finite one (NaN included) as +inf: a failure at any threshold."""
    errors = errors.to(torch.float64).flatten()
    return errors.masked_fill(~torch.isfinite(errors), float("inf"))


def ced_curve(errors: Tensor, threshold: float, steps: int = 1000) -> tuple[Tensor, Tensor]:
    """Cumulative error distribution: fraction of faces with NME <= x for x in [0, threshold]; a
    non-finite NME is never reached."""
    xs = torch.linspace(0.0, threshold, steps, dtype=torch.float64)
    errors = failures_as_inf(errors)
    fractions = (errors[None, :] <= xs[:, None]).to(torch.float64).mean(dim=1)
    return xs, fractions


def auc_at(errors: Tensor, threshold: float) -> Tensor:
    """Area under the CED curve up to `threshold`, divided by `threshold` (in [0, 1]).

    Exact, not sampled: the CED is a step function, and the area it leaves up to T is the mean over
    faces of max(T - e, 0). A face with a non-finite NME adds 0."""
    errors = failures_as_inf(errors)
    if errors.numel() == 0:
        return torch.tensor(float("nan"), dtype=torch.float64)
    return (threshold - errors).clamp(min=0.0).mean() / threshold


def failure_rate_at(errors: Tensor, threshold: float) -> Tensor:
    """Fraction of faces whose NME exceeds `threshold`; a non-finite NME (NaN too) is a failure."""
    return (failures_as_inf(errors) > threshold).to(torch.float64).mean()


def threshold_suffix(threshold: float) -> str:
    """0.08 -> "08", 0.1 -> "10": the suffix of `auc_08`, `fr_10` style keys."""
    return f"{round(threshold * 100):02d}"


class LandmarkNME(Metric):
    """NME over a split, in the benchmark's normalisation; keeps every face's error for CED, AUC and
    failure rate, and, where visibility is given, the NME over occluded and over visible points.

    Faces carry their dataset index: a face seen twice (DistributedSampler pads the last batch under
    DDP) counts once, so N processes give exactly the single-process value.

    A face whose prediction is not finite (NaN or inf anywhere) fails at every threshold and adds 0 to
    the AUC, and makes the split's `nme` NaN: a mean over it has no finite value.
    """

    full_state_update = False
    higher_is_better = False

    def __init__(
        self,
        scheme: str = "ibug68",
        normalisation: str = "inter_ocular",
        thresholds: tuple[float, ...] = (0.08, 0.10),
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.thresholds = tuple(thresholds)
        self.scheme = get_scheme(scheme)
        self.normalisation = check_normalisation(normalisation)
        for name in ("errors", "indices", "occluded_sum", "occluded_count", "visible_sum", "visible_count"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(
        self,
        pred: Tensor,
        target: Tensor,
        normalising_box: Tensor | None = None,
        visible: Tensor | None = None,
        index: Tensor | None = None,
    ) -> None:
        """Add a batch (pixels: pred, target (B, L, 2); normalising_box (B, 4))."""
        errors, _ = self._point_errors(pred.detach(), target, normalising_box)
        nme = errors.mean(dim=-1)
        self.errors.append(nme)
        if index is None:  # no dataset index: faces are numbered in arrival order
            index = torch.arange(len(nme)) + len(self._state("indices"))
        self.indices.append(index.to(device=nme.device, dtype=torch.int64))
        if visible is not None:
            visible = visible.to(torch.bool)
            self.occluded_sum.append((errors * ~visible).sum(dim=-1))
            self.occluded_count.append((~visible).sum(dim=-1).to(torch.float64))
            self.visible_sum.append((errors * visible).sum(dim=-1))
            self.visible_count.append(visible.sum(dim=-1).to(torch.float64))

    def _point_errors(
        self, pred: Tensor, target: Tensor, normalising_box: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """Normalised point errors (B, L) and the normalising distances (B,), in float64."""
        target = target.to(torch.float64)
        box = None if normalising_box is None else normalising_box.to(torch.float64)
        distance = normalising_distance(target, self.scheme, self.normalisation, box)
        return point_errors(pred.to(torch.float64), target, distance), distance

    def per_face(
        self, pred: Tensor, target: Tensor, normalising_box: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Each face's NME, as `update` counts it, and its normalising distance: (B,), (B,)."""
        errors, distance = self._point_errors(pred, target, normalising_box)
        return errors.mean(dim=-1), distance

    def _state(self, name: str) -> Tensor:
        """A list state as one tensor (a list of batches before synchronisation, a tensor after)."""
        state = getattr(self, name)
        if isinstance(state, list) and not state:
            return torch.zeros(0, dtype=torch.int64 if name == "indices" else torch.float64)
        return dim_zero_cat(state)

    def _first_of_each_index(self) -> Tensor:
        """Positions of the first occurrence of each dataset index, in index order."""
        indices = self._state("indices")
        order = torch.argsort(indices, stable=True)
        first = torch.ones_like(order, dtype=torch.bool)
        first[1:] = indices[order][1:] != indices[order][:-1]
        return order[first]

    def per_sample(self) -> tuple[Tensor, Tensor]:
        """(dataset indices, NME) of every face seen once, ordered by index."""
        keep = self._first_of_each_index()
        return self._state("indices")[keep], self._state("errors")[keep]

    def compute(self) -> dict[str, Tensor]:
        """`nme`, `auc_08` / `fr_08` style keys (threshold x 100), and `nme_occluded` /
        `nme_visible` (mean error over those points) when visibility was given and such points exist.
        `nme` is NaN when any face's NME is not finite; such a face is a failure in `fr_*` and adds 0
        to `auc_*`."""
        keep = self._first_of_each_index()
        errors = self._state("errors")[keep]
        finite = bool(torch.isfinite(errors).all())
        result = {"nme": errors.mean() if finite else errors.new_tensor(float("nan"))}
        for threshold in self.thresholds:
            suffix = threshold_suffix(threshold)
            result[f"auc_{suffix}"] = auc_at(errors, threshold)
            result[f"fr_{suffix}"] = failure_rate_at(errors, threshold)
        # Only when every face came with visibility: the sums then line up with the faces. A split
        # without occluded (or visible) points has no such key: not measured, rather than NaN.
        faces = len(self._state("errors"))
        if faces and len(self._state("visible_count")) == faces:
            for kind in ("occluded", "visible"):
                total = self._state(f"{kind}_sum")[keep].sum()
                count = self._state(f"{kind}_count")[keep].sum()
                if count > 0:
                    result[f"nme_{kind}"] = total / count
        return {name: value.float() for name, value in result.items()}


class OccluderAUROC(BinaryAUROC):
    """How well an occlusion map finds occluders: the AUROC of (1 - P), P being the network's
    probability map up-sampled to the crop, against the occluder mask warped into the crop, over every
    pixel of every face. Binned (`thresholds`), so its memory does not grow with the split."""

    def __init__(self, thresholds: int = 201, **kwargs) -> None:
        super().__init__(thresholds=thresholds, **kwargs)

    def update(self, occlusion_map: Tensor, occluder_mask: Tensor) -> None:  # type: ignore[override]
        """occlusion_map (B, 1, h, w) P in [0, 1]; occluder_mask (B, S, S), non-zero on occluders."""
        size = occluder_mask.shape[-2:]
        probability = torch.nn.functional.interpolate(
            occlusion_map.detach().float(), size=size, mode="bilinear", align_corners=False
        )[:, 0]
        super().update((1.0 - probability).clamp(0.0, 1.0).flatten(), (occluder_mask > 0).flatten().long())
