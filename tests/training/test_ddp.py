"""DDP on the CPU (`trainer=ddp_cpu`: two spawned processes, gloo). It fits and tests as one process
does; SIGTERM to the launching process, or to every process of the run, stops it cleanly (the workers
stop before the same batch, save `last.ckpt`, nothing is left running, exit 143 with the one-line
message), and the same command with `ckpt_path=last` ends with the uninterrupted run's metrics and
weights."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from odn_lightning.eval import evaluate
from odn_lightning.train import train

from ..helpers.cli import run_cli
from ..helpers.configs import LIMITS, TINY, compose_config
from ..helpers.folders import passing_folder

# One epoch of 3 steps per process (24 faces, batches of 4, 2 processes); every test face, split over
# the processes.
DDP = [
    *TINY,
    *LIMITS[:3],
    "trainer.limit_test_batches=1.0",
    "trainer=ddp_cpu",
    "extras.print_config=false",
]
STOP_AT = 1  # the signal comes after step 1: the run stops before step 2, inside its epoch


def overrides(root: Path, logs: Path) -> list[str]:
    return [*DDP, f"data.root={root}", f"paths.log_dir={logs}"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, synthetic_root) -> Iterator[tuple[Path, dict]]:
    with passing_folder(tmp_path_factory, "ddp") as folder:
        run = folder / "logs" / "train" / "runs" / "a"
        metrics = train(compose_config("train", overrides(synthetic_root, folder / "logs"), run))
        yield run, metrics


@pytest.mark.slow
def test_ddp_cpu_fits_with_two_processes_and_tests_like_one(uninterrupted, tmp_path):
    run, metrics = uninterrupted
    assert (run / "checkpoints" / "last.ckpt").is_file()
    record = json.loads((run / "run.json").read_text())  # the workers' checkpoints, named by the launcher
    assert record["checkpoint/last"] == str(run / "checkpoints" / "last.ckpt")
    assert Path(record["checkpoint/best"]).parent == run / "checkpoints"
    (best,) = (run / "checkpoints").glob("best-*.ckpt")
    single = evaluate(
        compose_config(
            "eval", [f"ckpt_path={best}", "trainer.enable_progress_bar=false", "pictures=0"], tmp_path / "ev"
        )
    )
    for split in ("common", "challenging", "full"):
        for name in (
            "nme",
            "auc_08",
            "fr_10",
            "nme_occluded",
            "occluder_auroc",
            "occluder_auroc_face",
            "face_auroc",
            "landmark_occlusion_auroc",
            "landmark_occlusion_precision",
            "landmark_occlusion_recall",
            "landmark_occlusion_recall_at_p80",
            "landmark_occlusion_ap",
        ):
            key = f"test/{split}/{name}"
            assert metrics[key] == pytest.approx(single[key], rel=1e-5, abs=1e-6), key
    # csv/metrics.csv keeps the fit's rows: the test stage's new processes start a new CSV logger,
    # whose Lightning default deletes the file it finds.
    header, *rows = (run / "csv" / "metrics.csv").read_text().splitlines()
    columns = header.split(",")
    logged = [dict(zip(columns, row.split(","), strict=True)) for row in rows]
    assert any(row["val/nme"] for row in logged) and any(row["test/full/nme"] for row in logged)
    # Both processes' faces reach one predictions.csv, each face once.
    rows = (run / "predictions.csv").read_text().splitlines()
    assert len(rows) == 1 + 8 + 4 + 12
    assert (metrics["test/full/faces"], metrics["test/full/faces_in_split"]) == (12, 12)
    # One batch of 2 faces per process and split: 4 of common's 8 faces, counted over both processes
    # and said to be a part.
    cut_overrides = [
        "trainer=ddp_cpu",
        "trainer.limit_test_batches=1",
        "data.eval_batch_size=2",
        "pictures=0",
    ]
    cut = evaluate(
        compose_config("eval", [f"ckpt_path={best}", *cut_overrides], tmp_path / "ev_cut"), cut_overrides
    )
    assert (cut["test/common/faces"], cut["test/common/faces_in_split"]) == (4, 8)
    assert "common (4 of 8 faces)" in (tmp_path / "ev_cut" / "report.md").read_text()


def alive(pid: int) -> bool:
    """Whether the process runs (a zombie, exited but not yet reaped, does not)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["sigterm_launcher", "sigterm_every"])
def test_sigterm_stops_every_process_saves_and_a_resume_ends_as_the_uninterrupted_run(
    uninterrupted, synthetic_root, tmp_path, fault
):
    runs = tmp_path / "logs" / "train" / "runs"
    run = runs / "killed"
    fault_options = [
        "+callbacks.fault._target_=tests.helpers.faults.FaultAtStep",
        f"+callbacks.fault.step={STOP_AT}",
        f"+callbacks.fault.fault={fault}",
    ]
    killed = run_cli(
        "odn_lightning.train",
        *overrides(synthetic_root, tmp_path / "logs"),
        f"hydra.run.dir={run}",
        *fault_options,
    )
    stopped_after_s = time.time() - float((run / "sigterm_sent_at").read_text())
    assert killed.returncode == 143, killed.stderr[-3000:]
    assert stopped_after_s < 60
    last_line = killed.stderr.strip().splitlines()[-1]
    assert last_line == (
        f"error: SIGTERM at epoch 0, step {STOP_AT}: saved {run / 'checkpoints' / 'last.ckpt'}; "
        "continue with the same command and ckpt_path=last"
    ), killed.stderr[-3000:]
    assert "Traceback" not in killed.stderr
    assert "LeafSpec" not in killed.stderr  # the workers are quiet too (training.quiet)
    saved = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["global_step"] == STOP_AT
    workers = [int((run / f"worker_pid_{rank}").read_text()) for rank in (0, 1)]
    assert not [pid for pid in workers if alive(pid)], "a worker outlived the run"
    assert not (run / "metrics.json").exists()

    if fault == "sigterm_every":
        return  # the resume is the same as after sigterm_launcher: once is enough
    # The rest of the fit (test=false: the weights decide the test, and another DDP launch costs ~10 s).
    resumed = train(
        compose_config(
            "train",
            [*overrides(synthetic_root, tmp_path / "logs"), "ckpt_path=last", "test=false"],
            runs / "resumed",
        )
    )
    whole = uninterrupted[1]
    assert resumed == {key: whole[key] for key in resumed}
    assert {"train/loss", "val/nme"} <= set(resumed)
    ends = [torch.load(r / "checkpoints" / "last.ckpt", weights_only=True) for r in (run, uninterrupted[0])]
    assert ends[0]["global_step"] == ends[1]["global_step"] == 3
    for name, weight in ends[1]["state_dict"].items():  # bit for bit (a calibration may hold NaN)
        torch.testing.assert_close(ends[0]["state_dict"][name], weight, rtol=0, atol=0, equal_nan=True)
