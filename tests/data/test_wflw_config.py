"""conf/data/wflw.yaml reads a tree in WFLW's published layout end to end."""

from __future__ import annotations

import numpy as np
import pytest
from hydra.utils import instantiate

from odn_lightning.data_check import check

from ..helpers.configs import compose_config
from ..helpers.formats import write_wflw


@pytest.fixture
def wflw_root(tmp_path):
    root = tmp_path / "WFLW"
    write_wflw(root)
    return root


def test_wflw_config_builds_98_point_samples_for_every_split(wflw_root, tmp_path):
    cfg = compose_config("train", ["data=wflw", f"data.root={wflw_root}", "data.image_size=64"], tmp_path)
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    datamodule.setup("test")
    sample = datamodule.datasets["train"][0]
    assert sample["image"].shape == (3, 64, 64) and sample["landmarks"].shape == (98, 2)
    # The evaluation crop is deterministic: a 25% margin keeps every point within 1 / 1.25 of the centre.
    assert datamodule.datasets["full"][0]["landmarks"].abs().max() <= 0.8 + 1e-5
    assert [len(datamodule.datasets[s]) for s in cfg.data.test_splits] == [4, 1, 1, 1, 1, 1, 1]


def test_wflw_data_check_reports_counts_off_the_published_ones(wflw_root, tmp_path, capsys):
    cfg = compose_config("data_check", ["data=wflw", f"data.root={wflw_root}"], tmp_path)
    with pytest.raises(SystemExit, match="0 bad faces and 8 split counts off"):
        check(cfg)
    printed = capsys.readouterr().out
    assert "split 'train' has 4 faces, the benchmark defines 7500" in printed
    # Every subset list holds the last face, which only `occlusion` flags in the full list; the
    # full list flags faces 2 and 3 for occlusion: data-check says where lists and flags part.
    subsets = "WFLW subsets vs the full test list's flags: "
    assert subsets + "occlusion: 1 listed, 2 flagged 'occlusion', 1 flagged face not listed" in printed
    assert subsets + "blur: 1 listed, 0 flagged 'blur', 1 listed face not flagged" in printed


def test_missing_wflw_annotations_name_the_file(tmp_path):
    cfg = compose_config("train", ["data=wflw", f"data.root={tmp_path}"], tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="list_98pt_rect_attr_train.txt"):
        instantiate(cfg.data).prepare_data()


def test_subset_faces_take_box_and_flags_from_the_full_list(wflw_root, tmp_path):
    cfg = compose_config("train", ["data=wflw", f"data.root={wflw_root}", "data.crop_box=dataset"], tmp_path)
    datamodule = instantiate(cfg.data)
    (face,) = datamodule.records("occlusion")
    (same,) = [r for r in datamodule.records("full") if r.image_path == face.image_path]
    np.testing.assert_array_equal(face.box, same.box)
    assert face.attributes == same.attributes and face.attributes["occlusion"]
    # So a subset face is cropped as in the full test set, with crop_box=dataset too.
    datamodule.prepare_data()
    datamodule.setup("test")
    full = datamodule.datasets["full"]
    index = next(i for i, r in enumerate(full.records) if r.image_path == face.image_path)
    assert (datamodule.datasets["occlusion"][0]["image"] == full[index]["image"]).all()
