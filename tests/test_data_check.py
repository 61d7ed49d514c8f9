from __future__ import annotations

from odn_lightning.data_check import check

from .helpers.configs import TINY_SYNTHETIC, compose_config


def test_data_check_counts_every_split(tmp_path, synthetic_root):
    cfg = compose_config("data_check", [f"data.root={synthetic_root}", *TINY_SYNTHETIC], tmp_path)
    counts = check(cfg)
    assert counts == {"train": 24, "val": 8, "common": 8, "challenging": 4, "full": 12}


def test_data_check_reports_counts_off_the_benchmark_and_bad_files(tmp_path, capsys):
    import cv2
    import numpy as np
    import pytest

    from odn_lightning.data.formats.w300 import write_pts

    root = tmp_path / "300W"
    for folder in ("lfpw/trainset", "lfpw/testset", "helen/trainset", "helen/testset", "afw", "ibug"):
        (root / folder).mkdir(parents=True)
        cv2.imwrite(str(root / folder / "a.jpg"), np.zeros((64, 64, 3), dtype=np.uint8))
        write_pts(root / folder / "a.pts", np.full((68, 2), 30.0))
    write_pts(root / "ibug" / "orphan.pts", np.full((68, 2), 30.0))
    cfg = compose_config("data_check", ["data=w300", f"data.root={root}"], tmp_path / "out")
    with pytest.raises(SystemExit, match="1 bad faces and 4 split counts off"):
        check(cfg)
    printed = capsys.readouterr().out
    assert "orphan.pts: annotation without an image" in printed
    assert "split 'train' has 3 faces, the benchmark defines 3148" in printed
