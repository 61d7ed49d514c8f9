"""The synthetic face generator: determinism, landmark semantics, occlusion flags and the on-disk format."""

from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest

from odn_lightning.data.formats.w300 import read_pts_folder
from odn_lightning.data.records import OCCLUDED_BY_OBJECT, SELF_OCCLUDED
from odn_lightning.data.synthetic import (
    FORMAT_VERSION,
    MANIFEST_NAME,
    SPLIT_PROFILES,
    contact_sheet,
    draw_landmarks,
    ensure_synthetic,
    face_rng,
    generate_split,
    render_face,
    render_split_face,
    stable_hash,
)
from odn_lightning.schemes import get_scheme

JAW = np.arange(17)
FRONTAL = (0.0, 0.0, 0.0)


def frontal_faces(count: int, size: int = 128, seed: int = 7) -> list:
    return [
        render_face(face_rng(seed, "frontal", i), "train", size, pose=FRONTAL, occluders=[])
        for i in range(count)
    ]


# ----------------------------------------------------------------------------------------------
# determinism


def test_same_seed_split_index_gives_identical_faces():
    a = render_split_face(3, "train", 5, 96)
    b = render_split_face(3, "train", 5, 96)
    assert a.image.tobytes() == b.image.tobytes()
    assert a.landmarks.tobytes() == b.landmarks.tobytes()
    assert np.array_equal(a.occlusion, b.occlusion) and np.array_equal(a.mask, b.mask)
    assert a.pose == b.pose and a.occluders == b.occluders


def test_seed_split_and_index_all_change_the_face():
    base = render_split_face(3, "train", 5, 96)
    for other in (render_split_face(4, "train", 5, 96), render_split_face(3, "val", 5, 96),
                  render_split_face(3, "train", 6, 96)):  # fmt: skip
        assert not np.allclose(base.landmarks, other.landmarks)
        assert base.image.tobytes() != other.image.tobytes()


def test_stable_hash_is_fixed_across_processes():
    # A fixed value: Python's salted hash() would differ from run to run.
    assert stable_hash("train") == 15782024995084201745
    assert stable_hash("train") != stable_hash("val")


def test_prefix_of_a_split_does_not_depend_on_its_count(tmp_path):
    three = generate_split(tmp_path / "a", "val", 3, seed=1, image_size=64, progress=False)
    five = generate_split(tmp_path / "b", "val", 5, seed=1, image_size=64, progress=False)
    assert len(list(five.glob("*.jpg"))) == 5
    for i in range(3):
        stem = f"val_{i:05d}"
        for name in (f"{stem}.jpg", f"{stem}.pts", f"{stem}.occ", f"masks/{stem}.png"):
            assert (three / name).read_bytes() == (five / name).read_bytes(), name


# ----------------------------------------------------------------------------------------------
# landmark semantics


def test_frontal_faces_follow_the_ibug_layout():
    for face in frontal_faces(12):
        p = face.landmarks
        x, y = p[:, 0], p[:, 1]
        assert x[36] < x[45] and x[0] < x[16], "the subject's right side must be on the image's left"
        assert x[39] < x[42] and x[36] < x[39] < x[42] < x[45]
        assert x[17] < x[21] < x[22] < x[26] and x[31] < x[33] < x[35] and x[48] < x[51] < x[54]
        assert x[60] < x[62] < x[64]
        assert int(np.argmax(y[JAW])) == 8, "the chin is the lowest jaw point"
        eyes_y = y[36:48].mean()
        assert y[17:27].max() < y[36:48].min(), "brows above the eyes"
        assert eyes_y < y[30] < y[51] < y[57] < y[8], "eyes, nose tip, mouth, chin from top to bottom"
        assert y[27] < y[28] < y[29] < y[30], "the nose bridge runs down to the tip"
        assert (y[[37, 38, 43, 44]] <= y[[41, 40, 47, 46]] + 0.1).all(), "upper lids above lower lids"
        assert (y[[61, 62, 63]] <= y[[67, 66, 65]] + 0.1).all(), "upper inner lip above the lower one"
        assert y[51] < y[62] and y[66] < y[57]
        assert not (face.occlusion & SELF_OCCLUDED).any(), "nothing is self-occluded at yaw 0"
        assert not face.occlusion.any() and not face.mask.any() and face.occluders == []


