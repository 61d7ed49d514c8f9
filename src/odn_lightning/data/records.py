"""The face record every reader returns, and the checks every record passes before it is used.

Readers (`formats/`) turn a benchmark's files into `FaceRecord`s; `checked` then confirms that each
record's image is readable and its points fit it. Bad content raises `AnnotationError` naming the
file (and line or row) and the reason; a reader or check given a `problems` list collects the bad
faces there instead and goes on, so that one pass reports every bad file (`report`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..atomic import shown

# Per-landmark occlusion flags, a bit mask (`FaceRecord.occlusion`, `.occ` files): 0 visible.
OCCLUDED_BY_OBJECT = 1
SELF_OCCLUDED = 2


# Pillow's own error threshold (2 x Image.MAX_IMAGE_PIXELS): the default of data.max_image_pixels.
DEFAULT_MAX_IMAGE_PIXELS = 178_956_970


class AnnotationError(ValueError):
    """An annotation or image that cannot be used; the message names the file and the reason."""


class ImageDecodeError(OSError):
    """An image that fails to decode, or is refused undecoded (over data.max_image_pixels), while a
    dataset reads it. `str()` is one line: the file, the problem and what to do; `problem` is the
    same line without the advice."""

    def __init__(self, problem: str, advice: str | None = None) -> None:
        # One positional argument is enough: a DataLoader worker's error is re-raised as `cls(message)`.
        super().__init__(f"{problem}; {advice}" if advice else problem)
        self.problem = problem


TOO_LARGE_ADVICE = "raise it (or set it to null) if you trust the file"


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
    # (L,) bool: which points have a position (MERL-RAV's self-occluded points have none: their
    # landmarks hold a placeholder, left out of loss and NME); None: every point.
    located: np.ndarray | None = None

    @property
    def visible(self) -> np.ndarray | None:
        return None if self.occlusion is None else self.occlusion == 0

    @property
    def source(self) -> str:
        """Where the face was read, for messages: the annotation, else the image."""
        return self.annotation or str(self.image_path)


# The kinds of per-point label (`label_counts`): MERL-RAV's three, in the bits of `FaceRecord.occlusion`.
LABEL_KINDS = ("unoccluded", "externally_occluded", "self_occluded")


def label_counts(records: list[FaceRecord]) -> dict[str, int]:
    """Points per label kind over the records with flags: unoccluded (no bit), externally occluded
    (`OCCLUDED_BY_OBJECT` alone) and self-occluded (`SELF_OCCLUDED`, with or without the other)."""
    counts = dict.fromkeys(LABEL_KINDS, 0)
    for record in records:
        if record.occlusion is not None:
            flags = np.asarray(record.occlusion)
            self_occluded = (flags & SELF_OCCLUDED) > 0
            counts["self_occluded"] += int(self_occluded.sum())
            counts["externally_occluded"] += int((((flags & OCCLUDED_BY_OBJECT) > 0) & ~self_occluded).sum())
            counts["unoccluded"] += int((flags == 0).sum())
    return counts


def report(err: AnnotationError, problems: list[AnnotationError] | None) -> None:
    """Raise a reading problem, or collect it when the caller gathers every problem in one pass."""
    if problems is None:
        raise err
    problems.append(err)


# What Pillow raises on a file it cannot parse or decode.
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)
_pillow_limit = threading.RLock()  # re-entrant: an image may be opened inside another's block


def too_large(path: Path | str, size: tuple[int, int], max_pixels: int | None) -> str | None:
    """Why an image of `size` (width, height) is refused under `max_pixels` (None: no limit), or None."""
    width, height = size
    pixels = width * height
    if max_pixels is None or pixels <= max_pixels:
        return None
    millions = f"{pixels / 1e6:.0f}" if pixels >= 1e7 else f"{pixels / 1e6:.1f}"
    return (
        f"{shown(path)}: {width}x{height} pixels ({millions} M) is more than "
        f"data.max_image_pixels={max_pixels}"
    )


@contextmanager
def open_image(path: Path | str, max_pixels: int | None) -> Iterator[Image.Image]:
    """`Image.open` under `max_pixels` instead of Pillow's global limit: the size is read from the
    header and an image above the limit raises ImageDecodeError before any pixel is decoded. Pillow's
    `Image.MAX_IMAGE_PIXELS` is lifted only while the block runs (under a lock), then restored."""
    with _pillow_limit:
        previous = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            with Image.open(path) as image:
                refusal = too_large(path, image.size, max_pixels)
                if refusal:
                    raise ImageDecodeError(refusal, TOO_LARGE_ADVICE)
                yield image
        finally:
            Image.MAX_IMAGE_PIXELS = previous


def decode_reason(err: BaseException) -> str:
    """Pillow's reason as a few words on one line (the path is named elsewhere)."""
    if isinstance(err, OSError) and err.errno is not None:
        return os.strerror(err.errno)
    return " ".join(str(err).split()) or type(err).__name__


def image_dimensions(
    path: Path, decode: bool = False, max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS
) -> tuple[int, int]:
    """(width, height) of an image file from its header; `decode` also decodes the pixels, which
    finds truncated files whose header is intact (slower: data-check does it, training does not).
    An image over `max_pixels` (None: no limit) is refused from its header."""
    if not path.is_file():
        raise AnnotationError(f"{path}: image file is missing")
    try:
        with open_image(path, max_pixels) as image:
            if decode:
                image.load()
            return image.size
    except ImageDecodeError as err:
        raise AnnotationError(str(err)) from err
    except DECODE_ERRORS as err:
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
    max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
) -> list[FaceRecord]:
    """The records whose image is readable (and within `max_pixels`) and whose points fit it; the
    others are reported."""
    good = []
    for record in records:
        try:
            dimensions = image_dimensions(record.image_path, decode_images, max_pixels)
            check_landmarks(record.source, record.landmarks, num_landmarks, dimensions)
        except AnnotationError as err:
            report(err, problems)
            continue
        good.append(record)
    return good
