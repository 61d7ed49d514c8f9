"""Each conf/data option reads a small tree in its dataset's exact published layout: the splits
form as the benchmark defines them, every split yields samples, and data-check reports the counts."""

from __future__ import annotations

import pytest
from hydra.utils import instantiate
from omegaconf import open_dict

from odn_lightning.data_check import check

from ..helpers.configs import compose_config
from ..helpers.formats import (
    W300_FOLDERS,
    write_300w,
    write_aflw,
    write_cofw,
    write_cofw68,
    write_hrnet,
)

W300_SPLITS = {"train": 6, "val": 5, "common": 3, "challenging": 2, "full": 5}
WFLW_TESTS = ("largepose", "expression", "illumination", "makeup", "occlusion", "blur")


def tree_300w(root):
    write_300w(root)
    return W300_SPLITS


def tree_cofw(root):
    write_cofw(root / "COFW_train_color.mat", "train", 3)
    write_cofw(root / "COFW_test_color.mat", "test", 2)
    return {"train": 3, "val": 2, "test": 2}


def tree_cofw68(root):
    write_300w(root / "300W")
    write_cofw(root / "COFW" / "COFW_test_color.mat", "test", 3)
    write_cofw68(root / "COFW68" / "COFW68_Data" / "test_annotations", 3)
    return {**W300_SPLITS, "cofw68": 3}


def tree_aflw(root):
    # 7 faces, `ra` reversed, the first 4 in that order train (num_train=4 below); of the 3 test
    # faces (0-based 2, 1, 0), face 1 hides a point, so 2 are frontal.
    write_aflw(root, 7, hidden=(1,))
    return {"train": 4, "val": 3, "full": 3, "frontal": 2}


def tree_w300_hrnet(root):
    names = {"train": 4, "valid": 3, "valid_common": 2, "valid_challenge": 1}
    write_hrnet(root, {f"face_landmarks_300w_{k}.csv": n for k, n in names.items()}, 68)
    return {"train": 4, "val": 3, "common": 2, "challenging": 1, "full": 3}


def tree_aflw_hrnet(root):
    names = {"train": 3, "test": 2, "test_frontal": 1}
    write_hrnet(root, {f"face_landmarks_aflw_{k}.csv": n for k, n in names.items()}, 19, box_size=True)
    return {"train": 3, "val": 2, "full": 2, "frontal": 1}


def tree_wflw_hrnet(root):
    names = {"train": 3, "test": 2} | {f"test_{subset}": 1 for subset in WFLW_TESTS}
    write_hrnet(root, {f"face_landmarks_wflw_{k}.csv": n for k, n in names.items()}, 98)
    subsets = dict.fromkeys(("pose", "expression", "illumination", "makeup", "occlusion", "blur"), 1)
    return {"train": 3, "val": 2, "full": 2, **subsets}


TREES = {
    "w300": tree_300w,
    "cofw": tree_cofw,
    "cofw68": tree_cofw68,
    "aflw": tree_aflw,
    "w300_hrnet": tree_w300_hrnet,
    "aflw_hrnet": tree_aflw_hrnet,
    "wflw_hrnet": tree_wflw_hrnet,
}
POINTS = {
    "w300": 68,
    "cofw": 29,
    "cofw68": 68,
    "aflw": 19,
    "w300_hrnet": 68,
    "aflw_hrnet": 19,
    "wflw_hrnet": 98,
}


def config(name, root, out, task="train"):
    cfg = compose_config(
        task, [f"data={name}", f"data.root={root}", "data.image_size=32", "data.num_workers=0"], out
    )
    if name == "aflw":  # the tiny tree has 7 faces, not 20000 + 4386
        with open_dict(cfg):
            for sources in cfg.data.splits.values():
                for source in sources:
                    source.num_train = 4
    return cfg


@pytest.mark.parametrize("name", sorted(TREES))
def test_config_forms_the_benchmark_splits_from_its_published_layout(name, tmp_path):
    root = tmp_path / "root"
    expected = TREES[name](root)
    cfg = config(name, root, tmp_path / "out")
    assert set(cfg.data.splits) == set(expected)
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup()
    assert {split: len(datamodule.records(split)) for split in cfg.data.splits} == expected
    assert set(datamodule.datasets) == {cfg.data.train_split, cfg.data.val_split, *cfg.data.test_splits}
    for split, dataset in datamodule.datasets.items():
        sample = dataset[0]
        assert sample["image"].shape == (3, 32, 32), split
        assert sample["landmarks"].shape == (POINTS[name], 2), split
        if split != cfg.data.train_split:  # the deterministic crop keeps every point inside
            assert sample["landmarks"].abs().max() < 1.0, split


@pytest.mark.parametrize("name", ["w300", "cofw", "aflw"])
def test_data_check_prints_each_split_and_its_published_count(name, tmp_path, capsys):
    root = tmp_path / "root"
    found = TREES[name](root)
    cfg = config(name, root, tmp_path / "out", task="data_check")
    with pytest.raises(SystemExit, match=f"0 bad faces and {len(cfg.data.expected_counts)} split counts off"):
        check(cfg)
    printed = capsys.readouterr().out
    for split, published in cfg.data.expected_counts.items():
        assert (
            f"count: split '{split}' has {found[split]} faces, the benchmark defines {published}" in printed
        )


def test_300w_layout_with_published_counts_passes_data_check(tmp_path, capsys):
    root = tmp_path / "300W"
    write_300w(root)
    cfg = config("w300", root, tmp_path / "out", task="data_check")
    with open_dict(cfg):
        cfg.data.expected_counts = dict(W300_SPLITS)
        del cfg.data.expected_counts["val"]
    assert check(cfg) == W300_SPLITS
    assert "count:" not in capsys.readouterr().out


def test_w300_splits_are_the_published_definition(tmp_path):
    splits = config("w300", tmp_path, tmp_path / "out").data.splits
    assert list(splits.train) == ["lfpw/trainset", "helen/trainset", "afw"]
    assert list(splits.common) == ["lfpw/testset", "helen/testset"]
    assert list(splits.challenging) == ["ibug"]
    assert list(splits.full) == [*splits.common, *splits.challenging]
    assert {s for sources in splits.values() for s in sources} == set(W300_FOLDERS)
