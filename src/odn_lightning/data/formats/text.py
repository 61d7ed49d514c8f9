"""Reading annotation text: whole files and their numbers, with errors that name the file."""

from __future__ import annotations

import csv
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


def read_csv_rows(path: Path) -> list[tuple[int, list[str]]]:
    """A CSV annotation file's non-blank rows with their row numbers in the file: a header, then at
    least one face, else AnnotationError naming the file."""
    try:
        # utf-8-sig: a spreadsheet's byte-order mark is not part of the first column's name.
        with path.open(newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise AnnotationError(f"{path}: cannot read ({err})") from err
    numbered = [(n, row) for n, row in enumerate(rows, start=1) if any(cell.strip() for cell in row)]
    if len(numbered) < 2:
        raise AnnotationError(f"{path}: no faces (a header row and at least one face are expected)")
    return numbered


def finite_floats(path: Path, where: str, tokens: Sequence[str]) -> np.ndarray:
    """`tokens` as float64; a non-number or non-finite value raises naming the file and `where`."""
    try:
        values = np.asarray([float(t) for t in tokens], dtype=np.float64)
    except ValueError:
        raise AnnotationError(f"{path}: {where}: non-numeric value") from None
    if not np.isfinite(values).all():
        raise AnnotationError(f"{path}: {where}: values must be finite")
    return values
