"""Calibrated per-landmark occlusion: a monotone map from the network's raw occlusion score at a point
to the probability that the point is occluded, fitted on the validation split's flags.

Nothing in the paper's objective fixes the sign of the occlusion map P: trained without supervision, P
may come out higher at occluded points than at visible ones (`experiments/mechanism/`: per-landmark
AUROC of 1 - P 0.22, 0.60, 0.22 over three seeds). A raw 1 - P shown as occlusion is then inverted.
Platt scaling (Platt 1999; scikit-learn's `CalibratedClassifierCV(method="sigmoid")`) learns the
direction and the scale from data: probability = sigmoid(slope * logit(s) + intercept), s the raw
score 1 - P at the point; a negative slope is an inverted P read the right way round.

A calibration is stored as one plain float64 tensor (`FIELDS`, NaN where undefined): in every
checkpoint (`LandmarkModule.occlusion_calibration`), with the validation figures the calibrated
probability reached there and its decision threshold, and in an exported model's metadata. A network
without flags to calibrate on has none (`calibrated` 0): its raw map is not presented as occlusion.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from scipy.stats import rankdata
from torch import Tensor

# The tensor's fields, in order.
FIELDS = (
    "calibrated",  # 1: fitted; 0: no calibration (no flags, or no occluded or no visible point)
    "slope",
    "intercept",
    "threshold",  # decision threshold on the calibrated probability
    "auroc",  # validation figures of the calibrated probability
    "ap",
    "recall_at_p80",
    "precision",  # at the threshold
    "recall",
    "points",  # validation points it was fitted on
    "occluded_points",
    "epoch",  # the training epoch whose validation fitted it
)
# The map in words, for exported metadata and landmarks.json, with the score of the network's output.
PROBABILITY_FORMULA = (
    "probability occluded = 1 / (1 + exp(-(slope * logit(s) + intercept))), s = {score} clamped to "
    "[1e-6, 1 - 1e-6], logit(s) = log(s / (1 - s)); occluded when probability >= threshold"
)
SCORE_OF_MAP = "1 - P read at the point"
SCORE_OF_HEAD = "sigmoid(occlusion_logit), the visibility head's score"
# A point is called occluded when its calibrated probability reaches this: more likely than not.
DECISION_THRESHOLD = 0.5
# Raw scores are clamped into [EPS, 1 - EPS] before the logit: P is a sigmoid, so 0 and 1 are limits.
EPS = 1e-6
# Newton iterations of the two-parameter logistic fit, and its ridge (keeps a perfectly separated
# validation split finite: the slope then grows until the ridge balances it).
ITERATIONS = 100
RIDGE = 1e-4


@dataclass(frozen=True)
class OcclusionCalibration:
    """A fitted calibration and the validation figures of its probability (NaN where undefined)."""

    slope: float
    intercept: float
    threshold: float
    auroc: float
    ap: float
    recall_at_p80: float
    precision: float
    recall: float
    points: int
    occluded_points: int
    epoch: int = -1

    def probability(self, scores: Tensor) -> Tensor:
        """The probability that each point is occluded, from its raw score (1 - P at the point, or the
        visibility head's sigmoid; any shape)."""
        return calibrated_probability(scores, self.slope, self.intercept)

    def to_tensor(self) -> Tensor:
        values = {"calibrated": 1.0, **asdict(self)}
        return torch.tensor([float(values[name]) for name in FIELDS], dtype=torch.float64)

    @classmethod
    def from_tensor(cls, tensor: Tensor) -> OcclusionCalibration | None:
        """The calibration a stored tensor holds, or None where it holds none."""
        values = dict(zip(FIELDS, (float(v) for v in tensor.detach().cpu().double()), strict=True))
        if values.pop("calibrated") != 1.0:
            return None
        for name in ("points", "occluded_points", "epoch"):
            values[name] = int(values[name])
        return cls(**values)

    def summary(self, score: str = SCORE_OF_MAP) -> dict[str, float | int | str | None]:
        """For JSON (landmarks.json, exported metadata): NaN as None, with the formula in words, `score`
        naming the raw score it maps (`SCORE_OF_MAP`, `SCORE_OF_HEAD`)."""
        values = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}
        return {**values, "probability": PROBABILITY_FORMULA.format(score=score)}

    @classmethod
    def from_summary(cls, summary: Mapping[str, Any] | None) -> OcclusionCalibration | None:
        """The calibration of a `summary` (an exported model's metadata); None for None. A summary without
        slope, intercept and threshold is refused in one line (ValueError)."""
        if summary is None:
            return None
        try:
            values = {f.name: summary[f.name] for f in fields(cls)}
        except (KeyError, TypeError) as err:
            raise ValueError(f"occlusion_calibration lacks {err}; re-export the model") from None
        floats = {k: math.nan if v is None else float(v) for k, v in values.items()}
        if not all(math.isfinite(floats[k]) for k in ("slope", "intercept", "threshold")):
            raise ValueError(
                "occlusion_calibration needs finite slope, intercept and threshold; re-export the model"
            )
        return cls(
            **{k: int(v) if k in ("points", "occluded_points", "epoch") else v for k, v in floats.items()}
        )


