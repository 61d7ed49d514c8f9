"""The LightningModule wraps any network that returns `landmarks`, and reports NME per split."""

from __future__ import annotations

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader

from odn_lightning.training.module import LandmarkModule

from ..helpers.batches import random_batches


class TinyNet(nn.Module):
    def __init__(self, num_landmarks: int = 68) -> None:
        super().__init__()
        self.num_landmarks = num_landmarks
        self.body = nn.Sequential(
            nn.Conv2d(3, 4, 3, stride=4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )
        self.head = nn.Linear(4, 2 * num_landmarks)

    def forward(self, images):
        return {"landmarks": self.head(self.body(images)).view(-1, self.num_landmarks, 2)}


def test_module_trains_any_network_and_logs_nme_per_split():
    module = LandmarkModule(net=TinyNet(), optimizer=None, scheduler=None)
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    identity = lambda items: items[0]  # noqa: E731 - the batches are built already
    train = DataLoader(random_batches("train"), batch_size=1, collate_fn=identity)
    val = DataLoader(random_batches("val", count=2), batch_size=1, collate_fn=identity)
    before = [p.detach().clone() for p in module.net.parameters()]
    trainer.fit(module, train_dataloaders=train, val_dataloaders=val)
    assert all(not torch.equal(a, b) for a, b in zip(before, module.net.parameters(), strict=True))
    assert "val/nme" in trainer.callback_metrics and "val/fr_10" in trainer.callback_metrics
    # No datamodule: no mean shape, so no baseline is reported.
    assert "val/nme_mean_shape" not in trainer.callback_metrics


class MeanShapeOnly:
    def __init__(self, shape: torch.Tensor) -> None:
        self.shape = shape

    def mean_shape(self) -> torch.Tensor:
        return self.shape


def test_fit_start_sets_the_baseline_and_starts_the_network_from_the_mean_shape():
    from types import SimpleNamespace

    from odn_lightning.models import ODN

    module = LandmarkModule(net=ODN(num_landmarks=68))
    shape = torch.rand(68, 2) * 2 - 1
    module._trainer = SimpleNamespace(datamodule=MeanShapeOnly(shape))
    module.on_fit_start()
    assert bool(module.mean_shape_known) and torch.equal(module.mean_shape, shape)
    torch.nn.init.zeros_(module.net.fc.weight)
    module.net.eval()
    assert torch.allclose(module(torch.randn(2, 3, 64, 64))["landmarks"], shape.expand(2, 68, 2))
    # A module that knows its mean shape already (resumed, fine-tuned) keeps it and its weights.
    module._trainer = SimpleNamespace(datamodule=MeanShapeOnly(torch.zeros(68, 2)))
    module.on_fit_start()
    assert torch.equal(module.mean_shape, shape)
