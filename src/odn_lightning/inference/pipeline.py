"""Faces in, landmarks out: crop each detected face as the network was trained, run the network in
batches, map its points back to image pixels, and read each point's occlusion score (the visibility
head's, else from P).

The crop is the training crop (`odn_lightning.crop.crop_matrix`): a square about the face box enlarged
by the checkpoint's `crop_margin`, resampled to its `image_size`. A detector's box is only an estimate
of the box the network was trained with (for most checkpoints the tight box of the landmarks), so by
default each face is cropped a second time about the tight box of its first prediction (`refine=1`,
the re-crop of 3DDFA and of most video face-alignment pipelines): the second crop is then framed as the
training crops were, whatever the detector. Checkpoints trained on the dataset's own boxes
(`crop_box=dataset`) are not refined: their crops are meant to follow the detector's box.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..crop import crop_matrix, crop_to_original, face_box
from ..data.transforms import warp_crop
from ..evaluation.calibration import OcclusionCalibration
from ..evaluation.occlusion_output import raw_scores
from ..imagenet import normalise_image
from ..training.module import NonFiniteError
from .detectors import Detection, FaceDetector
from .media import Frame, Skipped
from .runtimes import Runtime


@dataclass
class FacePrediction:
    """One face of one image or frame.

    box: the box the final crop was cut about (x0, y0, x1, y1, image pixels): the tight box of the
        first prediction after a refinement pass, else the detector's box in the suite's convention.
    landmarks: (L, 2) float64, 0-based image pixels (pixel centres on integers).
    occlusion: (L,) float32, each point's calibrated probability of being occluded, from its raw score:
        sigmoid of the visibility head's logit, else 1 - P at the point (None without either output or
        without a calibration).
    matrix: (2, 3) the final crop's matrix (image pixels -> crop pixels), crop_size its side S;
        occlusion_map: P (n, n) over that crop.
    """

    source: str
    frame: int | None
    face: int
    detection: Detection
    box: np.ndarray
    landmarks: np.ndarray
    occlusion: np.ndarray | None
    matrix: np.ndarray
    occlusion_map: np.ndarray | None
    crop_size: int


@dataclass
class FrameResult:
    """What one image or frame gave: its faces (possibly none)."""

    frame: Frame
    faces: list[FacePrediction]


def no_face_reason(detector: FaceDetector) -> str:
    return (
        f"no face found by detector={detector.name}; try another detector (haar, hog), or detector=none "
        "for a photo that is a face crop already"
    )


class LandmarkPredictor:
    """Detector + network: `predict_frames(frames)` yields a FrameResult per frame, in order, and a
    Skipped for each input that could not be read or held no face.

    batch_size: faces per network call (faces of several frames share a batch).
    refine: re-crop passes about the previous prediction (0: the detector's box only).
    calibration: maps each point's raw score (`evaluation.occlusion_output.raw_scores`: sigmoid of the
        visibility head's logit, else 1 - P at the point) to the probability that it is occluded; without
        one the faces carry no occlusion (the raw score is not an occlusion probability).
    """

    def __init__(
        self,
        runtime: Runtime,
        detector: FaceDetector,
        image_size: int,
        crop_margin: float,
        crop_box: str = "landmarks",
        batch_size: int = 32,
        refine: int = 1,
        max_faces: int | None = None,
        calibration: OcclusionCalibration | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size}; give a positive number of faces per network call")
        if refine < 0:
            raise ValueError(f"refine={refine}; give 0 (no re-crop) or more passes")
        if max_faces is not None and max_faces < 1:
            raise ValueError(f"max_faces={max_faces}; give a positive number, or null for every face")
        self.runtime = runtime
        self.detector = detector
        self.calibration = calibration
        self.image_size = image_size
        self.crop_margin = crop_margin
        self.batch_size = batch_size
        self.refine = refine if crop_box == "landmarks" else 0
        self.max_faces = max_faces
        # Wall-clock time of each stage, for the run's summary (cropping counts as the network's).
        self.detector_seconds = self.network_seconds = 0.0
        self.images_detected = self.faces_predicted = 0

    def timings(self) -> dict[str, float | None]:
        """Mean detector time per image and network time per face (crop, forward, map back), in ms."""
        return {
            "detector_ms_per_image": (
                round(1e3 * self.detector_seconds / self.images_detected, 2) if self.images_detected else None
            ),
            "network_ms_per_face": (
                round(1e3 * self.network_seconds / self.faces_predicted, 2) if self.faces_predicted else None
            ),
        }

    # ------------------------------------------------------------------ the network on crops

    def crop(self, image: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The network input for the face in `box`: ((3, S, S) float32 normalised, matrix (2, 3))."""
        matrix = crop_matrix(np.asarray(box, dtype=np.float64), self.image_size, self.crop_margin)
        return normalise_image(warp_crop(image, matrix, self.image_size)), matrix

    def _run(self, crops: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Landmarks (B, L, 2), and the occlusion outputs the network has, by name."""
        landmarks, occlusion = [], {"occlusion_map": [], "occlusion_logit": []}
        for start in range(0, len(crops), self.batch_size):
            output = self.runtime(np.ascontiguousarray(crops[start : start + self.batch_size]))
            if not np.all(np.isfinite(output.landmarks)):
                raise NonFiniteError(
                    f"the network ({self.runtime.name}) returned non-finite landmarks; the checkpoint or "
                    "exported model is broken"
                )
            landmarks.append(output.landmarks)
            for name, parts in occlusion.items():
                if getattr(output, name) is not None:
                    parts.append(getattr(output, name))
        return np.concatenate(landmarks), {k: np.concatenate(v) for k, v in occlusion.items() if v}

    def predict_faces(
        self, images: Sequence[np.ndarray], boxes: Sequence[np.ndarray]
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray, np.ndarray | None]]:
        """For each (image, box): (box used, landmarks in image pixels, occlusion probabilities (None
        without a calibration), matrix, P)."""
        if not images:
            return []
        started = time.perf_counter()
        boxes = [np.asarray(box, dtype=np.float64) for box in boxes]
        for attempt in range(self.refine + 1):
            cropped = [self.crop(image, box) for image, box in zip(images, boxes, strict=True)]
            crops, matrices = [c for c, _ in cropped], [m for _, m in cropped]
            landmarks, occlusion = self._run(np.stack(crops))
            points = crop_to_original(
                torch.from_numpy(landmarks), torch.from_numpy(np.stack(matrices)), self.image_size
            ).numpy()
            if attempt < self.refine:
                boxes = [face_box(face) for face in points]
        scores, maps = None, occlusion.get("occlusion_map")
        if occlusion and self.calibration is not None:  # the suite's raw scores, then the calibration
            raw = raw_scores(
                {k: torch.from_numpy(v) for k, v in occlusion.items()}, torch.from_numpy(landmarks)
            )
            scores = self.calibration.probability(raw).numpy()
        self.network_seconds += time.perf_counter() - started
        self.faces_predicted += len(images)
        return [
            (
                boxes[i],
                points[i],
                None if scores is None else scores[i],
                matrices[i],
                None if maps is None else maps[i, 0],
            )
            for i in range(len(images))
        ]

    # ------------------------------------------------------------------ frames

    def _finish(self, pending: list[tuple[Frame, list[Detection]]]) -> list[FrameResult]:
        images = [frame.image for frame, detections in pending for _ in detections]
        boxes = [detection.box for _, detections in pending for detection in detections]
        faces = iter(self.predict_faces(images, boxes))
        results = []
        for frame, detections in pending:
            predictions = []
            for number, detection in enumerate(detections):
                box, points, scores, matrix, occlusion_map = next(faces)
                predictions.append(
                    FacePrediction(
                        frame.source,
                        frame.frame,
                        number,
                        detection,
                        box,
                        points,
                        scores,
                        matrix,
                        occlusion_map,
                        self.image_size,
                    )
                )
            results.append(FrameResult(frame, predictions))
        return results

    def predict_frames(self, items: Iterable[Frame | Skipped]) -> Iterator[FrameResult | Skipped]:
        """Detect and predict frame by frame; the network runs once `batch_size` faces are waiting (or
        at the end), so results come in input order, a batch behind the reading."""
        pending: list[tuple[Frame, list[Detection]]] = []
        waiting = 0
        for item in items:
            if isinstance(item, Skipped):
                yield from self._finish(pending)
                pending, waiting = [], 0
                yield item
                continue
            started = time.perf_counter()
            detections = self.detector.detect(item)
            self.detector_seconds += time.perf_counter() - started
            self.images_detected += 1
            if self.max_faces is not None:
                detections = detections[: self.max_faces]
            pending.append((item, detections))
            waiting += len(detections)
            if waiting >= self.batch_size:
                yield from self._finish(pending)
                pending, waiting = [], 0
        yield from self._finish(pending)
