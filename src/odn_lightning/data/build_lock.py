"""An exclusive lock on a file kept in place, held while a block builds something other processes
would build too (the crop cache): fcntl's where it exists; elsewhere a file created with O_EXCL and
removed at the end, waited for at most `wait_s` before the waiter says it may be stale. (The synthetic
faces' generation lock, `synthetic.storage`, also removes its file at the end, so it re-checks the file
it locked; this one's file stays.)
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from ..atomic import shown

log = logging.getLogger(__name__)


class BuildLockError(RuntimeError):
    """The lock file (no fcntl) stayed in place longer than the wait: another process builds, or one
    was killed while it did."""


@contextmanager
def build_lock(
    path: Path, what: str, wait_s: float, error: type[BuildLockError] = BuildLockError
) -> Iterator[None]:
    """Hold the lock on `path` while the block runs; `what` names what is built, for the messages;
    `error`, the class of the stale-lock error."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        started = time.monotonic()
        while True:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                break
            except FileExistsError:
                if time.monotonic() - started > wait_s:
                    raise error(
                        f"{shown(path)} has been in place for {wait_s:.0f} s: another process is "
                        f"building {what}, or one was killed while it did; if none is running, "
                        "delete that file and run again"
                    ) from None
                time.sleep(0.5)
        os.close(fd)
        try:
            yield
        finally:
            with suppress(OSError):
                os.unlink(path)
        return
    with open(path, "a") as file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info(f"waiting for another process building {what}")
            fcntl.flock(file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)
