"""Under DDP, two processes give exactly the single-process metric values on the same faces."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from odn_lightning.evaluation.metrics import LandmarkNME
from odn_lightning.evaluation.occlusion_metrics import (
    FaceAUROC,
    FaceOccluderAUROC,
    LandmarkOcclusionAUROC,
    OccluderAUROC,
    face_region,
    landmark_occlusion_scores,
)

FACES = 23  # odd: DistributedSampler pads rank 1 with a face rank 0 already has
SIDE = 16  # crop side of the occlusion faces


def faces():
    rng = np.random.default_rng(0)
    target = torch.from_numpy(rng.uniform(0, 300, (FACES, 68, 2)))
    pred = target + torch.from_numpy(rng.normal(scale=8.0, size=target.shape))
    visible = torch.from_numpy(rng.random((FACES, 68)) > 0.3)
    return pred, target, visible


def occlusion_faces():
    """Landmarks in the crop's middle, occluder masks, maps higher on the face and lower on occluders,
    and visibility flags that partly agree with the maps."""
    rng = np.random.default_rng(1)
    landmarks = torch.from_numpy(rng.uniform(-0.6, 0.6, (FACES, 68, 2))).float()
    mask = torch.from_numpy(rng.random((FACES, SIDE, SIDE)) < 0.3).to(torch.uint8) * 255
    noise = torch.from_numpy(rng.random((FACES, 1, SIDE, SIDE))).float()
    face = face_region(landmarks, SIDE)[:, None].float()
    occlusion_map = 0.4 * noise + 0.3 * (mask[:, None] == 0).float() + 0.3 * face
    scores = landmark_occlusion_scores(occlusion_map, landmarks)
    visible = scores + 0.5 * torch.from_numpy(rng.random((FACES, 68))).float() < 0.65
    has_visibility = torch.from_numpy(rng.random(FACES) > 0.2)
    return landmarks, mask, visible, has_visibility, occlusion_map


def aurocs():
    return {
        "occluder_auroc": OccluderAUROC(),
        "occluder_auroc_face": FaceOccluderAUROC(),
        "face_auroc": FaceAUROC(),
        "landmark_occlusion_auroc": LandmarkOcclusionAUROC(),
    }


def update_aurocs(metrics, batch: torch.Tensor, indexed: bool = True) -> None:
    landmarks, mask, visible, has_visibility, occlusion_map = (t[batch] for t in occlusion_faces())
    index = batch if indexed else None
    metrics["occluder_auroc"].update(occlusion_map, mask, index=index)
    metrics["occluder_auroc_face"].update(occlusion_map, mask, landmarks, index=index)
    metrics["face_auroc"].update(occlusion_map, landmarks, SIDE, index=index)
    metrics["landmark_occlusion_auroc"].update(occlusion_map, landmarks, visible, has_visibility, index=index)


def values(metric: LandmarkNME) -> dict[str, float]:
    return {k: v.item() for k, v in metric.compute().items()}


def shard(rank: int, world: int, init_file: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    pred, target, visible = faces()
    # DistributedSampler without shuffling: rank r takes faces r, r + world, ... padded to equal length.
    padded = list(range(FACES)) + list(range(-FACES % world))
    mine = torch.tensor(padded[rank::world])
    metric = LandmarkNME(thresholds=(0.08, 0.10))
    occlusion = aurocs()
    for batch in mine.split(5):
        metric.update(pred[batch], target[batch], visible=visible[batch], index=batch)
        update_aurocs(occlusion, batch)
    result = {"nme": values(metric), "auroc": {k: m.compute().item() for k, m in occlusion.items()}}
    if rank == 0:
        with open(out, "w") as f:
            json.dump(result, f)
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> dict[str, dict[str, float]]:
    """The metrics of two gloo processes sharing the faces as DistributedSampler does."""
    tmp_path = tmp_path_factory.mktemp("ddp")
    out = tmp_path / "ddp.json"
    mp.start_processes(shard, args=(2, str(tmp_path / "init"), str(out)), nprocs=2, start_method="spawn")
    return json.loads(out.read_text())


@pytest.mark.timeout(120)
def test_two_processes_equal_one(two_processes):
    pred, target, visible = faces()
    single = LandmarkNME(thresholds=(0.08, 0.10))
    single.update(pred, target, visible=visible, index=torch.arange(FACES))
    expected = values(single)
    assert two_processes["nme"] == expected
    pooled = {"nme_occluded_pooled", "nme_visible_pooled"}
    assert {"nme", "auc_08", "fr_10", "nme_occluded", "nme_visible"} | pooled <= set(expected)


@pytest.mark.timeout(120)
def test_occlusion_aurocs_of_two_processes_equal_one(two_processes):
    single = aurocs()
    update_aurocs(single, torch.arange(FACES))
    expected = {k: m.compute().item() for k, m in single.items()}
    assert two_processes["auroc"] == expected
    # Measured, and not chance: the maps are built to find occluders.
    assert all(0.55 < value < 1.0 for value in expected.values()), expected
    # Were the padded face counted twice (no dataset index), every value would differ.
    naive = aurocs()
    update_aurocs(naive, torch.tensor([*range(FACES), 0]), indexed=False)
    assert all(naive[k].compute().item() != value for k, value in expected.items())
