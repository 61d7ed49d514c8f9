"""How well per-point occlusion scores find the occluded landmarks, in the numbers the occlusion
literature reports for the occluded class (positive: a point annotated occluded), pooled over every
point of a split's faces with visibility flags:

- precision and recall at a decision threshold: a point is predicted occluded when its score is >= the
  threshold (the COFW-68 benchmark's precision and recall pool all points of all faces likewise);
- recall at 80% precision (RCPR, 3DDE, MNN+OR on COFW): the largest recall over thresholds at which
  precision is >= 0.80;
- average precision: sum over thresholds of (R_k - R_k+1) P_k, as scikit-learn's
  `average_precision_score` defines it;
- and the AUROC (`BinnedAUROC`).

The score is the raw 1 - P read at the ground-truth point (`occlusion_metrics.landmark_occlusion_scores`),
uncalibrated. Every number comes from `BinnedAUROC`'s per-face counts: scores rounded down to a grid of
`thresholds` values (0, 0.005, ..., 1 by default), the grid values being the thresholds. So they are
exact for the rounded scores, and a face seen twice (DDP padding) counts once.
"""

from __future__ import annotations

import math
from fractions import Fraction

import torch
from torch import Tensor

from .occlusion_metrics import BinnedAUROC

# The decision threshold until a calibration supplies one: raw 1 - P >= 0.5.
DECISION_THRESHOLD = 0.5
# The precision at which recall is reported (`recall_at_p80`), exact as a fraction.
MIN_PRECISION = Fraction(4, 5)
# The prefix of the logged keys: `landmark_occlusion_auroc`, `landmark_occlusion_precision`, ...
PREFIX = "landmark_occlusion_"


