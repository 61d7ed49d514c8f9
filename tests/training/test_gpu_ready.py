"""GPU-ready training, tested where a CPU can: no host-device synchronisation inside the training step,
finiteness read every n steps, bf16 autocast, and torch.compile of the network."""

from __future__ import annotations

import contextlib
import math

import pytest
import torch

from odn_lightning.train import train
from odn_lightning.training.module import LandmarkModule, NonFiniteError

from ..helpers.configs import LIMITS
from .test_resume import fault

# What makes PyTorch copy a device value to the host: a Python bool, number or list of a tensor.
SYNCHRONISING = ("__bool__", "item", "tolist", "__float__", "__int__", "__index__", "numpy")


@contextlib.contextmanager
def host_reads_forbidden():
    saved = {name: getattr(torch.Tensor, name) for name in SYNCHRONISING}

    def refuse(name):
        def method(self, *args, **kwargs):
            raise AssertionError(f"Tensor.{name} inside the training step (a host-device synchronisation)")

        return method

    try:
        for name in SYNCHRONISING:
            setattr(torch.Tensor, name, refuse(name))
        yield
    finally:
        for name, method in saved.items():
            setattr(torch.Tensor, name, method)


def test_the_training_step_never_reads_a_tensor_on_the_host(train_config, monkeypatch):
    original = LandmarkModule.training_step
    calls = []

    def guarded(self, batch, batch_idx):
        with host_reads_forbidden():
            loss = original(self, batch, batch_idx)
        calls.append(batch_idx)
        return loss

    monkeypatch.setattr(LandmarkModule, "training_step", guarded)
    metrics = train(train_config(*LIMITS))
    assert calls == [0, 1, 2] and math.isfinite(metrics["test/common/nme"])


def test_the_guard_catches_a_host_read():
    with host_reads_forbidden(), pytest.raises(AssertionError, match="Tensor.__bool__"):
        bool(torch.ones(()) > 0)


def test_finiteness_read_every_n_steps_names_the_window(train_config):
    cfg = train_config(*LIMITS, "model.check_finite_every_n_steps=2", *fault(1, "nan_loss"))
    with pytest.raises(NonFiniteError) as caught:
        train(cfg)
    message = str(caught.value)
    assert message.startswith("between steps 0 and 1:") and "check_finite_every_n_steps=1" in message


def test_steps_left_unchecked_at_the_end_of_an_epoch_are_checked_there(train_config):
    # 3 steps, checked every 5: the NaN at step 2 is found when the epoch ends, not never.
    cfg = train_config(*LIMITS, "model.check_finite_every_n_steps=5", *fault(2, "nan_loss"))
    with pytest.raises(NonFiniteError, match=r"^between steps 0 and 2:"):
        train(cfg)


@pytest.mark.slow
def test_bf16_mixed_trains_on_cpu(train_config):
    metrics = train(train_config(*LIMITS, "trainer.precision=bf16-mixed"))
    assert math.isfinite(metrics["test/common/nme"]) and math.isfinite(metrics["val/nme"])


def test_a_compiled_network_steps_and_keeps_eager_parameter_names(train_config):
    from hydra.utils import instantiate

    cfg = train_config("model.compile={backend: eager}")
    module = instantiate(cfg.model)
    names = list(module.state_dict())
    module.configure_model()  # what the Trainer calls before fitting
    module.configure_model()  # idempotent: compiled once
    size = cfg.data.image_size
    outputs = module.net(torch.randn(2, 3, size, size))
    outputs["landmarks"].sum().backward()
    assert module.net.fc.weight.grad is not None
    # nn.Module.compile compiles in place: the state dict (what checkpoints hold) keeps eager names.
    assert list(module.state_dict()) == names and not any("_orig_mod" in name for name in names)
