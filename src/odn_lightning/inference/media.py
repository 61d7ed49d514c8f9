"""What predict reads: an image, a folder of images, a video file, or a camera.

`open_media(spec)` gives a `MediaInput`, iterated as `Frame`s (HxWx3 uint8 RGB) and `Skipped`s (an
input that could not be read, and why, in one line). Input that cannot be used at all (missing path,
a folder with no image, an unknown suffix, a video that does not open, no camera) raises `MediaError`
in one line naming the input and what to do.

Still images are decoded by Pillow (`odn_lightning.data.dataset.load_rgb`), as the datasets read them:
in stored pixel order, without turning them by their EXIF orientation (the points come back in the
stored pixels). A folder is searched recursively and read in sorted order; a file in it that fails to
decode is skipped, never the end of the run. Videos and cameras are read by OpenCV and turned from BGR to
RGB; a video that stops before the frame count its header gives yields one Skipped saying so.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..atomic import shown
from ..data.dataset import load_rgb
from ..data.records import DEFAULT_MAX_IMAGE_PIXELS, ImageDecodeError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
KINDS = ("image", "folder", "video", "camera")


@dataclass(frozen=True)
class Frame:
    """One image or frame: source (the file, or "camera:N"), frame (None for a still image, the index
    for video and camera), image HxWx3 uint8 RGB."""

    source: str
    frame: int | None
    image: np.ndarray


@dataclass(frozen=True)
class Skipped:
    """An image or frame that could not be read; reason: one line, saying what to do where possible."""

    source: str
    frame: int | None
    reason: str


class MediaError(ValueError):
    """Input that cannot be used at all; the message is one line naming it and what to do."""


class MediaInput:
    """What open_media opened. kind: "image", "folder", "video" or "camera"; fps: frames per second
    (video, camera; None for images); root: the folder (names below it are relative to it), else None.
    len(): the images, or the frames to be read when known (0 if unknown: a camera without max_frames).
    Iterating yields Frame or Skipped, in order."""

    def __init__(
        self,
        kind: str,
        *,
        images: list[Path] | None = None,
        capture_spec: str | int | None = None,
        source: str = "",
        fps: float | None = None,
        frame_count: int = 0,
        root: Path | None = None,
        max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
        max_frames: int | None = None,
        frame_step: int = 1,
    ) -> None:
        self.kind = kind
        self.images = images or []
        self.capture_spec = capture_spec
        self.source = source
        self.fps = fps
        self.frame_count = frame_count  # the video's frame count from its header (0: unknown)
        self.root = root
        self.max_image_pixels = max_image_pixels
        self.max_frames = max_frames
        self.frame_step = frame_step

    def __len__(self) -> int:
        if self.kind in ("image", "folder"):
            return len(self.images)
        known = -(-self.frame_count // self.frame_step) if self.frame_count > 0 else 0
        if self.max_frames is not None:
            return min(known, self.max_frames) if known else (self.max_frames if self.kind == "camera" else 0)
        return known

    def __iter__(self) -> Iterator[Frame | Skipped]:
        if self.kind in ("image", "folder"):
            return self._images()
        return self._frames()

    def __repr__(self) -> str:
        return f"MediaInput(kind={self.kind!r}, len={len(self)}, fps={self.fps}, root={self.root})"

    def _images(self) -> Iterator[Frame | Skipped]:
        for path in self.images:
            try:
                image = load_rgb(path, self.max_image_pixels)
            except ImageDecodeError as err:
                # The problem without the data loaders' advice (data.on_bad_sample is no predict option).
                yield Skipped(str(path), None, f"{' '.join(err.problem.split())}; fix or remove the file")
                continue
            except OSError as err:  # removed or unreadable since the folder was listed
                yield Skipped(
                    str(path),
                    None,
                    f"cannot read the file ({err.strerror or err}); check it exists and is readable",
                )
                continue
            yield Frame(str(path), None, image)

    def _frames(self) -> Iterator[Frame | Skipped]:
        capture = cv2.VideoCapture(self.capture_spec)
        try:
            if not capture.isOpened():
                yield Skipped(self.source, None, "could not be opened again for reading")
                return
            index = read = 0
            while self.max_frames is None or read < self.max_frames:
                ok, bgr = capture.read()
                if not ok or bgr is None:
                    if self.kind == "video" and 0 < self.frame_count and index < self.frame_count:
                        yield Skipped(
                            self.source,
                            index,
                            f"the video ends early at frame {index} of {self.frame_count} (its header's count); "
                            "the file may be truncated: re-encode or re-download it",
                        )
                    elif self.kind == "camera" and index == 0:
                        yield Skipped(
                            self.source, 0, "the camera gave no frame; check it is not in use elsewhere"
                        )
                    return
                if index % self.frame_step == 0:
                    yield Frame(self.source, index, _to_rgb(bgr))
                    read += 1
                index += 1
        finally:
            capture.release()


def _to_rgb(bgr: np.ndarray) -> np.ndarray:
    if bgr.ndim == 2:
        return np.ascontiguousarray(np.repeat(bgr[:, :, None], 3, axis=2))
    if bgr.shape[2] == 4:
        return cv2.cvtColor(bgr, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _folder_images(folder: Path) -> tuple[list[Path], int]:
    images, others = [], 0
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.startswith("."):
                continue
            if Path(name).suffix.lower() in IMAGE_SUFFIXES:
                images.append(Path(dirpath) / name)
            else:
                others += 1
    return sorted(images), others


def open_media(
    spec: str | int | os.PathLike,
    max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
    max_frames: int | None = None,
    frame_step: int = 1,
) -> MediaInput:
    """Open `spec`: an image file, a folder (recursive, sorted; suffixes IMAGE_SUFFIXES, any case), a
    video file (VIDEO_SUFFIXES) or a camera index (an int, or a string of digits). max_image_pixels:
    larger still images are skipped undecoded (None: no limit); max_frames: video and camera stop after
    this many frames read; frame_step: every n-th frame. Raises MediaError (one line) for input that
    cannot be used at all."""
    if max_frames is not None and int(max_frames) < 1:
        raise MediaError(f"max_frames={max_frames}: must be at least 1 (or null for every frame)")
    if int(frame_step) < 1:
        raise MediaError(f"frame_step={frame_step}: must be at least 1 (1 reads every frame)")
    options = {"max_image_pixels": max_image_pixels, "max_frames": max_frames, "frame_step": int(frame_step)}
    if isinstance(spec, bool):
        raise MediaError(f"input={spec}: give an image, a folder, a video file or a camera index")
    if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit()):
        return _open_camera(int(spec), options)
    path = Path(spec)
    if not path.exists():
        raise MediaError(
            f"input={shown(path)}: no such file or folder; check the path (or give a camera index, input=0)"
        )
    if path.is_dir():
        images, others = _folder_images(path)
        if not images:
            raise MediaError(
                f"input={shown(path)}: the folder holds no image (searched recursively for "
                f"{' '.join(IMAGE_SUFFIXES)}; {others} other file(s) found); point input= at a folder of images"
            )
        return MediaInput("folder", images=images, root=path, **options)
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return MediaInput("image", images=[path], **options)
    if suffix in VIDEO_SUFFIXES:
        return _open_video(path, options)
    raise MediaError(
        f"input={shown(path)}: unknown file type {suffix or '(no suffix)'}; give an image "
        f"({' '.join(IMAGE_SUFFIXES)}), a video ({' '.join(VIDEO_SUFFIXES)}), a folder or a camera index"
    )


def _open_video(path: Path, options: dict) -> MediaInput:
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise MediaError(
                f"input={shown(path)}: OpenCV cannot open the video; check the file, or re-encode it "
                "(e.g. ffmpeg -i IN -c:v libx264 OUT.mp4)"
            )
        ok, first = capture.read()
        if not ok or first is None:
            raise MediaError(
                f"input={shown(path)}: the video has no frame that can be read; check or re-encode it"
            )
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    finally:
        capture.release()
    return MediaInput(
        "video",
        capture_spec=str(path),
        source=str(path),
        fps=fps if fps > 0 else None,
        frame_count=max(count, 0),
        **options,
    )


def _open_camera(index: int, options: dict) -> MediaInput:
    capture = cv2.VideoCapture(index)
    try:
        if not capture.isOpened():
            raise MediaError(
                f"no camera at index {index}; check it is connected and not in use, or try another index "
                "(input=0, input=1, ...)"
            )
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
    finally:
        capture.release()
    return MediaInput(
        "camera",
        capture_spec=index,
        source=f"camera:{index}",
        fps=fps if fps > 0 else 30.0,
        **options,
    )
