"""eval on COFW-68 writes the run's predictions in the benchmark's own result format, each face at
its benchmark index, ready for the benchmark's Main.m (and read back by score and figure4)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from odn_lightning.eval import evaluate
from odn_lightning.evaluation import cofw68_benchmark as benchmark
from odn_lightning.evaluation.benchmark_export import benchmark_indices
from odn_lightning.evaluation.report_files import read_predictions
from odn_lightning.evaluation.scoring import PredictionsError
from odn_lightning.figure4 import run_figure4

from ..helpers.configs import compose_config
from ..helpers.formats import write_300w, write_cofw, write_cofw68

FACES = 4


def test_faces_are_matched_to_their_benchmark_index_by_ground_truth():
    truth = np.random.default_rng(0).uniform(0, 100, (5, 68, 2))
    assert benchmark_indices(truth[[3, 0, 4]], truth).tolist() == [4, 1, 5]
    with pytest.raises(PredictionsError, match="matches no annotation file"):
        benchmark_indices(truth[[1]] + 0.5, truth)


def test_eval_on_cofw68_writes_the_benchmarks_result_file(trained_run, tmp_path):
    root = tmp_path / "data"
    write_300w(root / "300W")
    write_cofw(root / "COFW" / "COFW_test_color.mat", "test", FACES)
    write_cofw68(root / "COFW68" / "COFW68_Data" / "test_annotations", FACES)
    out = tmp_path / "eval"
    cfg = compose_config(
        "eval",
        [
            f"ckpt_path={trained_run / 'checkpoints' / 'last.ckpt'}",
            "data=cofw68",
            f"data.root={root}",
            "data.expected_counts=null",
            "trainer.accelerator=cpu",
            "trainer.enable_progress_bar=false",
        ],
        out,
    )
    evaluate(cfg, ["data=cofw68"])
    rows = read_predictions(out / "predictions.csv")["cofw68"]
    results = benchmark.read_results(out / "cofw68_results.txt", num_faces=FACES)
    assert results.has_result.all()
    order = np.argsort(rows["index"])
    # Written 1-based with 3 decimals, read back 0-based: predictions.csv's points to 5e-4 px.
    np.testing.assert_allclose(results.points, rows["predicted"][order], atol=6e-4)
    # The trained ODN carries a calibration (its validation split has flags): the states are its
    # calibrated probabilities at the decision threshold, never the raw 1 - P.
    assert results.occluded.tolist() == (rows["probability"][order] >= 0.5).tolist()
    # The benchmark's evaluator reads it (here: the suite's port of it, through figure4).
    run_figure4(
        compose_config(
            "figure4",
            [f"benchmark_root={root / 'COFW68'}", f"runs=[{out}]", "labels=[ODN]", f"expected_faces={FACES}"],
            tmp_path / "figure4",
        )
    )
    numbers = json.loads((tmp_path / "figure4" / "figure4.json").read_text())
    assert list(numbers) == ["ODN"]  # no published results in this checkout
    metrics = json.loads((out / "metrics.json").read_text())
    # data=cofw68 normalises by the outer eye corners: the benchmark's inter_ocular/all NME is eval's.
    assert numbers["ODN"]["inter_ocular/all/nme"] == pytest.approx(metrics["test/cofw68/nme"], rel=1e-4)
    assert (tmp_path / "figure4" / "figure4.png").stat().st_size > 0