@pytest.mark.parametrize("yaw", [70.0, -70.0, 60.0, -60.0])
def test_large_yaw_hides_the_far_side_of_the_jaw(yaw):
    # Positive yaw turns the face towards the image's right: the image-right jaw (9-16) turns away.
    far, near = (np.arange(9, 17), np.arange(0, 8)) if yaw > 0 else (np.arange(0, 8), np.arange(9, 17))
    for i in range(6):
        face = render_face(face_rng(11, "yaw", i), "train", 128, pose=(yaw, 0.0, 0.0), occluders=[])
        hidden = (face.occlusion & SELF_OCCLUDED) > 0
        assert hidden[far].sum() >= 3, hidden[JAW]
        assert not hidden[near].any(), hidden[JAW]
        jaw_centre = face.landmarks[JAW, 0].mean()
        assert np.sign(face.landmarks[30, 0] - jaw_centre) == np.sign(yaw), (
            "the nose points where the face turns"
        )
        eye = np.arange(42, 48) if yaw > 0 else np.arange(36, 42)
        assert hidden[eye].sum() >= 2, "the far eye is (partly) hidden"


def test_pose_and_occluder_overrides_are_honoured():
    face = render_face(
        face_rng(0, "x", 0), "challenging", 96, pose=(10.0, -5.0, 3.0), occluders=["glasses", "hand"]
    )
    assert face.pose == (10.0, -5.0, 3.0) and face.occluders == ["glasses", "hand"]
    assert face.mask.any()
    with pytest.raises(ValueError, match="occluder"):
        render_face(face_rng(0, "x", 0), "train", 96, occluders=["umbrella"])
    with pytest.raises(ValueError, match="profile"):
        render_face(face_rng(0, "x", 0), "nope", 96)


# ----------------------------------------------------------------------------------------------
# occlusion


def test_object_flags_match_the_occluder_mask():
    checked = covered = 0
    for i in range(40):
        face = render_face(face_rng(5, "occ", i), "challenging" if i % 2 else "train", 96)
        h, w = face.mask.shape
        assert face.mask.dtype == np.uint8 and set(np.unique(face.mask)) <= {0, 255}
        ij = np.rint(face.landmarks).astype(int)
        inside = (ij[:, 0] >= 0) & (ij[:, 0] < w) & (ij[:, 1] >= 0) & (ij[:, 1] < h)
        at_point = np.zeros(len(ij), bool)
        at_point[inside] = face.mask[ij[inside, 1], ij[inside, 0]] > 0
        flagged = (face.occlusion & OCCLUDED_BY_OBJECT) > 0
        assert np.array_equal(flagged[inside], at_point[inside]), i
        assert not flagged[~inside].any()
        assert face.occlusion.max() <= OCCLUDED_BY_OBJECT | SELF_OCCLUDED
        checked += int(inside.sum())
        covered += int(flagged.sum())
        if not face.occluders:
            assert not face.mask.any()
    assert covered > 0.1 * checked, "occluders should cover a fair share of points in these profiles"


def test_occluders_change_the_pixels_they_mask():
    # The same face with and without a hand differs where (and only where) the mask is set.
    kinds = ["hand", "mask", "glasses", "shape", "hair"]
    for i, kind in enumerate(kinds):
        bare = render_face(face_rng(9, "same", i), "train", 128, pose=FRONTAL, occluders=[])
        occluded = render_face(face_rng(9, "same", i), "train", 128, pose=FRONTAL, occluders=[kind])
        assert np.array_equal(bare.landmarks, occluded.landmarks)
        covered = occluded.mask > 0
        assert covered.sum() > 20, kind
        diff = np.abs(bare.image.astype(int) - occluded.image.astype(int)).max(2)
        # away from the mask the images agree (up to the camera blur spreading the occluder's edge)
        far = cv2.dilate(covered.astype(np.uint8), np.ones((11, 11), np.uint8)) == 0
        assert diff[far].max() <= 1, kind
        assert diff[covered].mean() > 3.0, kind


