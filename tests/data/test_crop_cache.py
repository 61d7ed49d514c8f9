"""The crop cache: evaluation samples bit-identical to the uncached ones, training samples the same
up to resampling, rebuilt when what the crops depend on changes, bad images handled as without it,
and memory-mapped files that DataLoader workers map themselves."""

from __future__ import annotations

import logging
import math
import os
import pickle
import shutil

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from torch.utils.data import DataLoader

from odn_lightning.crop import apply_matrix
from odn_lightning.data.crop_cache import PATCH_PAD, augmentation_margin, patch_geometry
from odn_lightning.data.records import ImageDecodeError
from odn_lightning.data.sampler import SampleKey
from odn_lightning.data.transforms import CropAugmentation, jitter_matrix
from odn_lightning.datatypes import collate_samples
from odn_lightning.imagenet import denormalise_image

from ..helpers.configs import TINY, compose_config

KEYS = ("image", "landmarks", "visible", "matrix", "target_px", "normalising_box", "occluder_mask")


def datamodule(tmp_path, root, *overrides, cache=True, cache_dir=None):
    cfg = compose_config(
        "train",
        [
            *TINY,
            f"data.root={root}",
            f"paths.log_dir={tmp_path / 'logs'}",
            f"data.cache={str(cache).lower()}",
            f"data.cache_dir={cache_dir or tmp_path / 'cache'}",
            *overrides,
        ],
        tmp_path / "run",
    )
    return instantiate(cfg.data)


def datasets(tmp_path, root, split, *overrides, **kwargs):
    """The split's dataset with the cache, and without."""
    cached = datamodule(tmp_path, root, *overrides, **kwargs)
    plain = datamodule(tmp_path, root, *overrides, cache=False)
    train = split == "train"
    return cached._dataset(split, train), plain._dataset(split, train)


@pytest.fixture
def own_root(tmp_path, synthetic_root):
    """A copy of the synthetic data that a test may change."""
    root = tmp_path / "data"
    # Not its crop cache: other tests' runs may be writing it while this copies.
    shutil.copytree(synthetic_root, root, ignore=shutil.ignore_patterns(".cache"))
    return root


def cache_files(folder):
    return sorted(p.name for p in folder.rglob("*") if p.is_file() and not p.name.endswith(".lock"))


def test_evaluation_samples_and_predictions_are_bit_identical(tmp_path, synthetic_root):
    for split in ("val", "challenging"):
        cached, plain = datasets(tmp_path, synthetic_root, split)
        assert cached.crops is not None and plain.crops is None
        assert cached.crops.exact and cached.occluder_masks
        for index in range(len(plain)):
            a, b = cached[index], plain[index]
            for key in KEYS:
                assert torch.equal(a[key], b[key]), (split, index, key)
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, stride=2), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten()
    ).eval()
    with torch.no_grad():
        for a, b in zip(
            DataLoader(cached, batch_size=4, collate_fn=collate_samples),
            DataLoader(plain, batch_size=4, collate_fn=collate_samples),
            strict=True,
        ):
            assert torch.equal(model(a["image"]), model(b["image"]))


def test_training_samples_match_up_to_resampling(tmp_path, synthetic_root):
    cached, plain = datasets(tmp_path, synthetic_root, "train")
    assert not cached.crops.exact
    assert cached.crops.patch_size > cached.image_size * 1.25 * 1.4
    differences = []
    for index in range(len(plain)):
        key = SampleKey(index, 1000 + index)
        a, b = cached[key], plain[key]
        for name in ("landmarks", "visible", "matrix", "target_px"):
            assert torch.equal(a[name], b[name]), (index, name)
        pixels_a = denormalise_image(a["image"].numpy()).astype(np.float64)
        pixels_b = denormalise_image(b["image"].numpy()).astype(np.float64)
        differences.append(np.abs(pixels_a - pixels_b).mean())
    # Resampling twice (photograph -> patch -> crop) instead of once: a few grey levels at most.
    assert np.mean(differences) < 3.0 and max(differences) < 6.0, differences


@pytest.mark.parametrize(
    "augmentation",
    [
        CropAugmentation(15, 0.1, 0.05, True),
        CropAugmentation(40, 0.25, 0.1, False),
        CropAugmentation(90, 0, 0),
    ],
)
def test_the_patch_holds_every_crop_the_augmentation_draws(augmentation):
    size, resolution = 64, 1.25
    margin = augmentation_margin(augmentation)
    side, to_patch = patch_geometry(size, margin, resolution)
    corners = np.array([[-0.5, -0.5], [size - 0.5, -0.5], [-0.5, size - 0.5], [size - 0.5, size - 0.5]])
    rng = np.random.default_rng(0)
    reach = 0.0
    for _ in range(2000):
        jitter, _ = jitter_matrix(rng, size, *vars(augmentation).values())
        # Training crop corners -> evaluation crop -> patch pixels.
        in_patch = apply_matrix((to_patch @ np.linalg.inv(jitter))[:2], corners)
        assert in_patch.min() >= PATCH_PAD - 0.5 - 1e-9
        assert in_patch.max() <= side - 1 - PATCH_PAD + 0.5 + 1e-9
        reach = max(reach, np.abs(in_patch - (side - 1) / 2).max())
    # Tight: the draws come close to the bound.
    assert reach > 0.95 * (side / 2 - PATCH_PAD)
    assert math.isclose(augmentation_margin(CropAugmentation()), 1.0)


