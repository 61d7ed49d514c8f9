"""The six rows of Table 4 (and the readout control) each build from conf/model/<name>.yaml and train: gradients reach their modules."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from odn_lightning.models import ODN
from odn_lightning.schemes import get_scheme
from odn_lightning.training.objective import LandmarkObjective

CONF_DIR = Path(__file__).resolve().parents[2] / "conf" / "model"
# name -> (use_gm, use_dm, use_lm, eta > 0)
TABLE4 = {
    "brnet": (False, False, False, True),
    "brnet_conv_pool": (False, False, False, True),  # the readout control
    "gm_dm": (True, True, False, True),
    "dm_lm": (False, True, True, True),
    "gm_lm": (True, False, True, True),
    "odn_no_l1": (True, True, True, False),
    "odn": (True, True, True, True),
}
NUM_LANDMARKS = 19


def _model_config(name: str):
    """conf/model/<name>.yaml as the training config composes it (with 19-point data)."""
    with initialize_config_dir(config_dir=str(CONF_DIR.parent), version_base="1.3"):
        cfg = compose("train", overrides=[f"model={name}", "data=aflw"])
    assert cfg.model._target_ == "odn_lightning.training.module.LandmarkModule"
    return cfg.model


def _build(name: str) -> tuple[ODN, torch.nn.Module]:
    model = _model_config(name)
    return instantiate(model.net), instantiate(model.objective)


def _nonzero_grad(module: torch.nn.Module) -> dict[str, bool]:
    return {
        name: p.grad is not None and bool(p.grad.abs().sum() > 0) for name, p in module.named_parameters()
    }


@pytest.mark.parametrize("name", list(TABLE4))
def test_table4_variant_builds_and_trains(name: str) -> None:
    use_gm, use_dm, use_lm, with_l1 = TABLE4[name]
    torch.manual_seed(0)
    net, objective = _build(name)
    assert (net.use_gm, net.use_dm, net.use_lm) == (use_gm, use_dm, use_lm)
    present = (net.geometry is not None, net.distillation is not None, net.low_rank is not None)
    assert present == (use_gm, use_dm, use_lm)
    # BRNet reads out with ResNet-18's global average pool; its control and every module row alike.
    assert net.readout.mode == ("gap" if name == "brnet" else "conv_pool")

    net.train()
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-2)
    images = torch.randn(2, 3, 64, 64)
    target = torch.rand(2, NUM_LANDMARKS, 2) * 2 - 1
    outputs = net(images)
    terms = objective(outputs, target, net)
    expected_terms = {"loss", "coord_l2", "frobenius_conv", "frobenius_fc"}
    expected_terms |= {"nuclear_M", "frobenius_M"} if use_lm else set()
    expected_terms |= {"l1_P"} if use_dm else set()
    assert set(terms) == expected_terms
    if use_dm:
        assert (terms["l1_P"] > 0) == with_l1
    terms["loss"].backward()

    # Every parameter of every switched-on module, and of the readout and FC, gets a gradient.
    switched_on = {"readout": net.readout, "fc": net.fc}
    switched_on |= {"geometry": net.geometry} if use_gm else {}
    switched_on |= {"distillation": net.distillation} if use_dm else {}  # pathway D, the P branch
    switched_on |= {"low_rank": net.low_rank} if use_lm else {}
    for module_name, module in switched_on.items():
        missing = [param for param, ok in _nonzero_grad(module).items() if not ok]
        assert not missing, f"{name}: no gradient for {module_name}.{missing}"
    # ...and so does pathway C (the last residual block; timm zero-initialises its last BN scale).
    assert net.backbone.layer4[-1].bn2.weight.grad.abs().sum() > 0

    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    optimizer.step()
    assert all(torch.isfinite(p).all() for p in net.parameters())
    if use_lm:
        assert not torch.equal(before["low_rank.structural_matrix"], net.low_rank.structural_matrix)


def test_table4_configs_differ_only_in_their_switches() -> None:
    odn = _model_config("odn")
    for name in TABLE4:
        cfg = _model_config(name)
        assert cfg.optimizer == odn.optimizer and cfg.scheduler == odn.scheduler, name
        for key in ("alpha", "beta", "gamma", "lam"):
            assert cfg.objective[key] == odn.objective[key], (name, key)
        assert cfg.net.pretrained is False and cfg.net.backbone_checkpoint is None, name


def test_table4_variants_compose_with_the_training_config() -> None:
    """`odn-train model=<name>` composes, and its LandmarkModule wraps the ODN and eq. 3."""
    from odn_lightning.training.module import LandmarkModule

    with initialize_config_dir(config_dir=str(CONF_DIR.parent), version_base="1.3"):
        for name, (use_gm, use_dm, use_lm, with_l1) in TABLE4.items():
            cfg = compose("train", overrides=[f"model={name}"])
            module = instantiate(cfg.model)
            assert isinstance(module, LandmarkModule) and isinstance(module.net, ODN), name
            assert (module.net.use_gm, module.net.use_dm, module.net.use_lm) == (use_gm, use_dm, use_lm)
            assert module.net.num_landmarks == get_scheme(cfg.data.scheme).num_landmarks == 68
            assert isinstance(module.objective, LandmarkObjective)
            assert (module.objective.eta > 0) == with_l1