# ----------------------------------------------------------------------------------------------
# profiles and image content


def test_profiles_differ_as_documented():
    stats = {}
    for profile in ("common", "challenging"):
        faces = [render_face(face_rng(2, profile, i), profile, 64) for i in range(40)]
        stats[profile] = (
            np.mean([abs(f.pose[0]) for f in faces]),
            np.mean([(f.occlusion & OCCLUDED_BY_OBJECT).mean() for f in faces]),
            np.mean([len(f.occluders) for f in faces]),
        )
        if profile == "common":
            assert max(abs(f.pose[0]) for f in faces) <= 30 and max(abs(f.pose[2]) for f in faces) <= 15
            for f in faces:
                inside = (f.landmarks >= 0).all() and (f.landmarks <= 63).all()
                assert inside, "non-challenging faces lie inside the image"
    assert stats["challenging"][0] > stats["common"][0] + 15
    assert stats["challenging"][1] > stats["common"][1] + 0.1
    assert stats["challenging"][2] >= 1 and stats["common"][2] < 0.6
    assert set(SPLIT_PROFILES) >= {"train", "val", "common", "challenging"}


def test_face_size_is_a_fraction_of_the_image():
    for i in range(20):
        face = render_split_face(0, "train", i, 128)
        width = np.linalg.norm(face.landmarks[16] - face.landmarks[0]) if abs(face.pose[0]) < 20 else None
        if width is not None:
            assert 0.3 * 128 < width < 0.8 * 128


def test_eyes_are_drawn_where_the_eye_landmarks_are():
    diffs, stds = [], []
    for face in frontal_faces(16, size=128):
        grey = cv2.cvtColor(face.image, cv2.COLOR_RGB2GRAY).astype(np.float32)
        for eye in (np.arange(36, 42), np.arange(42, 48)):
            inner = np.zeros(grey.shape, np.uint8)
            cv2.fillPoly(inner, [np.rint(face.landmarks[eye]).astype(np.int32)], 255)
            if inner.sum() < 255 * 6:
                continue  # a blink: the eye is a line
            ring = cv2.dilate(inner, np.ones((9, 9), np.uint8)) - cv2.dilate(inner, np.ones((3, 3), np.uint8))
            diffs.append(abs(grey[inner > 0].mean() - grey[ring > 0].mean()))
            stds.append(grey[inner > 0].std())
    assert np.median(diffs) > 8, diffs
    assert np.median(stds) > 10, "the eye has structure (sclera, iris, pupil), not flat skin"


def test_images_are_not_blank():
    face = render_split_face(0, "common", 0, 96)
    assert face.image.shape == (96, 96, 3) and face.image.dtype == np.uint8
    assert face.image.std() > 10
    assert face.landmarks.shape == (68, 2) and face.landmarks.dtype == np.float32
    assert face.occlusion.shape == (68,) and face.occlusion.dtype == np.uint8


def test_flip_permutation_matches_mirrored_frontal_geometry():
    # Mirror pairs of the scheme sit symmetrically about the face's vertical axis at yaw 0.
    perm = np.asarray(get_scheme("ibug68").flip_permutation)
    for face in frontal_faces(4):
        p = face.landmarks.astype(np.float64)
        axis = p[[27, 28, 29, 30, 33, 51, 57, 8]].mean(0)[0]
        mirrored = p[perm].copy()
        mirrored[:, 0] = 2 * axis - mirrored[:, 0]
        assert np.abs(mirrored - p).max() < 0.12 * (p[16, 0] - p[0, 0])


# ----------------------------------------------------------------------------------------------
# files and the manifest


