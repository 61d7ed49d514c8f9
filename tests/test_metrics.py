from __future__ import annotations

import numpy as np
import pytest
import torch

from odn_lightning.metrics import (
    LandmarkNME,
    OccluderAUROC,
    auc_at,
    ced_curve,
    failure_rate_at,
    per_sample_nme,
)
from odn_lightning.schemes import get_scheme

SCHEME = get_scheme("ibug68")


def face(outer_left=(0.0, 0.0), outer_right=(10.0, 0.0)) -> torch.Tensor:
    points = torch.zeros(1, 68, 2)
    points[0, 36] = torch.tensor(outer_left)
    points[0, 45] = torch.tensor(outer_right)
    return points


def test_inter_ocular_nme_by_hand():
    target = face()
    pred = target.clone()
    pred[0, 0] += torch.tensor([3.0, 4.0])  # one point off by 5 px; inter-ocular distance 10
    expected = 5.0 / 68 / 10.0
    assert per_sample_nme(pred, target, SCHEME, "inter_ocular").item() == pytest.approx(expected)


def test_inter_pupil_uses_eye_centres():
    target = face()
    target[0, 36:42] = torch.tensor([0.0, 0.0])
    target[0, 42:48] = torch.tensor([20.0, 0.0])
    pred = target + torch.tensor([1.0, 0.0])
    assert per_sample_nme(pred, target, SCHEME, "inter_pupil").item() == pytest.approx(1.0 / 20.0)


def test_metric_accumulates_batches_like_numpy():
    rng = np.random.default_rng(0)
    target = rng.normal(size=(10, 68, 2)).astype(np.float32)
    pred = target + rng.normal(scale=0.1, size=target.shape).astype(np.float32)
    metric = LandmarkNME()
    metric.update(torch.from_numpy(pred[:4]), torch.from_numpy(target[:4]))
    metric.update(torch.from_numpy(pred[4:]), torch.from_numpy(target[4:]))
    iod = np.linalg.norm(target[:, 36] - target[:, 45], axis=-1)
    expected = (np.linalg.norm(pred - target, axis=-1).mean(axis=1) / iod).mean()
    assert metric.compute()["nme"].item() == pytest.approx(expected, rel=1e-5)


def test_auc_and_failure_rate_limits():
    perfect = torch.zeros(100)
    hopeless = torch.full((100,), 0.5)
    assert auc_at(perfect, 0.08).item() == pytest.approx(1.0, abs=1e-3)
    assert failure_rate_at(perfect, 0.08).item() == 0.0
    assert auc_at(hopeless, 0.08).item() == 0.0
    assert failure_rate_at(hopeless, 0.08).item() == 1.0
    half = torch.tensor([0.0, 0.5])
    assert failure_rate_at(half, 0.1).item() == 0.5


def test_unknown_normalisation_is_named():
    with pytest.raises(ValueError, match="inter_ocular"):
        LandmarkNME(normalisation="nose")


# ------------------------------------------------------------------ every normalisation, by hand


def boxed_face(width=40.0, height=90.0):
    target = face(outer_left=(10.0, 20.0), outer_right=(40.0, 60.0))  # inter-ocular 50
    box = torch.tensor([[0.0, 0.0, width, height]])
    return target, box


@pytest.mark.parametrize(
    "normalisation,distance",
    [("inter_ocular", 50.0), ("box_width", 40.0), ("box_size", 60.0)],  # sqrt(40 * 90) = 60
)
def test_each_normalisation_by_hand(normalisation, distance):
    target, box = boxed_face()
    pred = target.clone()
    pred[0, 3] += torch.tensor([6.0, 8.0])  # one point 10 px off: mean error 10 / 68
    metric = LandmarkNME(normalisation=normalisation)
    metric.update(pred, target, normalising_box=box)
    assert metric.compute()["nme"].item() == pytest.approx(10.0 / 68 / distance, rel=1e-6)


def test_box_normalisation_without_a_box_is_a_clear_error():
    target, _ = boxed_face()
    with pytest.raises(ValueError, match="box_width.*needs each face's box"):
        LandmarkNME(normalisation="box_width").update(target, target)


@pytest.mark.parametrize("normalisation", ["inter_ocular", "inter_pupil", "box_width", "box_size"])
def test_metric_equals_an_independent_numpy_computation(normalisation):
    rng = np.random.default_rng(1)
    target = rng.uniform(0, 500, size=(37, 68, 2))
    pred = target + rng.normal(scale=5.0, size=target.shape)
    box = np.concatenate([target.min(axis=1) - 10, target.max(axis=1) + 10], axis=1)
    if normalisation == "inter_ocular":
        distance = np.linalg.norm(target[:, 36] - target[:, 45], axis=-1)
    elif normalisation == "inter_pupil":
        distance = np.linalg.norm(target[:, 36:42].mean(1) - target[:, 42:48].mean(1), axis=-1)
    else:
        w, h = box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]
        distance = w if normalisation == "box_width" else np.sqrt(w * h)
    errors = np.linalg.norm(pred - target, axis=-1).mean(axis=1) / distance
    metric = LandmarkNME(normalisation=normalisation, thresholds=(0.08, 0.1, 0.2))
    for chunk in np.array_split(np.arange(37), 4):
        metric.update(
            *(torch.from_numpy(a[chunk]) for a in (pred, target)),
            normalising_box=torch.from_numpy(box[chunk]),
        )
    result = metric.compute()
    assert result["nme"].item() == pytest.approx(errors.mean(), rel=1e-6)
    for t, key in ((0.08, "08"), (0.1, "10"), (0.2, "20")):
        assert result[f"fr_{key}"].item() == pytest.approx((errors > t).mean())
        # AUC by a fine numerical integration of the CED, independently of auc_at's closed form.
        xs = np.linspace(0, t, 200001)
        ced = (errors[None, :] <= xs[:, None]).mean(axis=1)
        assert result[f"auc_{key}"].item() == pytest.approx(np.trapezoid(ced, xs) / t, abs=1e-4)


def test_ced_is_monotone_and_reaches_one():
    errors = torch.from_numpy(np.random.default_rng(2).uniform(0, 0.05, 50))
    xs, fractions = ced_curve(errors, 0.08)
    assert xs[0] == 0 and xs[-1] == pytest.approx(0.08)
    assert (fractions[1:] >= fractions[:-1]).all()
    assert fractions[-1] == 1.0 and fractions[0] == 0.0


def test_auc_is_exact_at_known_limits():
    assert auc_at(torch.zeros(10), 0.08).item() == 1.0
    assert auc_at(torch.full((10,), 0.08, dtype=torch.float64), 0.08).item() == 0.0
    assert auc_at(torch.tensor([0.04]), 0.08).item() == pytest.approx(0.5)  # a triangle's half
    assert auc_at(torch.tensor([0.0, 1.0]), 0.1).item() == pytest.approx(0.5)


def test_faces_seen_twice_count_once():
    rng = np.random.default_rng(3)
    target = torch.from_numpy(rng.uniform(0, 100, (6, 68, 2)))
    pred = target + torch.from_numpy(rng.normal(size=target.shape))
    once, twice = LandmarkNME(), LandmarkNME()
    once.update(pred, target, index=torch.arange(6))
    twice.update(pred[:4], target[:4], index=torch.arange(4))
    twice.update(pred[3:], target[3:], index=torch.arange(3, 6))  # face 3 again, as DDP padding does
    assert twice.compute()["nme"].item() == once.compute()["nme"].item()
    indices, errors = twice.per_sample()
    assert indices.tolist() == list(range(6)) and len(errors) == 6


