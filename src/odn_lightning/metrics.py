"""Landmark metrics as torchmetrics: NME per sample, its mean, and the CED-based AUC and failure rate."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from .data.schemes import LandmarkScheme, get_scheme

NORMALISATIONS = ("inter_ocular", "inter_pupil")


def normalising_distance(target: Tensor, scheme: LandmarkScheme, normalisation: str) -> Tensor:
    """Per-sample distance that divides the error: (B, L, 2) -> (B,)."""
    if normalisation == "inter_ocular":
        a, b = scheme.outer_eye_corners
        return (target[:, a] - target[:, b]).norm(dim=-1)
    if normalisation == "inter_pupil":
        left, right = (target[:, list(idx)].mean(dim=1) for idx in scheme.eye_centres)
        return (left - right).norm(dim=-1)
    raise ValueError(f"unknown NME normalisation '{normalisation}'; choose one of {NORMALISATIONS}")


def per_sample_nme(pred: Tensor, target: Tensor, scheme: LandmarkScheme, normalisation: str) -> Tensor:
    """Mean point-to-point error of each face divided by its normalising distance: (B,)."""
    error = (pred - target).norm(dim=-1).mean(dim=-1)
    return error / normalising_distance(target, scheme, normalisation)


def ced_curve(errors: Tensor, threshold: float, steps: int = 1000) -> tuple[Tensor, Tensor]:
    """Cumulative error distribution: fraction of faces with NME <= x for x in [0, threshold]."""
    xs = torch.linspace(0.0, threshold, steps, dtype=torch.float64)
    errors = errors.to(torch.float64).flatten()
    fractions = (errors[None, :] <= xs[:, None]).to(torch.float64).mean(dim=1)
    return xs, fractions


def auc_at(errors: Tensor, threshold: float) -> Tensor:
    """Area under the CED curve up to `threshold`, normalised to [0, 1]."""
    xs, fractions = ced_curve(errors, threshold)
    return torch.trapezoid(fractions, xs) / threshold


def failure_rate_at(errors: Tensor, threshold: float) -> Tensor:
    """Fraction of faces whose NME exceeds `threshold`."""
    return (errors.to(torch.float64) > threshold).to(torch.float64).mean()


class LandmarkNME(Metric):
    """Normalised mean error over a split; keeps every face's error for CED, AUC and failure rate."""

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
        if normalisation not in NORMALISATIONS:
            raise ValueError(f"unknown NME normalisation '{normalisation}'; choose one of {NORMALISATIONS}")
        self.scheme = get_scheme(scheme)
        self.normalisation = normalisation
        self.add_state("errors", default=[], dist_reduce_fx="cat")

    def update(self, pred: Tensor, target: Tensor) -> None:
        self.errors.append(
            per_sample_nme(pred.detach().float(), target.float(), self.scheme, self.normalisation)
        )

    def per_sample(self) -> Tensor:
        # A list of batches before synchronisation, one tensor after it.
        if isinstance(self.errors, list) and not self.errors:
            return torch.zeros(0)
        return dim_zero_cat(self.errors)

    def compute(self) -> dict[str, Tensor]:
        """`nme`, and `auc_08` / `fr_08` style keys (threshold x 100) for each threshold."""
        errors = self.per_sample()
        result = {"nme": errors.mean()}
        for threshold in self.thresholds:
            suffix = f"{round(threshold * 100):02d}"
            result[f"auc_{suffix}"] = auc_at(errors, threshold).float()
            result[f"fr_{suffix}"] = failure_rate_at(errors, threshold).float()
        return result
