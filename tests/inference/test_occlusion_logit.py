"""A network with the per-landmark visibility head through inference and export: its logits are an
exported output ("occlusion_logit") that ONNX Runtime and TorchScript reproduce, predict calibrates
sigmoid(logit) (not 1 - P) as the suite's raw score, and metadata written before the head still loads."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from odn_lightning.crop import face_box
from odn_lightning.data.formats.w300 import read_pts
from odn_lightning.evaluation.occlusion_metrics import landmark_occlusion_scores
from odn_lightning.inference.export_metadata import (
    ExportError,
    example_input,
    has_occlusion_logit,
    metadata_path,
    read_metadata,
)
from odn_lightning.inference.exporting import (
    ExportableNetwork,
    export_model,
    load_torchscript,
    max_abs_difference,
)
from odn_lightning.inference.model import TrainedModel, load_trained_model
from odn_lightning.inference.outputs import UNCALIBRATED, occlusion_note
from odn_lightning.inference.pipeline import LandmarkPredictor
from odn_lightning.inference.runtimes import EagerRuntime, OnnxRuntime
from odn_lightning.models import ODN
from odn_lightning.predict import predict
from odn_lightning.schemes import get_scheme

from ..helpers.configs import compose_config

PHOTOS = Path(__file__).resolve().parents[1] / "assets" / "photos"
TOLERANCE = 1e-4
OUTPUTS = ["landmarks", "occlusion_map", "occlusion_logit"]


@pytest.fixture(scope="module")
def head_model(head_checkpoint) -> TrainedModel:
    return load_trained_model(head_checkpoint)


def test_the_loaded_model_reports_the_head_and_its_calibration(head_model):
    assert head_model.has_occlusion_logit and head_model.has_occlusion_map
    assert head_model.calibration is not None and head_model.calibration.slope == pytest.approx(1.7)
    metadata = head_model.metadata()
    assert metadata["occlusion_logit"] is True and metadata["occlusion_map"] is True
    assert "s = sigmoid(occlusion_logit)" in metadata["occlusion_calibration"]["probability"]
    assert ExportableNetwork(head_model.net).output_names == OUTPUTS


def test_onnx_export_outputs_the_logits_as_the_eager_network(head_model, head_onnx):
    import onnx

    assert [o.name for o in onnx.load(str(head_onnx)).graph.output] == OUTPUTS
    meta = read_metadata(metadata_path(head_onnx))
    entry = meta["outputs"]["occlusion_logit"]
    assert entry["name"] == "occlusion_logit" and entry["dtype"] == "float32"
    assert entry["shape"] == ["batch", 68] and "sigmoid(occlusion_logit)" in entry["occlusion_score"]
    assert "not 1 - P" in meta["outputs"]["occlusion_map"]["occlusion_score"]
    assert "sigmoid(occlusion_logit)" in meta["occlusion_calibration"]["probability"]
    runtime = OnnxRuntime(head_onnx, threads=2)
    assert runtime.has_occlusion_logit and runtime.output_names == OUTPUTS
    for batch in (1, 3):
        crops = example_input(head_model.image_size, batch, seed=batch).numpy()
        with torch.no_grad():
            logits = head_model.net(torch.from_numpy(crops))["occlusion_logit"].numpy()
        actual = runtime(crops)
        assert actual.occlusion_logit.dtype == np.float32 and actual.occlusion_logit.shape == (batch, 68)
        assert np.max(np.abs(actual.occlusion_logit - logits)) <= TOLERANCE
        expected = EagerRuntime(head_model.net, head_model.image_size)(crops).as_tuple()
        assert len(expected) == 3 and max_abs_difference(expected, actual.as_tuple()) <= TOLERANCE


def test_torchscript_export_outputs_the_logits(head_model, tmp_path):
    path, _ = export_model(head_model, tmp_path, "torchscript")  # traced and checked at batch 1 and 3
    images = example_input(head_model.image_size, 2, seed=5)
    with torch.inference_mode():
        outputs = load_torchscript(path)(images)
        expected = ExportableNetwork(head_model.net)(images)
    assert len(outputs) == 3 and outputs[2].shape == (2, 68)
    assert max_abs_difference(expected, outputs) <= TOLERANCE


def test_brnet_with_the_head_exports_landmarks_and_logits_only(tmp_path):
    torch.manual_seed(0)
    net = ODN(68, use_gm=False, use_dm=False, use_lm=False, visibility_head=True).eval()
    (tmp_path / "last.ckpt").write_bytes(b"stands for the checkpoint file")
    model = TrainedModel(
        net, 64, 0.25, "landmarks", get_scheme("ibug68"), net.variant, "synthetic", tmp_path / "last.ckpt"
    )
    path, meta_path = export_model(model, tmp_path, "onnx")
    meta = read_metadata(meta_path)
    assert meta["outputs"]["occlusion_map"] is None and has_occlusion_logit(meta)
    runtime = OnnxRuntime(path, threads=2)
    assert runtime.output_names == ["landmarks", "occlusion_logit"]
    crops = example_input(64, 2, seed=7).numpy()
    actual, expected = runtime(crops), EagerRuntime(net, 64)(crops)
    assert actual.occlusion_map is None and actual.occlusion_logit.shape == (2, 68)
    assert max_abs_difference(expected.as_tuple(), actual.as_tuple()) <= TOLERANCE
    assert occlusion_note(False, True, has_logit=True).startswith("each point's probability")


def test_predict_calibrates_the_sigmoid_of_the_heads_logits(head_model, head_onnx):
    image = cv2.cvtColor(cv2.imread(str(PHOTOS / "takeo.png")), cv2.COLOR_BGR2RGB)
    box = face_box(read_pts(PHOTOS / "takeo.pts"))
    calibration = head_model.calibration
    for runtime, tolerance in ((EagerRuntime(head_model.net, 64), 1e-6), (OnnxRuntime(head_onnx), 1e-4)):
        predictor = LandmarkPredictor(
            runtime, None, 64, head_model.crop_margin, refine=0, calibration=calibration
        )
        _, _, probability, _, _ = predictor.predict_faces([image], [box])[0]
        crop, _ = predictor.crop(image, box)
        with torch.no_grad():
            out = head_model.net(torch.from_numpy(crop[None]))
        by_hand = calibration.probability(torch.sigmoid(out["occlusion_logit"]))[0].numpy()
        np.testing.assert_allclose(probability, by_hand, rtol=0, atol=tolerance)
        # Not 1 - P at the points: the map's score would give other probabilities.
        from_map = calibration.probability(landmark_occlusion_scores(out["occlusion_map"], out["landmarks"]))
        assert np.max(np.abs(probability - from_map[0].numpy())) > 1e-2


def test_predict_outputs_the_heads_calibrated_occlusion(head_checkpoint, tmp_path):
    cfg = compose_config(
        "predict",
        ["progress=false", f"ckpt_path={head_checkpoint}", f"input={PHOTOS / 'takeo.png'}"],
        tmp_path / "predict",
    )
    predict(cfg)
    document = json.loads((tmp_path / "predict" / "landmarks.json").read_text())
    assert document["model"]["occlusion_logit"] is True
    assert "visibility head" in document["occlusion"]
    scores = np.asarray([face["occlusion"] for face in document["faces"]])
    assert scores.shape[1:] == (68,) and np.all((scores >= 0) & (scores <= 1))


def test_uncalibrated_note_holds_for_the_head():
    assert UNCALIBRATED.startswith("not output: the model has no calibration") and "head" in UNCALIBRATED
    assert occlusion_note(True, False, has_logit=True) == UNCALIBRATED
    assert occlusion_note(False, False).startswith("not output: the network has no occlusion output")


def test_metadata_without_the_logit_key_loads_and_is_checked_when_present(head_onnx, tmp_path):
    good = json.loads(metadata_path(head_onnx).read_text())
    model = tmp_path / "model.onnx"
    model.write_bytes(head_onnx.read_bytes())
    # An older export's metadata: no key, read as null; this model does output logits, so it is refused.
    older = {**good, "outputs": {k: v for k, v in good["outputs"].items() if k != "occlusion_logit"}}
    metadata_path(model).write_text(json.dumps(older))
    assert not has_occlusion_logit(read_metadata(metadata_path(model)))
    with pytest.raises(ExportError, match="belongs to another model"):
        OnnxRuntime(model)
    wrong = {**good, "outputs": {**good["outputs"], "occlusion_logit": {"shape": ["batch", 5]}}}
    metadata_path(model).write_text(json.dumps(wrong))
    with pytest.raises(ExportError, match="'outputs.occlusion_logit' is missing or invalid"):
        read_metadata(metadata_path(model))
