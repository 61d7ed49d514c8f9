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


def user_error_in_process(task, cfg, capsys) -> tuple[int, list[str]]:
    """An entry point's task run in this process through its own error handling, as `main` runs it:
    its exit code and the lines it wrote to stderr. For what the process boundary does not change (the
    one-line message and its code); a subprocess costs seconds of imports per call."""
    import pytest

    from odn_lightning import runs

    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        runs.run_reporting_user_errors(task, cfg)
    return exit_info.value.code, capsys.readouterr().err.strip().splitlines()
