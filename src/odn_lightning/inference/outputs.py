"""What a predict run leaves in its run directory.

- `landmarks.json`: the model (crop, scheme, network), the detector, and per face: source, frame,
  face number, box, detector box and score, the L points in image pixels and, with a calibrated
  occlusion output (the visibility head's, else P's), each point's probability of being occluded
  (null otherwise, the top-level `occlusion` saying why); also every skipped input with its reason.
- `landmarks.csv`: one row per face, the columns of `predictions.csv` where they mean the same
  (`pred_x<i>`, `pred_y<i>`, `occ_prob<i>`).
- `skipped.csv`: each image or frame that gave no face, and why (unreadable, no face found).
- on request, `pts/`: one image and one 300W `.pts` per face in a flat folder, re-readable as a dataset
  (`odn_lightning.data.formats.w300.read_pts_folder`); `annotated/` (images) or `annotated.mp4`
  (video and camera input): the points coloured by occlusion probability (where calibrated), the box,
  optionally P overlaid.

Everything is written atomically; the files listing faces are rewritten at the end of the run (and
when it is interrupted), so an interrupted run still lists what it did.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from ..atomic import atomic_write_text
from ..data.formats.w300 import IMAGE_SUFFIXES as PTS_IMAGE_SUFFIXES
from ..data.formats.w300 import write_pts
from ..evaluation.plots import save_png
from ..evaluation.report_files import point_columns, probability_columns
from .media import Frame, Skipped
from .pipeline import FacePrediction, FrameResult

JSON_FILE = "landmarks.json"
CSV_FILE = "landmarks.csv"
SKIPPED_FILE = "skipped.csv"
PTS_DIR = "pts"
ANNOTATED_DIR = "annotated"
VIDEO_FILE = "annotated.mp4"
FACE_COLUMNS = ["source", "frame", "face", "box_x0", "box_y0", "box_x1", "box_y1", "detector_score"]
DECIMALS = 3


UNCALIBRATED = (
    "not output: the model has no calibration (its training run had no occlusion flags on its "
    "validation split, or it predates calibrated occlusion), and its raw score is no occlusion "
    "probability (1 - P's sign is not even fixed; a visibility head learns only from those flags); "
    "overlay_map=true still draws P where the network has it"
)
UNCALIBRATED_LINE = f"occlusion: {UNCALIBRATED}"


def occlusion_note(has_map: bool, calibrated: bool, has_logit: bool = False) -> str:
    """What landmarks.json says each face's `occlusion` is (has_logit: the network has the visibility
    head, whose score is used whether or not it also has P)."""
    if not has_map and not has_logit:
        return "not output: the network has no occlusion output (no distillation module, no visibility head)"
    if not calibrated:
        return UNCALIBRATED
    score = "sigmoid of the visibility head's logit for the point" if has_logit else "1 - P at the point"
    return (
        f"each point's probability of being occluded: {score} through the calibration in "
        "model.occlusion_calibration (fitted on the training run's validation flags, with the figures it reached)"
    )


def occlusion_colour(score: float) -> tuple[int, int, int]:
    """RGB of a point by its occlusion score: green (0, visible) through yellow to red (1, occluded)."""
    score = float(np.clip(score, 0.0, 1.0))
    return (int(round(255 * min(1.0, 2 * score))), int(round(255 * min(1.0, 2 * (1 - score)))), 0)


def overlay_occlusion_map(image: np.ndarray, face: FacePrediction, strength: float = 0.5) -> np.ndarray:
    """The image with the face's P drawn over its crop (jet: red = kept, blue = suppressed), warped back
    to image pixels by the inverse of the crop."""
    if face.occlusion_map is None:
        return image
    height, width = image.shape[:2]
    # P (n x n) covers the crop, [0, S) in crop pixels; warped back by the inverse of the crop.
    probability = np.asarray(face.occlusion_map, dtype=np.float32)
    upsampled = cv2.resize(probability, (face.crop_size, face.crop_size), interpolation=cv2.INTER_LINEAR)
    inverse = cv2.invertAffineTransform(face.matrix)
    back = cv2.warpAffine(upsampled, inverse, (width, height), flags=cv2.INTER_LINEAR, borderValue=-1.0)
    inside = back >= 0
    colours = cv2.applyColorMap(np.clip(back * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
    colours = cv2.cvtColor(colours, cv2.COLOR_BGR2RGB)
    blended = image.copy()
    blended[inside] = (image[inside] * (1 - strength) + colours[inside] * strength).astype(np.uint8)
    return blended


def annotate(image: np.ndarray, faces: Sequence[FacePrediction], overlay_map: bool = False) -> np.ndarray:
    """The image with each face's box and points (coloured by occlusion score where there is one)."""
    canvas = np.ascontiguousarray(image.copy())
    if overlay_map:
        for face in faces:
            canvas = overlay_occlusion_map(canvas, face)
    scale = max(image.shape[:2]) / 600
    radius, thickness = max(1, int(round(2 * scale))), max(1, int(round(1.5 * scale)))
    for face in faces:
        x0, y0, x1, y1 = (int(round(v)) for v in face.detection.detector_box)
        cv2.rectangle(canvas, (x0, y0), (x1, y1), (255, 255, 255), thickness)
        for i, (x, y) in enumerate(face.landmarks):
            colour = (0, 200, 255) if face.occlusion is None else occlusion_colour(face.occlusion[i])
            cv2.circle(canvas, (int(round(x)), int(round(y))), radius, colour, -1, cv2.LINE_AA)
    return canvas