def test_occluded_and_visible_points_are_measured_apart():
    target = face()
    pred = target.clone()
    pred[0, :10, 0] += 5.0  # the 10 occluded points are 5 px off; the visible ones are exact
    visible = torch.ones(1, 68, dtype=torch.bool)
    visible[0, :10] = False
    metric = LandmarkNME()
    metric.update(pred, target, visible=visible)
    result = metric.compute()
    assert result["nme_occluded"].item() == pytest.approx(5.0 / 10.0)  # inter-ocular 10
    assert result["nme_visible"].item() == 0.0
    without = LandmarkNME()
    without.update(pred, target)
    assert "nme_occluded" not in without.compute()


def test_occluder_auroc_is_one_for_a_perfect_map_and_about_half_for_a_random_one():
    generator = torch.Generator().manual_seed(0)
    mask = torch.zeros(4, 64, 64, dtype=torch.uint8)
    mask[:, 16:48, 8:40] = 255
    perfect_map = 1.0 - (mask[:, None].float() / 255)  # P = 0 on occluders, 1 elsewhere
    perfect = OccluderAUROC()
    perfect.update(perfect_map, mask)
    assert perfect.compute().item() == pytest.approx(1.0, abs=1e-3)
    random = OccluderAUROC()
    random.update(torch.rand(4, 1, 8, 8, generator=generator), mask)
    assert random.compute().item() == pytest.approx(0.5, abs=0.1)
    inverted = OccluderAUROC()
    inverted.update(1.0 - perfect_map, mask)
    assert inverted.compute().item() == pytest.approx(0.0, abs=1e-3)


def faces_off_by(offsets_px: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """One face per offset: every point `offset` px off in x (inter-ocular distance 10)."""
    target = face().expand(len(offsets_px), -1, -1).clone()
    pred = target + torch.tensor(offsets_px)[:, None, None] * torch.tensor([1.0, 0.0])
    return pred, target


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_prediction_is_a_failure_and_the_nme_is_nan(bad):
    pred, target = faces_off_by([0.1, 0.2, 0.3, 0.4])  # NME 0.01 .. 0.04: below both thresholds
    good = LandmarkNME(thresholds=(0.08, 0.10))
    good.update(pred, target)
    without = good.compute()
    pred[2, 5, 1] = bad  # one coordinate of one face
    metric = LandmarkNME(thresholds=(0.08, 0.10))
    metric.update(pred, target)
    result = metric.compute()
    assert without["fr_08"].item() == 0.0 and without["fr_10"].item() == 0.0
    assert result["fr_08"].item() == 0.25 and result["fr_10"].item() == 0.25  # 1 face of 4
    assert torch.isnan(result["nme"]) and torch.isfinite(without["nme"])
    assert result["auc_08"].item() < without["auc_08"].item()
    # The failed face adds 0 to the AUC: the other three keep their share.
    expected = (without["auc_08"].item() * 4 - (0.08 - 0.03) / 0.08) / 4
    assert result["auc_08"].item() == pytest.approx(expected, rel=1e-6)


def test_failure_rate_auc_and_ced_count_nan_errors_as_failures():
    errors = torch.tensor([0.01, float("nan"), 0.02, 0.03, float("inf")], dtype=torch.float64)
    assert failure_rate_at(errors, 0.08).item() == 2 / 5
    assert auc_at(errors, 0.1).item() == pytest.approx((0.09 + 0.08 + 0.07) / 0.1 / 5)
    _, fractions = ced_curve(errors, 0.1)
    assert fractions[-1].item() == 3 / 5


def test_a_split_without_occluded_points_has_no_occluded_nme_rather_than_nan():
    pred, target = faces_off_by([1.0, 2.0])
    metric = LandmarkNME()
    metric.update(pred, target, visible=torch.ones(2, 68, dtype=torch.bool))
    result = metric.compute()
    assert "nme_occluded" not in result and result["nme_visible"].item() == pytest.approx(0.15)
