"""Whether a run's metrics.json is the committed one, key for key (CI's check of `make train` against
experiments/quickstart/metrics.json: the suite is deterministic on CPU, so any difference is a change).

    python .ci/same_metrics.py RUN/metrics.json experiments/quickstart/metrics.json

Exit 0 when both hold the same keys with the same values; else exit 1, naming each key that differs
(committed -> this run), and what to do.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def differences(run: dict, committed: dict) -> list[str]:
    keys = sorted(set(run) | set(committed))
    missing = object()
    found = []
    for key in keys:
        old, new = committed.get(key, missing), run.get(key, missing)
        if old != new:
            show = lambda v: "(absent)" if v is missing else repr(v)  # noqa: E731
            found.append(f"{key}: {show(old)} -> {show(new)}")
    return found


def main(run_path: str, committed_path: str) -> int:
    run, committed = (json.loads(Path(p).read_text()) for p in (run_path, committed_path))
    found = differences(run, committed)
    if not found:
        print(f"{run_path}: every one of its {len(run)} metrics equals {committed_path}")
        return 0
    for line in found:
        print(f"  {line}")
    print(
        f"error: {run_path} differs from {committed_path} in {len(found)} of {len(set(run) | set(committed))} "
        "keys (listed above); a change that moves the quickstart's numbers re-runs it and commits its "
        "metrics.json, saying why, in the same commit",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
