"""Under DDP, two processes give exactly the single-process metric values on the same faces."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from odn_lightning.metrics import LandmarkNME

FACES = 23  # odd: DistributedSampler pads rank 1 with a face rank 0 already has


def faces():
    rng = np.random.default_rng(0)
    target = torch.from_numpy(rng.uniform(0, 300, (FACES, 68, 2)))
    pred = target + torch.from_numpy(rng.normal(scale=8.0, size=target.shape))
    visible = torch.from_numpy(rng.random((FACES, 68)) > 0.3)
    return pred, target, visible


def values(metric: LandmarkNME) -> dict[str, float]:
    return {k: v.item() for k, v in metric.compute().items()}


def shard(rank: int, world: int, init_file: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    pred, target, visible = faces()
    # DistributedSampler without shuffling: rank r takes faces r, r + world, ... padded to equal length.
    padded = list(range(FACES)) + list(range(-FACES % world))
    mine = torch.tensor(padded[rank::world])
    metric = LandmarkNME(thresholds=(0.08, 0.10))
    for batch in mine.split(5):
        metric.update(pred[batch], target[batch], visible=visible[batch], index=batch)
    result = values(metric)
    if rank == 0:
        with open(out, "w") as f:
            json.dump(result, f)
    dist.destroy_process_group()


@pytest.mark.timeout(120)
def test_two_processes_equal_one(tmp_path):
    pred, target, visible = faces()
    single = LandmarkNME(thresholds=(0.08, 0.10))
    single.update(pred, target, visible=visible, index=torch.arange(FACES))
    expected = values(single)
    out = tmp_path / "ddp.json"
    mp.start_processes(shard, args=(2, str(tmp_path / "init"), str(out)), nprocs=2, start_method="spawn")
    assert json.loads(out.read_text()) == expected
    assert {"nme", "auc_08", "fr_10", "nme_occluded", "nme_visible"} <= set(expected)
