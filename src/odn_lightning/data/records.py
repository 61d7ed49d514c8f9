"""The face record every reader returns, and the checks every record passes before it is used.

Readers (`formats/`) turn a benchmark's files into `FaceRecord`s; `checked` then confirms that each
record's image is readable and its points fit it. Bad content raises `AnnotationError` naming the
file (and line or row) and the reason; a reader or check given a `problems` list collects the bad
faces there instead and goes on, so that one pass reports every bad file (`report`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

# Per-landmark occlusion flags, a bit mask (`FaceRecord.occlusion`, `.occ` files): 0 visible.
OCCLUDED_BY_OBJECT = 1
SELF_OCCLUDED = 2


class AnnotationError(ValueError):
    """An annotation or image that cannot be used; the message names the file and the reason."""


@dataclass(frozen=True)
class FaceRecord:
    """One annotated face: where its image is and what the dataset says about it."""

    image_path: Path
    landmarks: np.ndarray  # (L, 2) float32, 0-based pixels
    occlusion: np.ndarray | None = None  # (L,) uint8 bit mask, None where unknown
    mask_path: Path | None = None  # occluder mask image (synthetic data), 255 on occluders
    # Face box (x_min, y_min, x_max, y_max) in 0-based pixels, as the dataset gives it; None if absent.
    box: np.ndarray | None = None
    # Where the landmarks were read ("a.pts", "list.txt: line 7"), for reports; None: the image path.
    annotation: str | None = None
    # Benchmark attribute flags by name (WFLW's six subsets); None if the benchmark has none.
    attributes: dict[str, bool] | None = None
    # HRNet-Facial crop parameters: box side / 200, box centre (x, y), and AFLW's normalising box size.
    scale: float | None = None
    center: np.ndarray | None = None
    box_size: float | None = None

    @property
    def visible(self) -> np.ndarray | None:
        return None if self.occlusion is None else self.occlusion == 0

    @property
    def source(self) -> str:
        """Where the face was read, for messages: the annotation, else the image."""
        return self.annotation or str(self.image_path)


def report(err: AnnotationError, problems: list[AnnotationError] | None) -> None:
    """Raise a reading problem, or collect it when the caller gathers every problem in one pass."""
    if problems is None:
        raise err
    problems.append(err)


def image_dimensions(path: Path, decode: bool = False) -> tuple[int, int]:
    """(width, height) of an image file from its header; `decode` also decodes the pixels, which
    finds truncated files whose header is intact (slower: data-check does it, training does not)."""
    if not path.is_file():
        raise AnnotationError(f"{path}: image file is missing")
    try:
        with Image.open(path) as image:
            if decode:
                image.load()
            return image.size
    except (OSError, SyntaxError, ValueError) as err:
        raise AnnotationError(f"{path}: not a readable image ({err})") from err


def check_landmarks(
    source: Path | str, landmarks: np.ndarray, num_landmarks: int | None, dimensions: tuple[int, int]
) -> None:
    """Point count, finiteness, and points far outside the image (over half the image beyond an edge)."""
    if num_landmarks is not None and len(landmarks) != num_landmarks:
        raise AnnotationError(f"{source}: {len(landmarks)} landmarks, expected {num_landmarks}")
    if not np.isfinite(landmarks).all():
        raise AnnotationError(f"{source}: landmarks must be finite numbers")
    width, height = dimensions
    low, high = -0.5 * np.array([width, height]), 1.5 * np.array([width, height])
    outside = np.any((landmarks < low) | (landmarks > high), axis=1)
    if outside.any():
        raise AnnotationError(
            f"{source}: {int(outside.sum())} points far outside the {width}x{height} image "
            f"(first: point {int(np.argmax(outside))} at {landmarks[np.argmax(outside)].round(1).tolist()})"
        )


def checked(
    records: list[FaceRecord],
    num_landmarks: int | None,
    problems: list[AnnotationError] | None = None,
    decode_images: bool = False,
) -> list[FaceRecord]:
    """The records whose image is readable and whose points fit it; the others are reported."""
    good = []
    for record in records:
        try:
            dimensions = image_dimensions(record.image_path, decode_images)
            check_landmarks(record.source, record.landmarks, num_landmarks, dimensions)
        except AnnotationError as err:
            report(err, problems)
            continue
        good.append(record)
    return good
