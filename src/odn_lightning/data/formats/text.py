"""Reading annotation text: whole files and their numbers, with errors that name the file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..records import AnnotationError


def read_annotation_text(path: Path) -> str:
    """The text of an annotation file; unreadable files raise AnnotationError naming them."""
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise AnnotationError(f"{path}: cannot read ({err})") from err


def finite_floats(path: Path, where: str, tokens: Sequence[str]) -> np.ndarray:
    """`tokens` as float64; a non-number or non-finite value raises naming the file and `where`."""
    try:
        values = np.asarray([float(t) for t in tokens], dtype=np.float64)
    except ValueError:
        raise AnnotationError(f"{path}: {where}: non-numeric value") from None
    if not np.isfinite(values).all():
        raise AnnotationError(f"{path}: {where}: values must be finite")
    return values
