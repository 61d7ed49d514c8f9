"""Landmark metrics as torchmetrics: NME per face (for CED curves), its mean, AUC and failure rate at
thresholds, NME over occluded and visible points (how well an occlusion map P finds occluders, the
face and occluded landmarks: `occlusion_metrics`).

Errors are measured in original image pixels, as the benchmarks define them; a face's NME is its mean
point-to-point error divided by a normalising distance (`NORMALISATIONS`).

A face whose NME is not finite (a NaN or infinite prediction) is a failure: CED, AUC and failure rate
count its NME as +inf, and the split's mean NME is NaN rather than a mean over the other faces.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from ..schemes import LandmarkScheme, SchemeSpec, get_scheme

# What divides a face's mean error, each the convention of a named reference:
# - inter_ocular: distance of the outer eye corners (300W, COFW, WFLW as HRNet-Facial's `compute_nme`,
#   mmpose and the comparison tables from LAB on report them);
# - inter_pupil: distance of the eye centres, each the mean of its eye's points (COFW-68's own
#   evaluator, cofw68-benchmark `Main.m`);
# - box_width: the face box's width (AFLW in the ODN paper);
# - box_size: the dataset's own per-face box size, HRNet-Facial's AFLW CSV column `box_size` (HRNet
#   `compute_nme` divides 19-point errors by it); datasets without that column cannot use it;
# - box_max_side: max(width, height) of the face box (mmpose's AFLW `bbox_size`);
# - box_sqrt_area: sqrt(width * height) of the face box (SAN, Dong et al. CVPR 2018).
# The box ones agree only on square boxes; `make data-check` reports how square a dataset's are.
NORMALISATIONS = ("inter_ocular", "inter_pupil", "box_width", "box_size", "box_max_side", "box_sqrt_area")
# In a per-split mapping of normalisations, the entry for splits it does not name.
DEFAULT_SPLIT = "default"


def check_normalisation(normalisation: str) -> str:
    if normalisation not in NORMALISATIONS:
        raise ValueError(
            f"unknown NME normalisation '{normalisation}' (data.nme_normalisation or model.nme_normalisation); "
            f"choose one of {NORMALISATIONS}"
        )
    return normalisation


def normalisation_for(setting: str | Mapping[str, str], split: str) -> str:
    """The normalisation of `split` under a setting that is one name for every split, or a mapping
    from split names (and `default`, for the others) to names: a run that tests on 300W and on
    COFW-68 divides each by its own benchmark's distance."""
    if isinstance(setting, str):
        return check_normalisation(setting)
    name = setting.get(split, setting.get(DEFAULT_SPLIT))
    if name is None:
        raise ValueError(
            f"nme_normalisation names no normalisation for split '{split}' (it has {', '.join(setting)}); "
            f"add `{split}: inter_ocular` or a `{DEFAULT_SPLIT}` entry"
        )
    return check_normalisation(name)


def describe_normalisation(setting: str | Mapping[str, str]) -> str:
    """A normalisation setting in one line, for reports: "inter_ocular", or
    "cofw68: inter_pupil, default: inter_ocular"."""
    if isinstance(setting, str):
        return setting
    return ", ".join(f"{split}: {name}" for split, name in setting.items())


def normalising_distance(
    target: Tensor,
    scheme: LandmarkScheme,
    normalisation: str,
    normalising_box: Tensor | None = None,
    box_size: Tensor | None = None,
) -> Tensor:
    """Per-face distance that divides the error: target (B, L, 2); normalising_box (B, 4) x0 y0 x1 y1
    (the dataset's face box, else the landmarks' box; used by the box_* normalisations); box_size (B,)
    the dataset's own box size (NaN where it has none; used by box_size) -> (B,)."""
    check_normalisation(normalisation)
    if normalisation == "inter_ocular":
        a, b = scheme.outer_eye_corners
        return (target[:, a] - target[:, b]).norm(dim=-1)
    if normalisation == "inter_pupil":
        left, right = (target[:, list(idx)].mean(dim=1) for idx in scheme.eye_centres)
        return (left - right).norm(dim=-1)
    if normalisation == "box_size":
        if box_size is None or not bool(torch.isfinite(box_size).all()):
            raise ValueError(
                "NME normalisation 'box_size' divides by the dataset's own box_size (HRNet-Facial's AFLW "
                "CSV column), which these faces lack; use box_width, box_max_side or box_sqrt_area"
            )
        return box_size
    if normalising_box is None:
        raise ValueError(f"NME normalisation '{normalisation}' needs each face's box; none was given")
    width = normalising_box[:, 2] - normalising_box[:, 0]
    height = normalising_box[:, 3] - normalising_box[:, 1]
    if normalisation == "box_width":
        return width
    if normalisation == "box_max_side":
        return torch.maximum(width, height)
    return (width * height).sqrt()


