"""The per-landmark visibility head (models/visibility.py): on any network, trained by the flags."""

from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from odn_lightning.config_checks import ConfigError, check_config
from odn_lightning.models import ODN
from odn_lightning.models.visibility import VisibilityHead
from odn_lightning.training.objective import LandmarkObjective, visibility_supervision

POINTS = 5


@pytest.mark.parametrize("modules", [True, False], ids=["odn", "brnet"])
def test_the_head_gives_one_logit_per_landmark_on_odn_and_brnet(modules):
    net = ODN(POINTS, use_gm=modules, use_dm=modules, use_lm=modules, visibility_head=True).eval()
    outputs = net(torch.randn(2, 3, 64, 64))
    assert outputs["occlusion_logit"].shape == (2, POINTS)
    assert torch.isfinite(outputs["occlusion_logit"]).all()
    assert net.variant.endswith("+ visibility head")
    assert "occlusion_logit" not in ODN(POINTS, use_gm=modules, use_dm=modules, use_lm=modules).eval()(
        torch.randn(1, 3, 64, 64)
    )


def test_a_network_without_the_head_is_initialised_as_before_the_head_existed():
    # The head is built last: every other parameter draws the same random numbers with or without it.
    torch.manual_seed(3)
    plain = ODN(POINTS).state_dict()
    torch.manual_seed(3)
    with_head = ODN(POINTS, visibility_head=True).state_dict()
    assert set(with_head) - set(plain) == {k for k in with_head if k.startswith("visibility.")}
    for name, value in plain.items():
        assert torch.equal(value, with_head[name]), name


def test_the_head_reads_the_features_at_each_point():
    # One channel, identity reduction: a logit is the feature under its point (bilinear, crop frame).
    head = VisibilityHead(1, 2, channels=1).eval()
    with torch.no_grad():
        head.reduce[0].weight.fill_(1.0)
        head.point_weight.fill_(1.0)
        head.context_weight.zero_()
    features = torch.zeros(1, 1, 2, 2)
    features[0, 0, 0, 0] = 3.0  # the top-left cell
    centre_of = {"top_left": [-0.5, -0.5], "bottom_right": [0.5, 0.5]}
    landmarks = torch.tensor([[centre_of["top_left"], centre_of["bottom_right"]]])
    logits = head(features, landmarks)
    bn = head.reduce[1]
    expected_top_left = torch.relu((torch.tensor(3.0) - bn.running_mean) / (bn.running_var + bn.eps).sqrt())
    assert logits[0, 0].item() == pytest.approx(expected_top_left.item(), rel=1e-5)
    assert logits[0, 1].item() == pytest.approx(0.0, abs=1e-6)


def test_visibility_supervision_is_the_cross_entropy_of_the_logits_against_the_flags():
    logits = torch.tensor([[2.0, -1.0], [5.0, 5.0]])
    visible = torch.tensor([[False, True], [True, True]])
    # Face 2 has no flags: left out. By hand: occluded point -log(sigmoid(2)), visible -log(1 - sigmoid(-1)).
    value = visibility_supervision(logits, visible, torch.tensor([True, False]))
    expected = (-math.log(1 / (1 + math.exp(-2.0))) - math.log(1 - 1 / (1 + math.exp(1.0)))) / 2
    assert value.item() == pytest.approx(expected, rel=1e-6)
    assert visibility_supervision(logits, visible, torch.tensor([False, False])) is None


def test_the_objective_trains_the_head_only_when_asked():
    landmarks = torch.zeros(1, 2, 2)
    batch = {"visible": torch.tensor([[True, False]]), "has_visibility": torch.tensor([True])}
    logit = torch.zeros(1, 2, requires_grad=True)
    outputs = {"landmarks": landmarks.clone(), "occlusion_logit": logit}
    net = nn.Linear(2, 2)
    assert "visibility_bce" not in LandmarkObjective()(outputs, landmarks, net, batch)
    terms = LandmarkObjective(occlusion_weight=3.0)(outputs, landmarks, net, batch)
    assert terms["visibility_bce"].item() == pytest.approx(3.0 * math.log(2.0), rel=1e-6)
    terms["loss"].backward()
    assert logit.grad[0, 0] > 0 > logit.grad[0, 1]  # lower the visible point's logit, raise the occluded


def test_a_head_without_supervision_is_refused_in_one_line():
    cfg = OmegaConf.create(
        {"model": {"net": {"visibility_head": True}, "objective": {"occlusion_weight": 0.0}}}
    )
    with pytest.raises(ConfigError, match="visibility_head=true needs model.objective.occlusion_weight > 0"):
        check_config(cfg)
    cfg.model.objective.occlusion_weight = 1.0
    check_config(cfg)
