"""CI's check of `make train` against the committed quickstart (.ci/same_metrics.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[1] / ".ci" / "same_metrics.py"


def run(tmp_path: Path, run_metrics: dict, committed: dict) -> subprocess.CompletedProcess:
    (tmp_path / "run.json").write_text(json.dumps(run_metrics))
    (tmp_path / "committed.json").write_text(json.dumps(committed))
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path / "run.json"), str(tmp_path / "committed.json")],
        capture_output=True,
        text=True,
    )


def test_equal_metrics_pass_and_any_difference_fails_naming_the_keys(tmp_path):
    committed = {"test/common/nme": 0.0407, "test/full/nme": 0.075, "lr-AdamW": 3e-7}
    assert run(tmp_path, dict(committed), committed).returncode == 0
    # A changed default (say the learning rate) moves numbers: each key that differs is named.
    moved = {**committed, "test/common/nme": 0.0412, "extra": 1.0}
    del moved["lr-AdamW"]
    result = run(tmp_path, moved, committed)
    assert result.returncode == 1
    assert "test/common/nme: 0.0407 -> 0.0412" in result.stdout
    assert "lr-AdamW: 3e-07 -> (absent)" in result.stdout and "extra: (absent) -> 1.0" in result.stdout
    assert "test/full/nme" not in result.stdout
    assert "differs from" in result.stderr and "in 3 of 4 keys" in result.stderr


def test_ci_runs_the_quickstart_against_its_committed_result():
    ci = (SCRIPT.parent / "run").read_text()
    assert "make test" in ci and "make train" in ci
    assert "same_metrics.py logs/ci/quickstart/metrics.json experiments/quickstart/metrics.json" in ci
