"""The entry points as a user runs them: a subprocess, its exit code, stdout and stderr."""

from __future__ import annotations

import os
import subprocess
import sys


def run_cli(module: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )
