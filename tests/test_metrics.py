from __future__ import annotations

import numpy as np
import pytest
import torch

from odn_lightning.data.schemes import get_scheme
from odn_lightning.metrics import LandmarkNME, auc_at, failure_rate_at, per_sample_nme

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
