"""Fixture folders: module-scoped ones that go when their module's tests are done, and session-wide
ones built once for all pytest-xdist workers.

A module fixture's training run leaves 150-550 MB of checkpoints; kept until the session ends (as
`tmp_path_factory` keeps them) they add up to gigabytes, so each is removed at its fixture's teardown.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from filelock import FileLock


@contextmanager
def passing_folder(factory: pytest.TempPathFactory, name: str) -> Iterator[Path]:
    """A fresh folder under the session's base, removed when the block ends."""
    folder = factory.mktemp(name)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def built_once(factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """A folder that `build` fills once per session, also under pytest-xdist: the first worker to ask
    builds it under a lock, the others wait and reuse it (pytest-xdist's recipe for session fixtures).
    Without xdist, a folder of the session's base."""
    shared = factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the session's base, above every worker's own
    folder, done = shared / name, shared / f"{name}.built"
    with FileLock(shared / f"{name}.lock"):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            done.touch()
    return folder