def test_written_split_round_trips_through_the_reader(tmp_path):
    folder = generate_split(tmp_path, "challenging", 4, seed=3, image_size=80, progress=False)
    records = read_pts_folder(folder)
    assert [r.image_path.name for r in records] == [f"challenging_{i:05d}.jpg" for i in range(4)]
    errors, swapped = [], []
    for i, record in enumerate(records):
        face = render_split_face(3, "challenging", i, 80)
        assert np.abs(record.landmarks - face.landmarks).max() < 1e-3
        assert np.array_equal(record.occlusion, face.occlusion)
        assert record.mask_path is not None and record.mask_path.exists()
        assert np.array_equal(cv2.imread(str(record.mask_path), cv2.IMREAD_UNCHANGED), face.mask)
        image = cv2.imread(str(record.image_path), cv2.IMREAD_COLOR)
        assert image.shape == (80, 80, 3)
        errors.append(np.abs(cv2.cvtColor(image, cv2.COLOR_BGR2RGB).astype(int) - face.image).mean())
        swapped.append(np.abs(image.astype(int) - face.image).mean())
    assert max(errors) < 10 and sum(errors) < 0.6 * sum(swapped), "the JPEG holds the RGB image, not BGR"


def test_unknown_split_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"'testset'.*challenging"):
        generate_split(tmp_path, "testset", 2, seed=0, progress=False)
    with pytest.raises(ValueError, match="testset"):
        ensure_synthetic(tmp_path, {"testset": 2}, progress=False)


def _mtimes(folder) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}


def test_ensure_synthetic_is_idempotent_and_regenerates_only_what_changed(tmp_path, capsys):
    sizes = {"train": 4, "val": 2, "common": 2}
    root = ensure_synthetic(tmp_path, sizes, seed=0, image_size=64, progress=False)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "train 4" in out and str(tmp_path) in out
    manifest = json.loads((root / MANIFEST_NAME).read_text())
    assert manifest == {"format_version": FORMAT_VERSION, "seed": 0, "image_size": 64, "splits": sizes}
    assert len(read_pts_folder(root / "train")) == 4

    before = {s: _mtimes(root / s) for s in sizes}
    manifest_mtime = (root / MANIFEST_NAME).stat().st_mtime_ns
    ensure_synthetic(tmp_path, sizes, seed=0, image_size=64, progress=False)
    assert capsys.readouterr().out == ""
    assert {s: _mtimes(root / s) for s in sizes} == before
    assert (root / MANIFEST_NAME).stat().st_mtime_ns == manifest_mtime

    # a stale file in the changed split disappears; the other splits are untouched
    (root / "val" / "stale.jpg").write_bytes(b"")
    ensure_synthetic(tmp_path, {**sizes, "val": 3}, seed=0, image_size=64, progress=False)
    assert "val 3" in capsys.readouterr().out
    assert _mtimes(root / "train") == before["train"] and _mtimes(root / "common") == before["common"]
    assert sorted(p.name for p in (root / "val").glob("*.jpg")) == [f"val_{i:05d}.jpg" for i in range(3)]
    assert json.loads((root / MANIFEST_NAME).read_text())["splits"] == {**sizes, "val": 3}

    # a different seed regenerates everything, with different faces
    ensure_synthetic(tmp_path, {**sizes, "val": 3}, seed=1, image_size=64, progress=False)
    assert (
        read_pts_folder(root / "train")[0].landmarks.tolist()
        != render_split_face(0, "train", 0, 64).landmarks.tolist()
    )
    assert json.loads((root / MANIFEST_NAME).read_text())["seed"] == 1


def test_interrupted_generation_is_redone(tmp_path):
    ensure_synthetic(tmp_path, {"val": 2}, seed=0, image_size=64, progress=False)
    # Simulate a crash after the split folder was deleted but before the manifest was rewritten.
    manifest = json.loads((tmp_path / MANIFEST_NAME).read_text())
    for p in (tmp_path / "val").glob("val_00001.*"):
        p.unlink()
    ensure_synthetic(tmp_path, {"val": 2}, seed=0, image_size=64, progress=False)
    assert len(read_pts_folder(tmp_path / "val")) == 2
    assert json.loads((tmp_path / MANIFEST_NAME).read_text()) == manifest


def test_parallel_generation_writes_identical_files(tmp_path):
    serial = generate_split(tmp_path / "serial", "train", 4, seed=2, image_size=64, progress=False)
    parallel = generate_split(
        tmp_path / "parallel", "train", 4, seed=2, image_size=64, progress=False, workers=2
    )
    names = sorted(p.relative_to(serial).as_posix() for p in serial.rglob("*") if p.is_file())
    assert names == sorted(p.relative_to(parallel).as_posix() for p in parallel.rglob("*") if p.is_file())
    for name in names:
        assert (serial / name).read_bytes() == (parallel / name).read_bytes(), name
    assert os.path.isdir(parallel / "masks")