def uncalibrated() -> Tensor:
    """The stored tensor of a network without a calibration."""
    empty = torch.full((len(FIELDS),), float("nan"), dtype=torch.float64)
    empty[0] = 0.0
    return empty


def calibrated_probability(scores: Tensor, slope: float, intercept: float) -> Tensor:
    """sigmoid(slope * logit(clamp(s)) + intercept), in the scores' dtype."""
    s = scores.double().clamp(EPS, 1.0 - EPS)
    return torch.sigmoid(slope * torch.logit(s) + intercept).to(scores.dtype)


def fit_logistic(x: Tensor, labels: Tensor) -> tuple[float, float]:
    """Slope and intercept of the logistic regression of labels (bool) on x, by Newton's method in
    float64 with a small ridge on the slope; deterministic."""
    x, y = x.double().flatten(), labels.double().flatten()
    rate = y.mean().clamp(1e-9, 1 - 1e-9)
    theta = torch.tensor([0.0, float(torch.log(rate / (1 - rate)))], dtype=torch.float64)
    design = torch.stack([x, torch.ones_like(x)], dim=1)
    ridge = torch.diag(torch.tensor([RIDGE * len(x), 0.0], dtype=torch.float64))
    for _ in range(ITERATIONS):
        p = torch.sigmoid(design @ theta)
        gradient = design.T @ (p - y) + ridge @ theta
        hessian = (
            design.T @ (design * (p * (1 - p))[:, None]) + ridge + 1e-12 * torch.eye(2, dtype=torch.float64)
        )
        step = torch.linalg.solve(hessian, gradient)
        theta = theta - step
        if float(step.abs().max()) < 1e-10:
            break
    return float(theta[0]), float(theta[1])


def exact_scores(probability: Tensor, occluded: Tensor, threshold: float) -> dict[str, float]:
    """AUROC (ties half), AP (scikit-learn's `average_precision_score`), recall at 80% precision, and
    precision and recall at `threshold`, of the occluded class, exactly (no binning: calibrated
    probabilities may span a narrow range). Flat tensors; NaN where not defined."""
    scores, labels = probability.detach().cpu().double().flatten(), occluded.detach().cpu().bool().flatten()
    positives, negatives = int(labels.sum()), int((~labels).sum())
    ranks = torch.from_numpy(rankdata(scores.numpy()))  # 1-based, ties sharing their mean rank
    auroc = (float(ranks[labels].sum()) - positives * (positives + 1) / 2) / (positives * negatives)
    order = torch.argsort(scores, descending=True, stable=True)
    sorted_scores, sorted_labels = scores[order], labels[order].double()
    last_of_value = torch.ones_like(sorted_scores, dtype=torch.bool)  # cut after each distinct value
    last_of_value[:-1] = sorted_scores[1:] != sorted_scores[:-1]
    true_positives = sorted_labels.cumsum(0)[last_of_value]
    predicted = torch.arange(1, len(scores) + 1, dtype=torch.float64)[last_of_value]
    precision, recall = true_positives / predicted, true_positives / positives
    gained = torch.diff(recall, prepend=recall.new_zeros(1))
    reached = precision >= 0.8 - 1e-12
    called = scores >= threshold
    found = int((called & labels).sum())
    return {
        "auroc": auroc,
        "ap": float((gained * precision).sum()),
        "recall_at_p80": float(recall[reached].max()) if bool(reached.any()) else 0.0,
        "precision": found / int(called.sum()) if bool(called.any()) else math.nan,
        "recall": found / positives,
    }


def calibrate(scores: Tensor, occluded: Tensor, epoch: int = -1) -> OcclusionCalibration | None:
    """Fit a calibration on raw scores at points and their flags (same shape), with the validation
    figures its probability reaches on them; None without an occluded and a visible point (there is
    then nothing to calibrate on). Its validation AUROC is never below 0.5: where the fitted direction
    ranks worse than chance, the calibration is the constant base rate (AUROC 0.5, nothing called)."""
    scores, occluded = scores.detach().double().flatten(), occluded.detach().bool().flatten()
    positives = int(occluded.sum())
    if positives == 0 or positives == len(occluded):
        return None
    slope, intercept = fit_logistic(torch.logit(scores.clamp(EPS, 1.0 - EPS)), occluded)
    figures = exact_scores(calibrated_probability(scores, slope, intercept), occluded, DECISION_THRESHOLD)
    if figures["auroc"] < 0.5:
        # The likelihood's direction ranks the validation points worse than chance (a few extreme
        # scores outweigh the rest): no monotone reading is trusted; every point gets the base rate.
        rate = positives / len(occluded)
        slope, intercept = 0.0, math.log(rate / (1.0 - rate))
        figures = exact_scores(calibrated_probability(scores, slope, intercept), occluded, DECISION_THRESHOLD)
    return OcclusionCalibration(
        slope=slope,
        intercept=intercept,
        threshold=DECISION_THRESHOLD,
        auroc=figures["auroc"],
        ap=figures["ap"],
        recall_at_p80=figures["recall_at_p80"],
        precision=figures["precision"],
        recall=figures["recall"],
        points=len(occluded),
        occluded_points=positives,
        epoch=epoch,
    )
