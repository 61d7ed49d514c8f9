"""The ensemble of regression trees (ERT; Kazemi & Sullivan, CVPR 2014, the ODN paper's ref. [25]) as
dlib implements it (`dlib.train_shape_predictor`), on the suite's face records.

It sees what the networks see: the same images, and as its face rectangle the box the suite crops
from (`data.crop_box`: the landmarks' tight box, or the dataset's), so a comparison with a network
differs only in the method. dlib keeps points in whole pixels: training targets and predictions are
rounded to the pixel (about 0.3 px RMS, 0.003 NME at a 100 px inter-ocular distance), as in every
dlib shape predictor. dlib is an optional extra (`pip install -e ".[ert]"`, package dlib-bin).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..crop import face_box
from ..data.dataset import load_rgb
from ..data.records import FaceRecord


@dataclass
class ERTOptions:
    """dlib's shape_predictor_training_options that matter (dlib's defaults, Kazemi & Sullivan's)."""

    cascade_depth: int = 10
    tree_depth: int = 4
    num_trees_per_cascade_level: int = 500
    nu: float = 0.1
    oversampling_amount: int = 20
    feature_pool_size: int = 400
    num_test_splits: int = 20
    num_threads: int = 1
    seed: int = 0


def _dlib():
    try:
        import dlib
    except ImportError as err:  # an optional extra
        raise ImportError('the ERT baseline needs dlib: pip install -e ".[ert]" (package dlib-bin)') from err
    return dlib


def face_rectangle(record: FaceRecord, crop_box: str):
    """The rectangle dlib gets: the box the suite crops from (rounded to pixels, as dlib takes them)."""
    box = record.box if crop_box == "dataset" and record.box is not None else face_box(record.landmarks)
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    return _dlib().rectangle(x0, y0, x1, y1)


class ERT:
    """fit(records) then predict(records) -> (N, L, 2) points in original image pixels."""

    def __init__(self, options: ERTOptions | None = None, crop_box: str = "landmarks") -> None:
        self.options = options or ERTOptions()
        self.crop_box = crop_box
        self.predictor = None

    def fit(self, records: Sequence[FaceRecord]) -> ERT:
        dlib = _dlib()
        opts = dlib.shape_predictor_training_options()
        for name in (
            "cascade_depth",
            "tree_depth",
            "num_trees_per_cascade_level",
            "nu",
            "oversampling_amount",
            "feature_pool_size",
            "num_test_splits",
            "num_threads",
        ):
            setattr(opts, name, getattr(self.options, name))
        opts.random_seed = str(self.options.seed)
        opts.be_verbose = False
        images = [load_rgb(r.image_path) for r in records]
        detections = [
            [
                dlib.full_object_detection(
                    face_rectangle(r, self.crop_box),
                    [dlib.point(int(round(x)), int(round(y))) for x, y in r.landmarks],
                )
            ]
            for r in records
        ]
        self.predictor = dlib.train_shape_predictor(images, detections, opts)
        return self

    def predict(self, records: Sequence[FaceRecord]) -> np.ndarray:
        if self.predictor is None:
            raise RuntimeError("ERT.predict before fit")
        out = []
        for record in records:
            shape = self.predictor(load_rgb(record.image_path), face_rectangle(record, self.crop_box))
            out.append([(p.x, p.y) for p in shape.parts()])
        return np.asarray(out, dtype=np.float64)
