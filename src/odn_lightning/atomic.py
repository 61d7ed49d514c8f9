"""Outputs written whole or not at all.

Each file is written to a temporary file in its own folder, flushed to disk, then renamed onto its
name: a run killed midway, or a full disk, leaves the previous file (or none), never half of one.
Text is UTF-8 with `surrogateescape`, so a file name that is not UTF-8 (Python holds its bytes as
surrogate escapes) is written back byte for byte. A failure raises `OutputWriteError`: one line naming
the file, the cause and what to do.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO

ENCODING = "utf-8"
ERRORS = "surrogateescape"


class OutputWriteError(OSError):
    """An output file or its folder could not be written; `str()` is one line saying what to do."""

    def __init__(self, message: str, path: Path, cause: OSError | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.errno = cause.errno if cause is not None else None


def shown(path: str | os.PathLike) -> str:
    """A path as one printable line: quoted and escaped if it holds a newline or undecodable bytes."""
    text = os.fspath(path)
    return text if text.isprintable() else ascii(text)


def _cause(err: BaseException) -> str:
    if isinstance(err, OSError) and err.errno is not None:
        text = os.strerror(err.errno)
        return text[:1].lower() + text[1:]
    return " ".join(str(err).split()) or type(err).__name__


def _advice(err: BaseException) -> str:
    code = getattr(err, "errno", None)
    if code in (errno.ENOSPC, errno.EDQUOT):
        return "free space on that disk or choose another output folder (paths.log_dir)"
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "make the folder writable or choose another output folder (paths.log_dir)"
    return "check that folder, or choose another output folder (paths.log_dir)"


def _error(path: Path, err: OSError, folder: Path | None = None) -> OutputWriteError:
    where = (
        f"cannot create folder {shown(folder)} for {shown(path)}" if folder else f"cannot write {shown(path)}"
    )
    return OutputWriteError(f"{where}: {_cause(err)}; {_advice(err)}", path, err)


def make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _error(path, err, Path(err.filename) if err.filename else path.parent) from err


def _sync_folder(folder: Path) -> None:
    """Make the rename durable; not every file system lets a folder be opened or synced."""
    with suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", newline: str | None = None) -> Iterator[IO]:
    """A file object (`mode` "w" text, "wb" bytes) whose content replaces `path` only once the block
    ends without an error; on an error the temporary file is removed and `path` is left as it was.
    An OSError (disk full, permissions) becomes an OutputWriteError; other errors pass unchanged."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes with mode 'w' or 'wb', not {mode!r}")
    path = Path(path)
    make_parent(path)
    # Unique in the folder (process id and random part); [:200] keeps the name within NAME_MAX.
    temporary = path.with_name(f".{path.name[:200]}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        # Mode 0o666 less the umask, as a plain open() would give the final file.
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    except OSError as err:
        raise _error(path, err) from err
    try:
        text = {"encoding": ENCODING, "errors": ERRORS, "newline": newline} if mode == "w" else {}
        with open(fd, mode, **text) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException as err:
        with suppress(OSError):
            os.unlink(temporary)
        if isinstance(err, OSError) and not isinstance(err, OutputWriteError):
            raise _error(path, err) from err
        raise
    _sync_folder(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` (UTF-8, surrogate escapes kept as their bytes) to `path` atomically."""
    with atomic_open(path, "w") as file:
        file.write(text)
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically."""
    with atomic_open(path, "wb") as file:
        file.write(data)
    return Path(path)
