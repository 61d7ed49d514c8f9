"""Calibrated per-landmark occlusion: a monotone map learnt on validation flags, its direction
included (an inverted P comes out right), its figures exact, stored as plain tensors in every
checkpoint and read back; a network without one outputs no probability."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from odn_lightning.evaluation.calibration import (
    FIELDS,
    OcclusionCalibration,
    calibrate,
    exact_scores,
    uncalibrated,
)
from odn_lightning.evaluation.occlusion_output import OcclusionOutput
from odn_lightning.evaluation.report_files import read_predictions
from odn_lightning.training.checkpoints import load_checkpoint


def flags(count: int = 400, occluded_share: float = 0.25, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(count, generator=generator) < occluded_share


def noisy(occluded: torch.Tensor, high: float, low: float, seed: int = 1) -> torch.Tensor:
    """Scores near `high` at occluded points and near `low` at visible ones."""
    generator = torch.Generator().manual_seed(seed)
    jitter = (torch.rand(len(occluded), generator=generator) - 0.5) * 0.1
    return torch.where(occluded, torch.tensor(high), torch.tensor(low)) + jitter


def test_a_perfect_map_calibrates_to_high_probability_at_occluded_points():
    occluded = flags()
    fitted = calibrate(noisy(occluded, 0.8, 0.2), occluded)
    assert fitted is not None and fitted.slope > 0
    probability = fitted.probability(noisy(occluded, 0.8, 0.2))
    assert bool((probability[occluded] > 0.5).all()) and bool((probability[~occluded] < 0.5).all())
    assert fitted.auroc == 1.0 and fitted.recall_at_p80 == 1.0 and fitted.ap == pytest.approx(1.0)
    assert (fitted.points, fitted.occluded_points) == (400, int(occluded.sum()))


def test_an_inverted_map_is_read_the_right_way_round():
    # P higher at occluded points: the raw score 1 - P is low there. Shown raw, every occluded point
    # would look visible; calibrated, the direction is learnt.
    occluded = flags()
    raw = noisy(occluded, 0.2, 0.8)
    fitted = calibrate(raw, occluded)
    assert fitted is not None and fitted.slope < 0
    probability = fitted.probability(raw)
    assert bool((probability[occluded] > 0.5).all()) and bool((probability[~occluded] < 0.5).all())
    assert fitted.auroc == 1.0


def test_a_constant_map_calibrates_to_the_base_rate_and_calls_nothing_occluded():
    occluded = flags()
    fitted = calibrate(torch.full((400,), 0.5), occluded)
    assert fitted is not None
    rate = float(occluded.double().mean())
    assert fitted.probability(torch.tensor([0.5])).item() == pytest.approx(rate, abs=1e-3)
    assert fitted.auroc == 0.5  # never below chance: the map tells nothing
    assert math.isnan(fitted.precision) and fitted.recall == 0.0


def test_a_fit_ranking_worse_than_chance_falls_back_to_the_base_rate():
    # Most occluded points score below the visible ones, ten score extremely high: the likelihood's
    # slope is positive, and that reading ranks validation at AUROC 0.05. It is never output.
    scores = torch.cat([torch.full((250,), 0.55), torch.full((140,), 0.45), torch.full((10,), 1 - 1e-9)])
    occluded = torch.arange(400) >= 250
    fitted = calibrate(scores, occluded)
    assert fitted.slope == 0.0 and fitted.auroc == 0.5
    assert fitted.probability(scores).unique().tolist() == pytest.approx([150 / 400])  # the base rate
    assert fitted.recall == 0.0  # below the threshold everywhere: nothing is called occluded


def test_nothing_to_calibrate_on_without_both_kinds_of_point():
    assert calibrate(torch.rand(10), torch.zeros(10, dtype=torch.bool)) is None
    assert calibrate(torch.rand(10), torch.ones(10, dtype=torch.bool)) is None


def test_exact_figures_by_hand():
    # Scores (high to low) 0.9+, 0.8+, 0.7-, 0.6+, 0.4-, 0.2-: 3 occluded (+), 3 visible (-).
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.4, 0.2], dtype=torch.float64)
    occluded = torch.tensor([1, 1, 0, 1, 0, 0], dtype=torch.bool)
    numbers = exact_scores(scores, occluded, threshold=0.5)
    # Pairs (positive above negative): 0.9 and 0.8 beat all 3, 0.6 beats 0.4 and 0.2: 8 of 9.
    assert numbers["auroc"] == pytest.approx(8 / 9)
    # Cuts: after 0.9 P 1 R 1/3; 0.8 P 1 R 2/3; 0.7 P 2/3 R 2/3; 0.6 P 3/4 R 1; ... AP = 1/3 + 1/3 + 3/4 x 1/3.
    assert numbers["ap"] == pytest.approx(1 / 3 + 1 / 3 + 0.25)
    assert numbers["recall_at_p80"] == pytest.approx(2 / 3)  # 3/4 < 80% at recall 1
    assert numbers["precision"] == pytest.approx(3 / 4) and numbers["recall"] == pytest.approx(1.0)


def test_stored_as_one_plain_tensor_and_read_back():
    occluded = flags()
    fitted = calibrate(noisy(occluded, 0.7, 0.3), occluded, epoch=4)
    tensor = fitted.to_tensor()
    assert tensor.dtype == torch.float64 and tensor.shape == (len(FIELDS),)
    assert OcclusionCalibration.from_tensor(tensor) == fitted
    assert OcclusionCalibration.from_tensor(uncalibrated()) is None


def test_the_output_refits_at_validation_and_old_checkpoints_load_uncalibrated():
    output = OcclusionOutput()
    output.add_split("val")
    occluded = flags(count=68 * 6).view(6, 68)
    raw = noisy(occluded.flatten(), 0.2, 0.9).view(6, 68)
    output.collect("val", raw, ~occluded, torch.ones(6, dtype=torch.bool), torch.arange(6))
    output.collect("val", raw[:2], ~occluded[:2], torch.ones(2, dtype=torch.bool), torch.arange(2))  # padding
    logged = output.end_validation("val", epoch=3)
    assert logged["occlusion_probability_auroc"] == 1.0
    assert output.fitted.points == 6 * 68 and output.fitted.epoch == 3  # each face once
    state = output.state_dict()
    assert set(state) == {"calibration"}
    restored = OcclusionOutput()
    restored.load_state_dict(state)
    assert restored.fitted == output.fitted
    old = OcclusionOutput()
    old.load_state_dict({})  # a checkpoint from before calibration existed
    assert old.fitted is None and old.probability(raw) is None


def test_every_checkpoint_of_a_run_with_flags_carries_its_calibration(trained_run):
    checkpoint = load_checkpoint(trained_run / "checkpoints" / "last.ckpt")
    fitted = OcclusionCalibration.from_tensor(checkpoint["state_dict"]["occlusion_output.calibration"])
    assert fitted is not None and fitted.auroc >= 0.5
    # predictions.csv's probabilities are the calibration applied to its raw scores.
    rows = read_predictions(trained_run / "predictions.csv")["common"]
    expected = fitted.probability(torch.from_numpy(rows["occlusion"])).numpy()
    np.testing.assert_allclose(rows["probability"], expected, atol=2e-6)