def test_a_crash_during_generation_leaves_no_false_manifest(tmp_path, monkeypatch):
    from odn_lightning.data.synthetic import storage

    ensure_synthetic(tmp_path, {"val": 2}, seed=0, image_size=64, progress=False)
    real = storage.generate_split

    def crash_after_writing(*args, **kwargs):
        real(*args, **kwargs)
        raise KeyboardInterrupt

    # Seed 1 is written completely, then the run dies before its manifest is final.
    monkeypatch.setattr(storage, "generate_split", crash_after_writing)
    with pytest.raises(KeyboardInterrupt):
        ensure_synthetic(tmp_path, {"val": 2}, seed=1, image_size=64, progress=False)
    monkeypatch.setattr(storage, "generate_split", real)
    # Back to seed 0: the folder holds seed-1 faces, so it must be regenerated, not trusted.
    ensure_synthetic(tmp_path, {"val": 2}, seed=0, image_size=64, progress=False)
    for i, record in enumerate(read_pts_folder(tmp_path / "val")):
        assert np.abs(record.landmarks - render_split_face(0, "val", i, 64).landmarks).max() < 1e-3


# ----------------------------------------------------------------------------------------------
# previews


def _far_from_landmarks(face, distance: float) -> np.ndarray:
    h, w = face.mask.shape
    ys, xs = np.mgrid[0:h, 0:w]
    d = np.hypot(xs[..., None] - face.landmarks[:, 0], ys[..., None] - face.landmarks[:, 1]).min(2)
    return d > distance


def test_draw_landmarks_colours_points_by_occlusion_and_leaves_the_rest():
    radius = 2
    colours = {0: (0, 255, 0), 1: (255, 0, 0), 2: (60, 120, 255), 3: (255, 0, 255)}
    seen = set()
    for i in range(6):
        face = render_face(face_rng(4, "preview", i), "challenging", 96)
        drawn = draw_landmarks(face, radius=radius)
        assert drawn.shape == face.image.shape and drawn.dtype == np.uint8
        far = _far_from_landmarks(face, radius + 2.5)  # anti-aliased edges reach ~2 px further
        bare, tinted = far & (face.mask == 0), far & (face.mask > 0)
        assert np.array_equal(drawn[bare], face.image[bare])
        expected = (face.image[tinted] * 0.6 + np.array([0, 0, 120]) * 0.4).astype(np.uint8)
        assert np.array_equal(drawn[tinted], expected)
        # A point's own pixel has its flag's colour where no other point's disc reaches it.
        gaps = np.linalg.norm(face.landmarks[:, None] - face.landmarks[None], axis=2)
        np.fill_diagonal(gaps, np.inf)
        for (x, y), flag, gap in zip(face.landmarks, face.occlusion, gaps.min(1), strict=True):
            col, row = int(round(x)), int(round(y))
            if gap > 2 * radius + 2 and 0 <= col < 96 and 0 <= row < 96:
                assert tuple(drawn[row, col]) == colours[int(flag)]
                seen.add(int(flag))
    assert {0, 1, 2} <= seen


def test_contact_sheet_tiles_faces_row_by_row():
    faces = [render_split_face(0, "common", i, 48) for i in range(5)]
    sheet = contact_sheet(faces, columns=3, annotate=False)
    assert sheet.shape == (2 * 48, 3 * 48, 3) and sheet.dtype == np.uint8
    for k, face in enumerate(faces):
        r, c = divmod(k, 3)
        assert np.array_equal(sheet[r * 48 : (r + 1) * 48, c * 48 : (c + 1) * 48], face.image), k
    assert not sheet[48:, 2 * 48 :].any(), "the cell after the last face stays black"
    annotated = contact_sheet(faces, columns=3)
    assert np.array_equal(annotated[48:, 48:96], draw_landmarks(faces[4]))
