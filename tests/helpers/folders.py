"""Module-scoped folders that go when their module's tests are done.

A module fixture's training run leaves 150-550 MB of checkpoints; kept until the session ends (as
`tmp_path_factory` keeps them) they add up to gigabytes, so each is removed at its fixture's teardown.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def passing_folder(factory: pytest.TempPathFactory, name: str) -> Iterator[Path]:
    """A fresh folder under the session's base, removed when the block ends."""
    folder = factory.mktemp(name)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