def test_the_cache_is_reused_and_rebuilt_when_what_it_depends_on_changes(tmp_path, own_root, caplog):
    caplog.set_level(logging.INFO, logger="odn_lightning.data.crop_cache")

    def build(*overrides):
        caplog.clear()
        dataset = datamodule(tmp_path, own_root, *overrides)._dataset("val", False)
        (line,) = [r.getMessage() for r in caplog.records if "crop cache" in r.getMessage()]
        return dataset, line.split(":")[1].split()[0]  # built / reusing

    first, verb = build()
    assert verb == "built"
    assert build()[1] == "reusing"
    assert build("data.image_size=48")[1] == "built"
    assert build("data.crop_margin=0.3")[1] == "built"
    assert build("data.crop_box=landmarks", "data.image_size=48")[1] == "reusing"
    stems = {name.split(".")[0] for name in cache_files(tmp_path / "cache")}
    assert len(stems) == 3  # one entry per setting: switching back and forth builds nothing
    # An image touched: its size and mtime are in the key.
    image = own_root / "val" / "val_00001.jpg"
    stat = image.stat()
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert build()[1] == "built"
    # An image rewritten: the new crop holds the new pixels, the old build's files are gone.
    before = set(cache_files(tmp_path / "cache"))
    shutil.copyfile(own_root / "val" / "val_00002.jpg", image)
    dataset, verb = build()
    assert verb == "built" and len(set(cache_files(tmp_path / "cache")) - before) == 3  # image, matrix, mask
    assert len(cache_files(tmp_path / "cache")) == len(before)
    assert torch.equal(
        dataset[1]["image"], datamodule(tmp_path, own_root, cache=False)._dataset("val", False)[1]["image"]
    )
    assert not torch.equal(dataset[1]["image"], first[1]["image"])


def test_cache_false_writes_nothing(tmp_path, synthetic_root):
    dm = datamodule(tmp_path, synthetic_root, cache=False)
    dm.prepare_data()
    dm.setup("fit")
    assert all(dataset.crops is None for dataset in dm.datasets.values())
    next(iter(dm.train_dataloader()))
    assert not (tmp_path / "cache").exists()


def test_the_default_cache_dir_is_inside_the_data_root(tmp_path, own_root):
    cfg = compose_config(
        "train", [*TINY, f"data.root={own_root}", f"paths.log_dir={tmp_path}"], tmp_path / "run"
    )
    dm = instantiate(cfg.data)
    assert dm.hparams.cache and dm.cache_dir == own_root / ".cache"
    dm._dataset("val", False)
    assert [p.name for p in (own_root / ".cache").iterdir()] == ["synthetic"]


@pytest.mark.parametrize("policy", ["error", "skip"])
def test_an_image_that_fails_to_decode_behaves_as_without_the_cache(tmp_path, own_root, policy):
    bad = own_root / "val" / "val_00003.jpg"
    bad.write_bytes(bad.read_bytes()[:1500])  # the header survives, the pixels do not
    outcomes = []
    for cache in (True, False):
        out = tmp_path / f"run-{cache}"
        dm = datamodule(
            tmp_path, own_root, f"data.on_bad_sample={policy}", f"data.bad_samples_dir={out}", cache=cache
        )
        dataset = dm._dataset("val", False)
        assert (dataset.crops is not None) == cache
        assert dataset[2] is not None
        if policy == "error":
            with pytest.raises(ImageDecodeError) as err:
                dataset[3]
            outcomes.append(str(err.value))
        else:
            assert dataset[3] is None
            outcomes.append((out / "bad_samples_val.txt").read_text())
    assert outcomes[0] == outcomes[1] and "val_00003.jpg" in outcomes[0]


def test_the_files_are_memory_mapped_and_workers_map_them_again(tmp_path, synthetic_root):
    cached, plain = datasets(tmp_path, synthetic_root, "val")
    arrays = cached.crops.arrays
    assert all(isinstance(array, np.memmap) for array in arrays.values())
    assert set(arrays) == {"patches", "matrices", "masks"}
    assert arrays["patches"].dtype == np.uint8 and arrays["patches"].shape == (8, 64, 64, 3)
    assert arrays["matrices"].dtype == np.float64 and arrays["matrices"].shape == (8, 2, 3)
    assert len(pickle.dumps(cached)) < 0.5 * arrays["patches"].nbytes  # paths, not pixels
    copy = pickle.loads(pickle.dumps(cached))
    assert torch.equal(copy[5]["image"], plain[5]["image"])
    loader = DataLoader(cached, batch_size=8, num_workers=1, collate_fn=collate_samples)
    (batch,) = list(loader)
    expected = collate_samples([plain[i] for i in range(8)])
    assert torch.equal(batch["image"], expected["image"])
    assert torch.equal(batch["occluder_mask"], expected["occluder_mask"])


def test_processes_that_start_at_once_build_once(tmp_path, synthetic_root, caplog):
    from concurrent.futures import ThreadPoolExecutor

    from odn_lightning.data.crop_cache import open_crop_cache

    caplog.set_level(logging.INFO, logger="odn_lightning.data.crop_cache")
    dm = datamodule(tmp_path, synthetic_root, cache=False)
    dataset = dm._dataset("train", True)
    # flock locks open files, not processes: threads with files of their own contend as processes do.
    with ThreadPoolExecutor(3) as pool:
        opened = list(pool.map(lambda _: open_crop_cache(dataset, tmp_path / "cache", "synthetic"), range(3)))
    built = [r for r in caplog.records if "crop cache: built" in r.getMessage()]
    assert len(built) == 1
    assert len({tuple(sorted(c.files.values())) for c in opened}) == 1
