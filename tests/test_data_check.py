from __future__ import annotations

from odn_lightning.data_check import check

from .conftest import TINY, compose_config


def test_data_check_counts_every_split(tmp_path, synthetic_root):
    cfg = compose_config("data_check", [f"data.root={synthetic_root}", *TINY[4:9]], tmp_path)
    counts = check(cfg)
    assert counts == {"train": 24, "val": 8, "common": 8, "challenging": 4, "full": 12}
