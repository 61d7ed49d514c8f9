"""README's "detector and crop steps" example, run as written against an exported model: a consumer
with ONNX Runtime and dlib alone gets predict's points and calibrated occlusion probabilities (refine=0,
dlib's box), from P (ODN) and from the visibility head's logits (ODN with the head)."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from odn_lightning.inference.exporting import export_model
from odn_lightning.inference.model import load_trained_model
from odn_lightning.inference.pipeline import LandmarkPredictor
from odn_lightning.inference.runtimes import OnnxRuntime

ROOT = Path(__file__).resolve().parents[2]
PHOTO = ROOT / "tests" / "assets" / "photos" / "takeo.png"
MARKER = "<!-- consumer example: tests/inference/test_readme_consumer.py runs this block -->"
PATHS_LINE = 'model_file, photo = "odn.onnx", "photo.jpg"'


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    assert MARKER in text, "README lost its consumer example"
    block = re.search(r"```python\n(.*?)```", text[text.index(MARKER) :], re.S)
    assert block is not None and PATHS_LINE in block.group(1)
    return block.group(1)


@pytest.mark.parametrize("network", ["odn", "odn_visibility_head"])
def test_readme_consumer_example_gives_predicts_landmarks(request, tmp_path, network):
    if network == "odn":
        model = load_trained_model(request.getfixturevalue("trained_run") / "checkpoints" / "last.ckpt")
        model_path, _ = export_model(model, tmp_path, "onnx")
    else:  # exported once for the inference tests
        model = load_trained_model(request.getfixturevalue("head_checkpoint"))
        model_path = request.getfixturevalue("head_onnx")
    assert model.has_occlusion_map and model.has_occlusion_logit == (network == "odn_visibility_head")
    code = readme_example().replace(PATHS_LINE, f"model_file, photo = {str(model_path)!r}, {str(PHOTO)!r}")
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the README's own example
    faces = namespace["faces"]
    assert len(faces) == 1

    import dlib

    image = cv2.cvtColor(cv2.imread(str(PHOTO)), cv2.COLOR_BGR2RGB)
    found = dlib.get_frontal_face_detector()(image, 1)[0]
    box = np.array([found.left(), found.top(), found.right() + 1, found.bottom() + 1], dtype=np.float64)
    assert model.calibration is not None  # its validation split has flags: calibrated
    predictor = LandmarkPredictor(
        OnnxRuntime(model_path),
        None,
        model.image_size,
        model.crop_margin,
        refine=0,
        calibration=model.calibration,
    )
    _, points, probability, _, _ = predictor.predict_faces([image], [box])[0]
    np.testing.assert_allclose(faces[0][0], points, atol=1e-3)
    # The calibrated probabilities, through the metadata's calibration alone.
    np.testing.assert_allclose(faces[0][1], probability, atol=1e-5)