def decision_cut(threshold: float, thresholds: int) -> int:
    """The first bin predicted occluded at `threshold` on a grid of `thresholds` values: bin k holds the
    scores with k grid values <= them, so "rounded-down score >= threshold" is "bin >= cut". A threshold
    between grid values acts as the grid value above it (exact for grid values such as 0.5)."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"decision threshold {threshold}: must be in [0, 1]")
    # The index of the first grid value >= threshold; the tolerance absorbs float rounding (0.3 * 200).
    first_grid_value = math.ceil(threshold * (thresholds - 1) - 1e-6)
    return first_grid_value + 1


def detection_scores(at_least: Tensor, cut: int) -> dict[str, Tensor]:
    """Precision and recall at the decision cut (predicted positive: bin >= cut), recall at 80% precision
    and average precision, from at_least (2, K) int: [label, k] the entries of that label (row 1:
    positive) in bin k or above, k = 0 (every entry) .. K - 1 (none), as `BinnedAUROC.counts_at_or_above`.

    - `precision`: TP / (TP + FP) at the cut; NaN when nothing is predicted positive.
    - `recall`: TP / positives at the cut; NaN without a positive.
    - `recall_at_p80`: the largest recall over cuts k that predict some entry positive with precision
      >= 0.80; 0.0 when no cut reaches 80% precision (no operating point exists: nothing is found at
      that precision); NaN without a positive.
    - `ap`: sum over k of (R_k - R_k+1) P_k, R_k and P_k the recall and precision at cut k (scikit-learn's
      `average_precision_score`: the precision at each threshold weighted by the recall it adds; no
      interpolation); NaN without a positive.
    All float64 scalars."""
    false_positives, true_positives = at_least.to(torch.int64)
    predicted = true_positives + false_positives
    positives = int(true_positives[0])
    nan = torch.tensor(float("nan"), dtype=torch.float64)
    predicted_at_cut, found_at_cut = int(predicted[cut]), int(true_positives[cut])
    precision_at_cut = found_at_cut / predicted_at_cut if predicted_at_cut else math.nan
    scores = {"precision": torch.tensor(precision_at_cut, dtype=torch.float64)}
    if positives == 0:
        return {**scores, "recall": nan, "recall_at_p80": nan, "ap": nan}
    recall = true_positives.double() / positives
    # A cut predicting nothing has no precision; its recall is 0, as is the next one's, so it adds 0 to AP.
    precision = true_positives.double() / predicted.clamp(min=1)
    reached = (predicted > 0) & (
        true_positives * MIN_PRECISION.denominator >= predicted * MIN_PRECISION.numerator
    )
    return {
        **scores,
        "recall": recall[cut],
        "recall_at_p80": recall[reached].max() if bool(reached.any()) else recall.new_tensor(0.0),
        "ap": ((recall[:-1] - recall[1:]) * precision[:-1]).sum(),
    }


class LandmarkOcclusionScores(BinnedAUROC):
    """Occluded landmarks, every number (each point's raw score against its flag, over the faces with
    visibility; the AUROC is `LandmarkOcclusionAUROC`'s where the score is 1 - P at the point): `landmark_occlusion_auroc`,
    `landmark_occlusion_precision` and `landmark_occlusion_recall` at `decision_threshold` (raw 1 - P,
    uncalibrated), `landmark_occlusion_recall_at_p80` and `landmark_occlusion_ap` (`detection_scores`).
    `compute` gives them as a dict; each is NaN where it is not defined."""

    def __init__(
        self, decision_threshold: float = DECISION_THRESHOLD, thresholds: int = 201, **kwargs
    ) -> None:
        super().__init__(thresholds, **kwargs)
        self.decision_threshold = decision_threshold
        self.cut = decision_cut(decision_threshold, thresholds)

    def update(  # type: ignore[override]  # per-point scores, not a map
        self, scores: Tensor, visible: Tensor, keep: Tensor | None = None, index: Tensor | None = None
    ) -> None:
        """scores, visible (B, L): each point's raw score (`occlusion_output.raw_scores`) and flag; keep
        (B,) per face or (B, L) per point, which count (None: all); index (B,) the faces' dataset indices."""
        super().update(scores, ~visible.to(device=scores.device, dtype=torch.bool), keep, index)

    def compute(self) -> dict[str, Tensor]:  # type: ignore[override]  # a dict where the AUROC is a number
        scores = {"auroc": super().compute(), **detection_scores(self.counts_at_or_above(), self.cut)}
        return {PREFIX + name: value.float() for name, value in scores.items()}


# What report.md says of these numbers under its table.
LEGEND = (
    "Landmark occlusion detection, the occluded class (positive: a point annotated occluded), pooled over "
    "every point of the split's faces with visibility flags; a point's score is the raw 1 - P read at "
    "it, or the visibility head's sigmoid where the network has one (uncalibrated), rounded down to steps of 0.005 (a method scored from 0/1 states, such as a "
    "COFW-68 benchmark result file, has precision and recall alone). Precision and recall @"
    f"{DECISION_THRESHOLD:g}: a point is predicted occluded when its score is >= {DECISION_THRESHOLD:g}. "
    "Recall@80% precision: the largest recall at a threshold where precision is >= 80% (0 when none "
    "reaches it). AP: average precision, the sum over thresholds of (R_k - R_k+1) x P_k (scikit-learn's "
    'average_precision_score; 1: perfect, the fraction of points occluded: chance). "-": not measured '
    "(no visibility flags; precision: no point predicted occluded; the others: no point occluded)."
)


def point_scores(
    scores: Tensor, occluded: Tensor, decision_threshold: float = DECISION_THRESHOLD
) -> dict[str, float]:
    """Every number of `LandmarkOcclusionScores` for per-point scores given directly (scores in
    [0, 1] and occluded flags, (N, L) each; faces in order): what `score` measures on a predictions
    file's occlusion scores. Keys without the prefix; NaN where not defined."""
    metric = BinnedAUROC()
    metric.update(scores.double().clamp(0.0, 1.0), occluded.bool())
    numbers = {
        "auroc": metric.compute(),
        **detection_scores(metric.counts_at_or_above(), decision_cut(decision_threshold, metric.thresholds)),
    }
    return {name: float(value) for name, value in numbers.items()}


def state_scores(said: Tensor, occluded: Tensor) -> dict[str, float]:
    """Precision and recall of 0/1 occlusion states (a method that gives no scores, such as the COFW-68
    benchmark's result files), pooled over every point given: (N, L) bool each; NaN where not defined."""
    said, occluded = said.bool(), occluded.bool()
    found, called, positives = int((said & occluded).sum()), int(said.sum()), int(occluded.sum())
    return {
        "precision": found / called if called else math.nan,
        "recall": found / positives if positives else math.nan,
    }
