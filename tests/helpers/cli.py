"""The entry points as a user runs them: a process of their own, its exit code, stdout and stderr.

`run_cli` starts `python -m MODULE ARGS` as a child of a fork server that has imported the suite,
Lightning and torch once (`multiprocessing`'s forkserver, preloaded): each command is still a separate
process, run as `__main__` by `runpy` as `python -m` runs it, with its own exit code, signals and output,
but without the 5-7 s of imports a new interpreter pays (about 20 of the suite's commands start so).
The server never runs torch itself, so forking from it is safe. `fresh=True`, or an `env` change (a
library may read it at import), starts a new interpreter instead, as a user's shell does.
"""

from __future__ import annotations

import multiprocessing
import os
import runpy
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

# Imported once by the fork server: what the commands the tests start import anyway.
PRELOADED = ["odn_lightning.train", "odn_lightning.eval", "odn_lightning.predict", "odn_lightning.export"]
_SERVER = multiprocessing.get_context("forkserver")
_SERVER.set_forkserver_preload(PRELOADED)
TIMEOUT_S = 300


def _run_module(
    module: str, args: list[str], stdout: str, stderr: str, cwd: str | None, runtime_env: dict
) -> None:
    """In the forked child: fds 1 and 2 into the files, the folder and variables asked for, then the
    module as `python -m` runs it."""
    if cwd is not None:
        os.chdir(cwd)
    for name, value in runtime_env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    for fd, path in ((1, stdout), (2, stderr)):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(target, fd)
        os.close(target)
    sys.stdout = open(1, "w", encoding="utf-8", errors="replace", closefd=False, buffering=1)  # noqa: SIM115
    sys.stderr = open(2, "w", encoding="utf-8", errors="replace", closefd=False, buffering=1)  # noqa: SIM115
    sys.argv = [module, *args]
    code = 0
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as done:
        if done.code is None or isinstance(done.code, int):
            code = done.code or 0
        else:  # sys.exit("message"), as the interpreter does: the message, exit code 1
            print(done.code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run_cli(
    module: str,
    *args: str,
    env: dict | None = None,
    fresh: bool = False,
    cwd: str | Path | None = None,
    runtime_env: dict[str, str | None] | None = None,
) -> subprocess.CompletedProcess:
    """`env`: variables a library may read at import (a new interpreter); `runtime_env`: variables the
    command reads when it runs, set (None: unset) in the forked child; `cwd`: the folder it starts in."""
    if fresh or env:
        return subprocess.run(
            [sys.executable, "-m", module, *args],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            cwd=cwd,
            env={
                name: value
                for name, value in {**os.environ, **(env or {}), **(runtime_env or {})}.items()
                if value is not None
            },
        )
    with tempfile.TemporaryDirectory(prefix="cli-") as folder:
        out, err = Path(folder, "stdout"), Path(folder, "stderr")
        child = _SERVER.Process(
            target=_run_module,
            args=(
                module,
                list(args),
                str(out),
                str(err),
                None if cwd is None else str(cwd),
                runtime_env or {},
            ),
        )
        child.start()
        child.join(TIMEOUT_S)
        if child.is_alive():
            child.kill()
            child.join()
            raise subprocess.TimeoutExpired([module, *args], TIMEOUT_S)
        stdout, stderr = (path.read_text(errors="replace") if path.exists() else "" for path in (out, err))
        return subprocess.CompletedProcess([module, *args], child.exitcode, stdout, stderr)


def user_error_in_process(capsys, task, *args) -> tuple[int, list[str]]:
    """An entry point's task run on `args` in this process through its own error handling, as `main`
    runs it: its exit code and the lines it wrote to stderr. For what the process boundary does not change (the
    one-line message and its code); a subprocess costs seconds of imports per call."""
    import pytest

    from odn_lightning import runs

    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        runs.run_reporting_user_errors(task, *args)
    return exit_info.value.code, capsys.readouterr().err.strip().splitlines()