def _rounded(values: np.ndarray) -> list:
    return np.round(np.asarray(values, dtype=np.float64), DECIMALS).tolist()


def face_record(face: FacePrediction) -> dict[str, Any]:
    """One face as landmarks.json lists it."""
    return {
        "source": face.source,
        "frame": face.frame,
        "face": face.face,
        "box": _rounded(face.box),
        "detector_box": _rounded(face.detection.detector_box),
        "detector_score": round(float(face.detection.score), 4),
        "landmarks": _rounded(face.landmarks),
        "occlusion": None if face.occlusion is None else np.round(face.occlusion, 4).tolist(),
    }


def _safe_stem(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("._") or "image"


class PredictionOutputs:
    """Collects a predict run's faces and writes its files into `output_dir`.

    run: plain values describing the run (model metadata, detector, input) for landmarks.json.
    no_face_reason: what skipped.csv says of an image or frame in which the detector found no face.
    relative_to: the input folder (names in pts/ and annotated/ keep the path below it).
    save_pts, annotate_images, overlay_map: the outputs written on request; video: frames per second
        of the input when it is a video or camera (annotated frames then go into annotated.mp4).
    """

    def __init__(
        self,
        output_dir: str | Path,
        run: Mapping[str, Any],
        num_landmarks: int,
        has_occlusion: bool,
        no_face_reason: str = "no face found",
        relative_to: Path | None = None,
        save_pts: bool = False,
        annotate_images: bool = False,
        overlay_map: bool = False,
        video_fps: float | None = None,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.run = dict(run)
        self.num_landmarks = num_landmarks
        self.has_occlusion = has_occlusion
        self.no_face_reason = no_face_reason
        self.relative_to = relative_to
        self.save_pts = save_pts
        self.annotate_images = annotate_images
        self.overlay_map = overlay_map
        self.video_fps = video_fps
        self.faces: list[dict[str, Any]] = []
        self.skipped: list[dict[str, Any]] = []
        self.frames = 0
        self._video: cv2.VideoWriter | None = None
        self._video_temporary: Path | None = None
        self._video_size: tuple[int, int] | None = None

    # ------------------------------------------------------------------ names

    def _relative_name(self, source: str) -> str:
        path = Path(source)
        if self.relative_to is not None:
            try:
                return path.resolve().relative_to(self.relative_to.resolve()).as_posix()
            except ValueError:
                pass
        return path.name

    def _face_stem(self, face: FacePrediction) -> str:
        stem = _safe_stem(
            Path(self._relative_name(face.source)).with_suffix("").as_posix().replace("/", "__")
        )
        frame = "" if face.frame is None else f"_frame{face.frame:06d}"
        return f"{stem}{frame}_face{face.face}"

    # ------------------------------------------------------------------ adding

    def add(self, result: FrameResult) -> None:
        self.frames += 1
        frame = result.frame
        if not result.faces:
            self.skip(Skipped(frame.source, frame.frame, self.no_face_reason))
        for face in result.faces:
            self.faces.append(face_record(face))
            if self.save_pts:
                self._write_pts(frame, face)
        if self.annotate_images or self._video_wanted():
            picture = annotate(frame.image, result.faces, self.overlay_map)
            if self._video_wanted():
                self._write_video_frame(picture)
            else:
                name = Path(self._relative_name(frame.source)).with_suffix(".png")
                save_png(picture, self.output_dir / ANNOTATED_DIR / name)

    def skip(self, item: Skipped) -> None:
        self.skipped.append({"source": item.source, "frame": item.frame, "reason": item.reason})

    def _video_wanted(self) -> bool:
        return self.annotate_images and self.video_fps is not None

    def _write_pts(self, frame: Frame, face: FacePrediction) -> None:
        folder = self.output_dir / PTS_DIR
        folder.mkdir(parents=True, exist_ok=True)
        stem = self._face_stem(face)
        source = Path(frame.source)
        image_path = folder / f"{stem}.png"
        if frame.frame is None and source.suffix.lower() in PTS_IMAGE_SUFFIXES and source.is_file():
            # The original file, byte for byte (a hard link where the file system allows one).
            image_path = folder / f"{stem}{source.suffix.lower()}"
            image_path.unlink(missing_ok=True)
            try:
                os.link(source, image_path)
            except OSError:
                shutil.copyfile(source, image_path)
        else:
            save_png(frame.image, image_path)
        write_pts(image_path.with_suffix(".pts"), face.landmarks)

    def _write_video_frame(self, picture: np.ndarray) -> None:
        height, width = picture.shape[:2]
        if self._video is None:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            handle, name = tempfile.mkstemp(dir=self.output_dir, prefix=".annotated.", suffix=".mp4")
            os.close(handle)
            self._video_temporary = Path(name)
            self._video = cv2.VideoWriter(
                name, cv2.VideoWriter_fourcc(*"mp4v"), float(self.video_fps or 25.0), (width, height)
            )
            if not self._video.isOpened():
                raise OSError(f"{self.output_dir / VIDEO_FILE}: OpenCV cannot write an mp4v video here")
            self._video_size = (width, height)
        if (width, height) != self._video_size:
            picture = cv2.resize(picture, self._video_size)
        self._video.write(cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))

    # ------------------------------------------------------------------ writing

    def write_all(
        self, results: Iterable[FrameResult | Skipped], total: int | None, kind: str, show_progress: bool
    ) -> tuple[dict[str, Path], bool]:
        """Take every frame's result (or skip), then write the files, also when stopped by Ctrl-C (a
        camera stops so: what was found is still written). Returns the files and whether stopped."""
        interrupted = False
        progress = tqdm(
            total=total,
            unit=kind if kind != "folder" else "image",
            disable=not show_progress,
            dynamic_ncols=True,
        )
        try:
            for item in results:
                if isinstance(item, Skipped):
                    self.skip(item)
                else:
                    self.add(item)
                progress.update(1)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            progress.close()
            written = self.write()
        return written, interrupted

    def write(self) -> dict[str, Path]:
        """Write (or rewrite) landmarks.json, landmarks.csv and skipped.csv; close the video."""
        written = {
            "landmarks.json": atomic_write_text(self.output_dir / JSON_FILE, self._json()),
            "landmarks.csv": atomic_write_text(self.output_dir / CSV_FILE, self._csv()),
            "skipped.csv": atomic_write_text(self.output_dir / SKIPPED_FILE, self._skipped_csv()),
        }
        if self._video is not None:
            self._video.release()
            self._video = None
            # mkstemp made it 0600: give it the mode every other output has (0666 less the umask).
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(self._video_temporary, 0o666 & ~umask)
            os.replace(self._video_temporary, self.output_dir / VIDEO_FILE)
        if (self.output_dir / VIDEO_FILE).is_file():
            written["annotated video"] = self.output_dir / VIDEO_FILE
        if self.annotate_images and not self._video_wanted():
            written["annotated images"] = self.output_dir / ANNOTATED_DIR
        if self.save_pts:
            written[".pts"] = self.output_dir / PTS_DIR
        return written

    def _json(self) -> str:
        document = {**self.run, "frames": self.frames, "faces": self.faces, "skipped": self.skipped}
        return json.dumps(document, indent=1) + "\n"

    def _csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        occlusion = self.has_occlusion
        writer.writerow(
            FACE_COLUMNS
            + point_columns("pred", self.num_landmarks)
            + (probability_columns(self.num_landmarks) if occlusion else [])
        )
        for face in self.faces:
            row = [face["source"], "" if face["frame"] is None else face["frame"], face["face"]]
            row += face["box"] + [face["detector_score"]]
            row += [value for point in face["landmarks"] for value in point]
            if occlusion:
                row += face["occlusion"]
            writer.writerow(row)
        return buffer.getvalue()

    def _skipped_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["source", "frame", "reason"])
        for item in self.skipped:
            writer.writerow([item["source"], "" if item["frame"] is None else item["frame"], item["reason"]])
        return buffer.getvalue()
