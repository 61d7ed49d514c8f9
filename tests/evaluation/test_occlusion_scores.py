"""Occluded-landmark detection numbers: precision and recall at the decision threshold, recall at 80%
precision, average precision and AUROC, from the binned per-face counts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from odn_lightning.crop import to_normalised
from odn_lightning.evaluation.occlusion_metrics import LandmarkOcclusionAUROC
from odn_lightning.evaluation.occlusion_scores import LandmarkOcclusionScores, decision_cut

from ..helpers.occlusion import detection_scores_by_definition

S = 32  # crop side; maps are at crop resolution, so a point at a pixel centre reads that pixel's P
NAMES = ("auroc", "precision", "recall", "recall_at_p80", "ap")


def faces_scoring(scores) -> tuple[torch.Tensor, torch.Tensor]:
    """Occlusion maps and landmarks whose points read `scores` (faces, points) as 1 - P: each point at
    its own pixel centre, P = 1 - score there."""
    scores = torch.as_tensor(scores, dtype=torch.float32)
    faces, points = scores.shape
    cells = torch.arange(points) * 7 % (S * S)  # distinct pixels
    xs, ys = cells % S, cells // S
    pixels = torch.stack([xs, ys], -1).double().numpy()
    landmarks = torch.from_numpy(to_normalised(pixels, S)).float()[None].repeat(faces, 1, 1)
    occlusion_map = torch.full((faces, 1, S, S), 0.5)
    occlusion_map[:, 0, ys, xs] = 1.0 - scores
    return occlusion_map, landmarks


def measure(scores, occluded, index=None, **options) -> dict[str, float]:
    metric = LandmarkOcclusionScores(**options)
    scores = torch.as_tensor(scores, dtype=torch.float32)
    metric.update(scores, ~torch.as_tensor(occluded, dtype=torch.bool), index=index)
    return {
        name.removeprefix("landmark_occlusion_"): value.item() for name, value in metric.compute().items()
    }


# Ten points, highest score first; 1: annotated occluded (5 of them).
HAND_SCORES = [[0.9, 0.8, 0.7, 0.6, 0.55, 0.5, 0.4, 0.3, 0.2, 0.1]]
HAND_OCCLUDED = [[1, 1, 1, 0, 1, 0, 0, 1, 0, 0]]


def test_hand_computed_precision_recall_ap_and_recall_at_80_percent_precision():
    values = measure(HAND_SCORES, HAND_OCCLUDED)
    assert set(values) == set(NAMES)
    # Score >= 0.5 (0.5 included): 0.9 0.8 0.7 0.6 0.55 0.5, of which 0.9 0.8 0.7 0.55 occluded: TP 4, FP 2.
    assert values["precision"] == pytest.approx(4 / 6)
    assert values["recall"] == pytest.approx(4 / 5)
    # Per threshold (TP, FP): 0.9 (1, 0), 0.8 (2, 0), 0.7 (3, 0), 0.6 (3, 1), 0.55 (4, 1), 0.5 (4, 2),
    # 0.4 (4, 3), 0.3 (5, 3), 0.2 (5, 4), 0.1 (5, 5). Precision >= 0.8 down to 0.55 (4 / 5 exactly, the
    # bound included): recall 4 / 5 there.
    assert values["recall_at_p80"] == pytest.approx(0.8)
    # AP: recall rises by 1/5 at 0.9, 0.8, 0.7 (precision 1), 0.55 (4/5) and 0.3 (5/8).
    assert values["ap"] == pytest.approx(0.2 * (1 + 1 + 1 + 4 / 5 + 5 / 8))
    # AUROC: occluded above visible in 5 + 5 + 5 + 4 (0.55) + 2 (0.3) of 25 pairs.
    assert values["auroc"] == pytest.approx(21 / 25)


def test_the_decision_threshold_is_a_parameter():
    values = measure(HAND_SCORES, HAND_OCCLUDED, decision_threshold=0.3)
    # Score >= 0.3: the first 8 points, every occluded one (5) and 3 visible.
    assert values["precision"] == pytest.approx(5 / 8)
    assert values["recall"] == 1.0
    # Threshold-free numbers do not move.
    assert values["ap"] == pytest.approx(0.2 * (1 + 1 + 1 + 4 / 5 + 5 / 8))
    # Bin k holds the scores with k grid values (0, 0.005, ..., 1) <= them: 0.3 is grid value 60, so
    # bins 61 and up; a threshold between grid values acts as the grid value above it.
    assert decision_cut(0.3, 201) == 61 and decision_cut(0.5, 201) == 101 and decision_cut(0.501, 201) == 102
    with pytest.raises(ValueError, match="must be in"):
        LandmarkOcclusionScores(decision_threshold=1.5)


def test_undefined_numbers_are_nan_and_an_unreached_precision_gives_zero_recall():
    # No point occluded: nothing but precision is defined (the predicted points are all false).
    values = measure(HAND_SCORES, [[0] * 10])
    assert values["precision"] == 0.0
    assert all(math.isnan(values[name]) for name in ("auroc", "recall", "recall_at_p80", "ap"))
    # Nothing predicted occluded (every score < 0.5): no precision; recall 0 of the 2 occluded points.
    low = [[0.4, 0.3, 0.2, 0.1]]
    values = measure(low, [[1, 0, 1, 0]])
    assert math.isnan(values["precision"]) and values["recall"] == 0.0
    # Per threshold (TP, FP): 0.4 (1, 0), 0.3 (1, 1), 0.2 (2, 1), 0.1 (2, 2).
    assert values["recall_at_p80"] == 0.5 and values["ap"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    # The occluded points score lowest: precision never reaches 80%, so recall there is 0, not NaN.
    # Per threshold (TP, FP): 0.9 (0, 1), 0.8 (0, 2), 0.7 (1, 2), 0.6 (2, 2).
    values = measure([[0.9, 0.8, 0.7, 0.6]], [[0, 0, 1, 1]])
    assert values["recall_at_p80"] == 0.0
    assert values["ap"] == pytest.approx(0.5 * 1 / 3 + 0.5 * 2 / 4) and values["auroc"] == 0.0
    # Every point occluded: no AUROC (no negative); the rest perfect.
    values = measure(HAND_SCORES, [[1] * 10])
    assert math.isnan(values["auroc"])
    assert values["precision"] == values["recall_at_p80"] == values["ap"] == 1.0
    assert values["recall"] == pytest.approx(6 / 10)


def test_random_scores_agree_with_the_definitions_and_the_auroc_metric():
    rng = np.random.default_rng(11)
    bins = rng.integers(0, 200, size=(4, 68))  # many ties between points
    occluded = rng.random((4, 68)) < (bins / 200) ** 2  # higher scores more often occluded
    scores = (bins + 0.5) / 200  # mid-bin: rounding down to 0.005 steps gives `bins` unambiguously
    values = measure(scores, occluded)
    expected = detection_scores_by_definition(bins, occluded, threshold=100)  # score >= 0.5: bin >= 100
    assert 0.0 < expected["recall_at_p80"] < expected["recall"] < 1.0  # a curve, not a corner case
    for name, value in expected.items():
        assert values[name] == pytest.approx(value, abs=1e-6), name
    auroc = LandmarkOcclusionAUROC()
    auroc.update(*faces_scoring(scores), ~torch.from_numpy(occluded))
    assert values["auroc"] == pytest.approx(auroc.compute().item(), abs=1e-7)


def test_a_face_seen_twice_counts_once():
    rng = np.random.default_rng(12)
    scores = (rng.integers(0, 200, size=(3, 68)) + 0.5) / 200
    occluded = rng.random((3, 68)) < 0.4
    once = measure(scores, occluded, index=torch.arange(3))
    repeated = [0, 1, 2, 2]  # face 2 again, as DistributedSampler pads the last batch under DDP
    twice = measure(scores[repeated], occluded[repeated], index=torch.tensor(repeated))
    assert twice == once
    counted_twice = measure(scores[repeated], occluded[repeated])  # no index: four faces
    expected = detection_scores_by_definition(scores[repeated], occluded[repeated], threshold=0.5)
    assert counted_twice["ap"] == pytest.approx(expected["ap"], abs=1e-6) and expected["ap"] != once["ap"]