def point_errors(pred: Tensor, target: Tensor, normalising_distance: Tensor) -> Tensor:
    """Each point's error divided by its face's normalising distance: (B, L)."""
    return (pred - target).norm(dim=-1) / normalising_distance[:, None]


def per_sample_nme(
    pred: Tensor,
    target: Tensor,
    scheme: LandmarkScheme,
    normalisation: str,
    normalising_box: Tensor | None = None,
    box_size: Tensor | None = None,
) -> Tensor:
    """Mean point-to-point error of each face divided by its normalising distance: (B,)."""
    distance = normalising_distance(target, scheme, normalisation, normalising_box, box_size)
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


def first_of_each_index(indices: Tensor) -> Tensor:
    """Positions of the first occurrence of each dataset index, in index order."""
    order = torch.argsort(indices, stable=True)
    first = torch.ones_like(order, dtype=torch.bool)
    first[1:] = indices[order][1:] != indices[order][:-1]
    return order[first]


def threshold_suffix(threshold: float) -> str:
    """0.08 -> "08", 0.1 -> "10": the suffix of `auc_08`, `fr_10` style keys."""
    return f"{round(threshold * 100):02d}"


def located_mean(errors: Tensor, located: Tensor | None) -> Tensor:
    """Each face's mean of its point errors (B, L) over the points with a position (located (B, L) bool;
    None or all: every point, the plain mean); NaN for a face with none."""
    if located is None or bool(located.all()):
        return errors.mean(dim=-1)
    located = located.to(errors.device, torch.bool)
    return (errors * located).sum(dim=-1) / located.sum(dim=-1)


