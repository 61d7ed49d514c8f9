"""Export to ONNX and TorchScript: outputs equal the eager network's, metadata a consumer can use alone,
one-line refusals, and the `odn_lightning.export` entry point."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from odn_lightning.crop import crop_matrix, crop_to_original, from_normalised
from odn_lightning.evaluation.occlusion_metrics import landmark_occlusion_scores
from odn_lightning.imagenet import normalise_image
from odn_lightning.inference.export_metadata import (
    ExportError,
    export_metadata,
    metadata_path,
    read_metadata,
    write_metadata,
)
from odn_lightning.inference.exporting import (
    ExportableNetwork,
    export_model,
    export_onnx,
    load_torchscript,
    network_file_stem,
)
from odn_lightning.inference.model import TrainedModel
from odn_lightning.inference.runtimes import EagerRuntime, OnnxRuntime, RuntimeOutput
from odn_lightning.inference.verification import verify_export
from odn_lightning.models import ODN
from odn_lightning.schemes import get_scheme

from ..helpers.cli import user_error_in_process
from ..helpers.configs import compose_config
from ..helpers.folders import passing_folder

SIZE = 64
TOLERANCE = 1e-4
NETWORKS = {
    "brnet": dict(use_gm=False, use_dm=False, use_lm=False),
    "odn": dict(use_gm=True, use_dm=True, use_lm=True),
}


def trained_model(kind: str, checkpoint: Path) -> TrainedModel:
    torch.manual_seed(0)
    net = ODN(68, **NETWORKS[kind]).eval()
    # Batch-norm statistics away from the identity, so the exported graph's folding is exercised.
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    checkpoint.write_bytes(b"not read: stands for the checkpoint file")
    return TrainedModel(
        net=net,
        image_size=SIZE,
        crop_margin=0.25,
        crop_box="landmarks",
        scheme=get_scheme("ibug68"),
        variant=net.variant,
        data_name="synthetic",
        checkpoint=checkpoint,
    )


@pytest.fixture(scope="module", params=sorted(NETWORKS))
def exported(request, tmp_path_factory):
    """(model, onnx path, torchscript path) for BRNet and for ODN with all three modules."""
    with passing_folder(tmp_path_factory, f"export_{request.param}") as folder:
        model = trained_model(request.param, folder / "last.ckpt")
        # One folder each, as two export runs would have.
        onnx_path, onnx_meta = export_model(model, folder / "onnx", "onnx")
        script_path, script_meta = export_model(model, folder / "torchscript", "torchscript")
        assert onnx_meta == metadata_path(onnx_path) and script_meta == metadata_path(script_path)
        yield model, onnx_path, script_path


def crops(batch: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, 3, SIZE, SIZE)).astype(np.float32)


def max_diff(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape
    return float(np.max(np.abs(a.astype(np.float64) - b)))


@pytest.mark.parametrize("batch", [1, 5])
def test_onnx_runtime_matches_eager(exported, batch):
    model, onnx_path, _ = exported
    images = crops(batch)
    expected = EagerRuntime(model.net, SIZE)(images)
    runtime = OnnxRuntime(onnx_path, threads=2)
    actual = runtime(images)
    assert runtime.name == "onnx" and runtime.image_size == SIZE
    assert runtime.has_occlusion_map == model.has_occlusion_map
    assert actual.landmarks.dtype == np.float32 and actual.landmarks.shape == (batch, 68, 2)
    assert max_diff(actual.landmarks, expected.landmarks) <= TOLERANCE
    if model.has_occlusion_map:
        assert actual.occlusion_map.shape == expected.occlusion_map.shape == (batch, 1, 2, 2)
        assert max_diff(actual.occlusion_map, expected.occlusion_map) <= TOLERANCE
    else:
        assert actual.occlusion_map is None and expected.occlusion_map is None


@pytest.mark.parametrize("batch", [1, 5])
def test_torchscript_matches_eager(exported, batch):
    model, _, script_path = exported
    images = crops(batch, seed=2)
    expected = EagerRuntime(model.net, SIZE)(images).as_tuple()
    with torch.inference_mode():
        actual = load_torchscript(script_path)(torch.from_numpy(images))
    assert isinstance(actual, tuple) and len(actual) == len(expected)
    for got, want in zip(actual, expected, strict=True):
        assert max_diff(got.numpy(), want) <= TOLERANCE


def test_verify_export_reports_a_small_difference(exported):
    model, onnx_path, script_path = exported
    assert verify_export(model, onnx_path, "onnx") <= TOLERANCE
    assert verify_export(model, script_path, "torchscript") <= TOLERANCE


def test_exportable_network_gives_plain_tuples(exported):
    model = exported[0]
    outputs = ExportableNetwork(model.net)(torch.from_numpy(crops(2)))
    assert isinstance(outputs, tuple) and len(outputs) == (2 if model.has_occlusion_map else 1)
    assert outputs[0].shape == (2, 68, 2)


def test_metadata_round_trip_and_contents(exported, tmp_path):
    model, onnx_path, script_path = exported
    stored = read_metadata(metadata_path(onnx_path))
    assert stored == json.loads(json.dumps(export_metadata(model, "onnx", onnx_path.name, opset=18)))
    assert stored["format"] == "onnx" and stored["model_file"] == onnx_path.name
    assert onnx_path.name == f"{network_file_stem(model.variant)}.onnx"
    assert stored["opset"] == 18 and stored["network"] == model.variant
    assert stored["input"] == {
        "name": "images",
        "layout": "NCHW",
        "channels": "RGB",
        "dtype": "float32",
        "shape": ["batch", 3, SIZE, SIZE],
        "batch": "dynamic",
    }
    assert stored["crop"]["margin"] == 0.25 and stored["crop"]["box"] == "landmarks"
    assert stored["scheme"]["num_landmarks"] == 68 and stored["scheme"]["outer_eye_corners"] == [36, 45]
    assert [0, 16] in stored["scheme"]["flip_pairs"]
    assert (stored["outputs"]["occlusion_map"] is not None) == model.has_occlusion_map
    assert len(stored["checkpoint"]["sha256"]) == 64 and stored["versions"]["torch"] == torch.__version__
    assert read_metadata(metadata_path(script_path))["format"] == "torchscript"
    again = write_metadata(tmp_path / "copy.json", stored)
    assert read_metadata(again) == stored


def test_a_consumer_reproduces_the_pipeline_from_metadata_alone(exported):
    """Crop, normalise, run (ONNX Runtime directly), map back and read occlusion scores with nothing
    but the metadata and NumPy/OpenCV; the suite's own functions give the same."""
    import onnxruntime

    model, onnx_path, _ = exported
    meta = json.loads(metadata_path(onnx_path).read_text())
    rng = np.random.default_rng(3)
    photo = rng.integers(0, 256, (120, 100, 3), dtype=np.uint8)
    box = np.array([30.0, 40.0, 70.0, 85.0])

    # The crop matrix, as the metadata's words describe it.
    size, margin = meta["crop"]["image_size"], meta["crop"]["margin"]
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * (1 + margin)
    scale = size / side
    left, top = (x0 + x1) / 2 + 0.5 - side / 2, (y0 + y1) / 2 + 0.5 - side / 2
    matrix = np.array([[scale, 0, (0.5 - left) * scale - 0.5], [0, scale, (0.5 - top) * scale - 0.5]])
    np.testing.assert_allclose(matrix, crop_matrix(box, SIZE, 0.25), rtol=0, atol=1e-12)

    crop = cv2.warpAffine(photo, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    norm = meta["normalisation"]
    mean, std = np.array(norm["mean"], np.float32), np.array(norm["std"], np.float32)
    images = ((crop.astype(np.float32) / 255.0 - mean) / std).transpose(2, 0, 1)[None]
    np.testing.assert_allclose(images[0], normalise_image(crop), rtol=0, atol=1e-6)
    scaled = ((crop.astype(np.float32) * np.float32(norm["scale"]) - mean) / std).transpose(2, 0, 1)
    np.testing.assert_allclose(scaled, normalise_image(crop), rtol=0, atol=1e-5)

    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    outputs = dict(
        zip(
            [o.name for o in session.get_outputs()],
            session.run(None, {meta["input"]["name"]: images}),
            strict=True,
        )
    )
    points = outputs["landmarks"][0].astype(np.float64)
    eager = EagerRuntime(model.net, SIZE)(images)
    assert max_diff(points, eager.landmarks[0]) <= TOLERANCE

    # Back to crop pixels, then to the photo's pixels, as the metadata says.
    crop_px = ((points + 1) * size - 1) / 2
    np.testing.assert_allclose(crop_px, from_normalised(points, SIZE), atol=1e-12)
    photo_px = np.linalg.solve(matrix[:, :2], (crop_px - matrix[:, 2]).T).T
    suite = crop_to_original(torch.from_numpy(points[None]), torch.from_numpy(matrix[None]), SIZE)[0]
    np.testing.assert_allclose(photo_px, suite.numpy(), atol=1e-9)

    if meta["outputs"]["occlusion_map"] is None:
        assert "occlusion_map" not in outputs
        return
    # Bilinear read of P at each point, cell centres at (2j + 1) / n - 1, border values beyond.
    p = outputs["occlusion_map"][0, 0].astype(np.float64)
    n = p.shape[0]
    assert meta["outputs"]["occlusion_map"]["shape"] == ["batch", 1, n, n]
    u = np.clip(((points[:, 0] + 1) * n - 1) / 2, 0, n - 1)
    v = np.clip(((points[:, 1] + 1) * n - 1) / 2, 0, n - 1)
    j0, i0 = np.floor(u).astype(int), np.floor(v).astype(int)
    j1, i1 = np.minimum(j0 + 1, n - 1), np.minimum(i0 + 1, n - 1)
    fu, fv = u - j0, v - i0
    read = (
        p[i0, j0] * (1 - fu) * (1 - fv)
        + p[i0, j1] * fu * (1 - fv)
        + p[i1, j0] * (1 - fu) * fv
        + p[i1, j1] * fu * fv
    )
    expected = landmark_occlusion_scores(
        torch.from_numpy(eager.occlusion_map), torch.from_numpy(eager.landmarks)
    )
    np.testing.assert_allclose(1 - read, expected[0].numpy(), atol=1e-4)


def test_eager_runtime_takes_any_batch_and_refuses_other_shapes(exported):
    model = exported[0]
    runtime = EagerRuntime(model.net, SIZE)
    assert runtime.name == "eager"
    output = runtime(crops(3).astype(np.float64))
    assert isinstance(output, RuntimeOutput) and output.landmarks.dtype == np.float32
    assert output.landmarks.shape == (3, 68, 2)
    with pytest.raises(ValueError, match=r"crops of shape \(B, 3, 64, 64\)"):
        runtime(np.zeros((1, 3, 32, 32), np.float32))


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def test_onnx_runtime_refuses_missing_or_corrupt_files(exported, tmp_path):
    _, onnx_path, _ = exported
    with pytest.raises(ExportError) as err:
        OnnxRuntime(tmp_path / "missing.onnx")
    assert "no such ONNX model" in one_line(err)

    lonely = tmp_path / "lonely.onnx"
    lonely.write_bytes(onnx_path.read_bytes())
    with pytest.raises(ExportError) as err:
        OnnxRuntime(lonely)
    assert "no metadata file" in one_line(err)

    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(onnx_path.read_bytes()[:5000])
    metadata_path(corrupt).write_text(metadata_path(onnx_path).read_text())
    with pytest.raises(ExportError) as err:
        OnnxRuntime(corrupt)
    assert "not a usable ONNX model" in one_line(err)

    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00garbage\nmore")
    metadata_path(garbage).write_text(metadata_path(onnx_path).read_text())
    with pytest.raises(ExportError) as err:
        OnnxRuntime(garbage)
    assert "not a usable ONNX model" in one_line(err)


def test_onnx_runtime_refuses_bad_or_mismatched_metadata(exported, tmp_path):
    _, onnx_path, _ = exported
    model = tmp_path / "model.onnx"
    model.write_bytes(onnx_path.read_bytes())
    good = json.loads(metadata_path(onnx_path).read_text())

    metadata_path(model).write_text("{not json")
    with pytest.raises(ExportError) as err:
        OnnxRuntime(model)
    assert "not JSON metadata" in one_line(err)

    for key in ("image_size", "normalisation", "scheme"):
        metadata_path(model).write_text(json.dumps({k: v for k, v in good.items() if k != key}))
        with pytest.raises(ExportError) as err:
            read_metadata(metadata_path(model))
        assert f"'{key}'" in one_line(err)

    metadata_path(model).write_text(json.dumps({**good, "image_size": 128}))
    with pytest.raises(ExportError) as err:
        OnnxRuntime(model)
    assert "belongs to another model" in one_line(err)

    metadata_path(model).write_text(json.dumps({**good, "format": "torchscript"}))
    with pytest.raises(ExportError) as err:
        OnnxRuntime(model)
    assert "not ONNX" in one_line(err)


def test_metadata_written_before_the_visibility_head_still_loads(exported, tmp_path):
    _, onnx_path, _ = exported
    model = tmp_path / "model.onnx"
    model.write_bytes(onnx_path.read_bytes())
    good = json.loads(metadata_path(onnx_path).read_text())
    assert good["outputs"]["occlusion_logit"] is None
    del good["outputs"]["occlusion_logit"]  # as exports before the head wrote it
    metadata_path(model).write_text(json.dumps(good))
    runtime = OnnxRuntime(model, threads=2)
    assert not runtime.has_occlusion_logit and runtime(crops(1)).occlusion_logit is None


def test_export_refuses_a_wrong_suffix(exported, tmp_path):
    with pytest.raises(ExportError, match="ends in .onnx"):
        export_onnx(exported[0], tmp_path / "model.pt")
    assert not list(tmp_path.iterdir())


def test_network_file_stems():
    assert network_file_stem("ODN (GM+LM+DM)") == "odn"
    assert network_file_stem("BRNet") == "brnet"
    assert network_file_stem("+GM+DM") == "gm_dm"
    assert network_file_stem("BRNet, conv_pool readout") == "brnet_conv_pool"


# ------------------------------------------------------------------------------ the entry point


def error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines, result.stdout[-2000:]
    return lines[-1]


@pytest.mark.slow
@pytest.mark.parametrize("fmt, suffix", [("onnx", ".onnx"), ("torchscript", ".pt")])
def test_export_writes_model_and_metadata(trained_run, tmp_path, capsys, fmt, suffix):
    """In process, the entry point's task (README's export lines run the program: test_readme_commands)."""
    from odn_lightning.export import export

    ckpt = trained_run / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    out = tmp_path / "out"
    export(compose_config("export", [f"ckpt_path={ckpt}", f"format={fmt}"], out))
    stdout = capsys.readouterr().out
    model_file = out / f"odn{suffix}"
    assert model_file.is_file() and (out / f"odn{suffix}.json").is_file()
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    meta = read_metadata(out / f"odn{suffix}.json")
    assert meta["format"] == fmt and meta["model_file"] == model_file.name and meta["image_size"] == 64
    assert f"model: {model_file}" in stdout and "max abs diff" in stdout
    if fmt == "onnx":
        runtime = OnnxRuntime(model_file)
        assert runtime(crops(2)).landmarks.shape == (2, 68, 2)


@pytest.mark.slow
def test_export_refuses_a_bad_format_and_a_corrupt_checkpoint_in_one_line(tmp_path, capsys):
    """In process, through the entry point's own error handling (the CLI test above starts the program)."""
    from odn_lightning.export import export

    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(b"PK\x03\x04 truncated")
    for args, start in (
        (
            ["ckpt_path=whatever.ckpt", "format=bogus"],
            "error: format=bogus: expected one of onnx, torchscript",
        ),
        ([f"ckpt_path={corrupt}"], f"error: ckpt_path={corrupt} is not a readable checkpoint"),
        ([], "error: no checkpoint given"),
    ):
        code, err = user_error_in_process(capsys, export, compose_config("export", args, tmp_path / "out"))
        assert code == 1
        assert err and err[-1].startswith(start), err
    assert not list((tmp_path / "out").glob("*.onnx"))