class LandmarkNME(Metric):
    """NME over a split, in the benchmark's normalisation; keeps every face's error for CED, AUC and
    failure rate, and, where visibility is given, the NME over occluded and over visible points.

    `nme_visible` / `nme_occluded` average per face first, as the COFW-68 benchmark does
    (github.com/golnazghiasi/cofw68-benchmark, LandmarkLocalizationEval.m with vis_subset): each face's
    mean normalised error over its visible (occluded) points, then the mean over the faces that have
    such points. `nme_visible_pooled` / `nme_occluded_pooled` pool the points of the split instead
    (their error sum over their count), so a face with many such points weighs more.

    Faces carry their dataset index: a face seen twice (DistributedSampler pads the last batch under
    DDP) counts once, so N processes give exactly the single-process value.

    A face whose prediction is not finite (NaN or inf anywhere) fails at every threshold and adds 0 to
    the AUC, and makes the split's `nme` NaN: a mean over it has no finite value.
    """

    full_state_update = False
    higher_is_better = False

    def __init__(
        self,
        scheme: SchemeSpec = "ibug68",
        normalisation: str = "inter_ocular",
        thresholds: tuple[float, ...] = (0.08, 0.10),
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.thresholds = tuple(thresholds)
        self.scheme = get_scheme(scheme)
        self.normalisation = check_normalisation(normalisation)
        states = ("errors", "indices", "occluded_sum", "occluded_count", "visible_sum", "visible_count")
        for name in (*states, "unlocated"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(
        self,
        pred: Tensor,
        target: Tensor,
        normalising_box: Tensor | None = None,
        visible: Tensor | None = None,
        index: Tensor | None = None,
        box_size: Tensor | None = None,
        located: Tensor | None = None,
    ) -> None:
        """Add a batch (pixels: pred, target (B, L, 2); normalising_box (B, 4); box_size (B,); located
        (B, L) bool, the points with a position, None: all; the others count nowhere)."""
        errors, _ = self._point_errors(pred.detach(), target, normalising_box, box_size)
        nme = located_mean(errors, located)
        self.errors.append(nme)
        unlocated = 0 if located is None else (~located.to(nme.device, torch.bool)).sum(dim=-1)
        self.unlocated.append(torch.zeros_like(nme) + unlocated)
        if index is None:  # no dataset index: faces are numbered in arrival order
            index = torch.arange(len(nme)) + len(self._state("indices"))
        self.indices.append(index.to(device=nme.device, dtype=torch.int64))
        if visible is not None:
            visible = visible.to(torch.bool)
            counted = torch.ones_like(visible) if located is None else located.to(visible.device, torch.bool)
            occluded, visible = ~visible & counted, visible & counted
            self.occluded_sum.append((errors * occluded).sum(dim=-1))
            self.occluded_count.append(occluded.sum(dim=-1).to(torch.float64))
            self.visible_sum.append((errors * visible).sum(dim=-1))
            self.visible_count.append(visible.sum(dim=-1).to(torch.float64))

    def _point_errors(
        self, pred: Tensor, target: Tensor, normalising_box: Tensor | None, box_size: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Normalised point errors (B, L) and the normalising distances (B,), in float64."""
        target = target.to(torch.float64)
        box = None if normalising_box is None else normalising_box.to(torch.float64)
        size = None if box_size is None else box_size.to(torch.float64)
        distance = normalising_distance(target, self.scheme, self.normalisation, box, size)
        return point_errors(pred.to(torch.float64), target, distance), distance

    def per_face(
        self,
        pred: Tensor,
        target: Tensor,
        normalising_box: Tensor | None = None,
        box_size: Tensor | None = None,
        located: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Each face's NME, as `update` counts it, and its normalising distance: (B,), (B,)."""
        errors, distance = self._point_errors(pred, target, normalising_box, box_size)
        return located_mean(errors, located), distance

    def _state(self, name: str) -> Tensor:
        """A list state as one tensor (a list of batches before synchronisation, a tensor after)."""
        state = getattr(self, name)
        if isinstance(state, list) and not state:
            return torch.zeros(0, dtype=torch.int64 if name == "indices" else torch.float64)
        return dim_zero_cat(state)

    def _first_of_each_index(self) -> Tensor:
        return first_of_each_index(self._state("indices"))

    def per_sample(self) -> tuple[Tensor, Tensor]:
        """(dataset indices, NME) of every face seen once, ordered by index."""
        keep = self._first_of_each_index()
        return self._state("indices")[keep], self._state("errors")[keep]

    def compute(self) -> dict[str, Tensor]:
        """`nme`, `auc_08` / `fr_08` style keys (threshold x 100), and, when visibility was given and
        such points exist, `nme_occluded` / `nme_visible` (the mean over faces of each face's mean error
        over those points) and `nme_occluded_pooled` / `nme_visible_pooled` (the mean error over all
        those points of the split), and `points_without_position`, where some points had none (they
        count in no NME). `nme` is NaN when any face's NME is not finite; such a face is a failure in
        `fr_*` and adds 0 to `auc_*`."""
        keep = self._first_of_each_index()
        errors = self._state("errors")[keep]
        finite = bool(torch.isfinite(errors).all())
        result = {"nme": errors.mean() if finite else errors.new_tensor(float("nan"))}
        for threshold in self.thresholds:
            suffix = threshold_suffix(threshold)
            result[f"auc_{suffix}"] = auc_at(errors, threshold)
            result[f"fr_{suffix}"] = failure_rate_at(errors, threshold)
        # Points without a position (MERL-RAV's self-occluded), left out of every NME above: counted.
        unlocated = self._state("unlocated")
        if len(unlocated) == len(self._state("errors")) and bool((unlocated[keep] > 0).any()):
            result["points_without_position"] = unlocated[keep].sum()
        # Only when every face came with visibility: the sums then line up with the faces. A split
        # without occluded (or visible) points has no such key: not measured, rather than NaN.
        faces = len(self._state("errors"))
        if faces and len(self._state("visible_count")) == faces:
            for kind in ("occluded", "visible"):
                sums = self._state(f"{kind}_sum")[keep]
                counts = self._state(f"{kind}_count")[keep]
                with_points = counts > 0  # a face without such points has no mean to average
                if with_points.any():
                    result[f"nme_{kind}"] = (sums[with_points] / counts[with_points]).mean()
                    result[f"nme_{kind}_pooled"] = sums.sum() / counts.sum()
        return {name: value.float() for name, value in result.items()}
