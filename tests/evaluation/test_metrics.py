from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torchmetrics.classification import BinaryAUROC

from odn_lightning.crop import to_normalised
from odn_lightning.evaluation.metrics import (
    LandmarkNME,
    auc_at,
    ced_curve,
    failure_rate_at,
    normalisation_for,
    per_sample_nme,
)
from odn_lightning.evaluation.occlusion_metrics import (
    BinnedAUROC,
    FaceAUROC,
    FaceOccluderAUROC,
    LandmarkOcclusionAUROC,
    OccluderAUROC,
    crop_probability,
    face_region,
    landmark_occlusion_scores,
)
from odn_lightning.schemes import get_scheme

SCHEME = get_scheme("ibug68")


def face(outer_left=(0.0, 0.0), outer_right=(10.0, 0.0)) -> torch.Tensor:
    points = torch.zeros(1, 68, 2)
    points[0, 36] = torch.tensor(outer_left)
    points[0, 45] = torch.tensor(outer_right)
    return points


def test_inter_ocular_nme_by_hand():
    target = face()
    pred = target.clone()
    pred[0, 0] += torch.tensor([3.0, 4.0])  # one point off by 5 px; inter-ocular distance 10
    expected = 5.0 / 68 / 10.0
    assert per_sample_nme(pred, target, SCHEME, "inter_ocular").item() == pytest.approx(expected)


def test_inter_pupil_uses_eye_centres():
    target = face()
    target[0, 36:42] = torch.tensor([0.0, 0.0])
    target[0, 42:48] = torch.tensor([20.0, 0.0])
    pred = target + torch.tensor([1.0, 0.0])
    assert per_sample_nme(pred, target, SCHEME, "inter_pupil").item() == pytest.approx(1.0 / 20.0)


def test_metric_accumulates_batches_like_numpy():
    rng = np.random.default_rng(0)
    target = rng.normal(size=(10, 68, 2)).astype(np.float32)
    pred = target + rng.normal(scale=0.1, size=target.shape).astype(np.float32)
    metric = LandmarkNME()
    metric.update(torch.from_numpy(pred[:4]), torch.from_numpy(target[:4]))
    metric.update(torch.from_numpy(pred[4:]), torch.from_numpy(target[4:]))
    iod = np.linalg.norm(target[:, 36] - target[:, 45], axis=-1)
    expected = (np.linalg.norm(pred - target, axis=-1).mean(axis=1) / iod).mean()
    assert metric.compute()["nme"].item() == pytest.approx(expected, rel=1e-5)


def test_auc_and_failure_rate_limits():
    perfect = torch.zeros(100)
    hopeless = torch.full((100,), 0.5)
    assert auc_at(perfect, 0.08).item() == pytest.approx(1.0, abs=1e-3)
    assert failure_rate_at(perfect, 0.08).item() == 0.0
    assert auc_at(hopeless, 0.08).item() == 0.0
    assert failure_rate_at(hopeless, 0.08).item() == 1.0
    half = torch.tensor([0.0, 0.5])
    assert failure_rate_at(half, 0.1).item() == 0.5


def test_unknown_normalisation_is_named():
    with pytest.raises(ValueError, match="inter_ocular"):
        LandmarkNME(normalisation="nose")


# ------------------------------------------------------------------ every normalisation, by hand


def boxed_face(width=40.0, height=90.0):
    target = face(outer_left=(10.0, 20.0), outer_right=(40.0, 60.0))  # inter-ocular 50
    box = torch.tensor([[0.0, 0.0, width, height]])
    return target, box


@pytest.mark.parametrize(
    "normalisation,distance",
    [
        ("inter_ocular", 50.0),
        ("box_width", 40.0),  # the ODN paper's AFLW
        ("box_max_side", 90.0),  # mmpose's AFLW bbox_size
        ("box_sqrt_area", 60.0),  # SAN: sqrt(40 * 90) = 60
        ("box_size", 75.0),  # HRNet's AFLW CSV column, whatever the box
    ],
)
def test_each_normalisation_by_hand(normalisation, distance):
    target, box = boxed_face()
    pred = target.clone()
    pred[0, 3] += torch.tensor([6.0, 8.0])  # one point 10 px off: mean error 10 / 68
    metric = LandmarkNME(normalisation=normalisation)
    metric.update(pred, target, normalising_box=box, box_size=torch.tensor([75.0]))
    assert metric.compute()["nme"].item() == pytest.approx(10.0 / 68 / distance, rel=1e-6)


def test_box_normalisation_without_a_box_is_a_clear_error():
    target, box = boxed_face()
    with pytest.raises(ValueError, match="box_width.*needs each face's box"):
        LandmarkNME(normalisation="box_width").update(target, target)
    # box_size is the dataset's own column: a face without it (NaN) cannot be divided by it.
    with pytest.raises(ValueError, match="box_size.*which these faces lack"):
        LandmarkNME(normalisation="box_size").update(target, target, box, box_size=torch.tensor([np.nan]))


def test_each_split_takes_its_own_normalisation_from_a_mapping():
    setting = {"cofw68": "inter_pupil", "default": "inter_ocular"}
    assert normalisation_for(setting, "cofw68") == "inter_pupil"
    assert normalisation_for(setting, "common") == "inter_ocular"
    assert normalisation_for("box_width", "anything") == "box_width"
    with pytest.raises(ValueError, match="no normalisation for split 'common'.*add `common: inter_ocular`"):
        normalisation_for({"cofw68": "inter_pupil"}, "common")


@pytest.mark.parametrize("normalisation", ["inter_ocular", "inter_pupil", "box_width", "box_sqrt_area"])
def test_metric_equals_an_independent_numpy_computation(normalisation):
    rng = np.random.default_rng(1)
    target = rng.uniform(0, 500, size=(37, 68, 2))
    pred = target + rng.normal(scale=5.0, size=target.shape)
    box = np.concatenate([target.min(axis=1) - 10, target.max(axis=1) + 10], axis=1)
    if normalisation == "inter_ocular":
        distance = np.linalg.norm(target[:, 36] - target[:, 45], axis=-1)
    elif normalisation == "inter_pupil":
        distance = np.linalg.norm(target[:, 36:42].mean(1) - target[:, 42:48].mean(1), axis=-1)
    else:
        w, h = box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]
        distance = w if normalisation == "box_width" else np.sqrt(w * h)
    errors = np.linalg.norm(pred - target, axis=-1).mean(axis=1) / distance
    metric = LandmarkNME(normalisation=normalisation, thresholds=(0.08, 0.1, 0.2))
    for chunk in np.array_split(np.arange(37), 4):
        metric.update(
            *(torch.from_numpy(a[chunk]) for a in (pred, target)),
            normalising_box=torch.from_numpy(box[chunk]),
        )
    result = metric.compute()
    assert result["nme"].item() == pytest.approx(errors.mean(), rel=1e-6)
    for t, key in ((0.08, "08"), (0.1, "10"), (0.2, "20")):
        assert result[f"fr_{key}"].item() == pytest.approx((errors > t).mean())
        # AUC by a fine numerical integration of the CED, independently of auc_at's closed form.
        xs = np.linspace(0, t, 200001)
        ced = (errors[None, :] <= xs[:, None]).mean(axis=1)
        assert result[f"auc_{key}"].item() == pytest.approx(np.trapezoid(ced, xs) / t, abs=1e-4)


def test_ced_is_monotone_and_reaches_one():
    errors = torch.from_numpy(np.random.default_rng(2).uniform(0, 0.05, 50))
    xs, fractions = ced_curve(errors, 0.08)
    assert xs[0] == 0 and xs[-1] == pytest.approx(0.08)
    assert (fractions[1:] >= fractions[:-1]).all()
    assert fractions[-1] == 1.0 and fractions[0] == 0.0


def test_auc_is_exact_at_known_limits():
    assert auc_at(torch.zeros(10), 0.08).item() == 1.0
    assert auc_at(torch.full((10,), 0.08, dtype=torch.float64), 0.08).item() == 0.0
    assert auc_at(torch.tensor([0.04]), 0.08).item() == pytest.approx(0.5)  # a triangle's half
    assert auc_at(torch.tensor([0.0, 1.0]), 0.1).item() == pytest.approx(0.5)


def test_faces_seen_twice_count_once():
    rng = np.random.default_rng(3)
    target = torch.from_numpy(rng.uniform(0, 100, (6, 68, 2)))
    pred = target + torch.from_numpy(rng.normal(size=target.shape))
    once, twice = LandmarkNME(), LandmarkNME()
    once.update(pred, target, index=torch.arange(6))
    twice.update(pred[:4], target[:4], index=torch.arange(4))
    twice.update(pred[3:], target[3:], index=torch.arange(3, 6))  # face 3 again, as DDP padding does
    assert twice.compute()["nme"].item() == once.compute()["nme"].item()
    indices, errors = twice.per_sample()
    assert indices.tolist() == list(range(6)) and len(errors) == 6


def test_occluded_and_visible_points_are_measured_apart():
    target = face()
    pred = target.clone()
    pred[0, :10, 0] += 5.0  # the 10 occluded points are 5 px off; the visible ones are exact
    visible = torch.ones(1, 68, dtype=torch.bool)
    visible[0, :10] = False
    metric = LandmarkNME()
    metric.update(pred, target, visible=visible)
    result = metric.compute()
    assert result["nme_occluded"].item() == pytest.approx(5.0 / 10.0)  # inter-ocular 10
    assert result["nme_visible"].item() == 0.0
    without = LandmarkNME()
    without.update(pred, target)
    assert "nme_occluded" not in without.compute()


def test_visible_and_occluded_nme_average_per_face_and_pooled_over_points():
    target = face().expand(3, -1, -1).clone()  # inter-ocular distance 10
    pred = target.clone()
    visible = torch.ones(3, 68, dtype=torch.bool)
    # Face 0: 2 visible points, each 10 px off (1.0 normalised); its 66 occluded points exact.
    visible[0, 2:] = False
    pred[0, :2, 0] += 10.0
    # Face 1: 4 occluded points, each 5 px off (0.5); its 64 visible points exact.
    visible[1, :4] = False
    pred[1, :4, 0] += 5.0
    # Face 2: 68 visible points, exact; no occluded point, so it is left out of the occluded mean.
    metric = LandmarkNME()
    metric.update(pred, target, visible=visible)
    result = {key: value.item() for key, value in metric.compute().items()}
    # Per face first (COFW-68's benchmark): visible (1.0 + 0 + 0) / 3, occluded (0 + 0.5) / 2.
    assert result["nme_visible"] == pytest.approx(1.0 / 3.0)
    assert result["nme_occluded"] == pytest.approx(0.25)
    # Pooled over the points: visible 2 x 1.0 / (2 + 64 + 68), occluded 4 x 0.5 / (66 + 4).
    assert result["nme_visible_pooled"] == pytest.approx(2.0 / 134.0)
    assert result["nme_occluded_pooled"] == pytest.approx(2.0 / 70.0)


def test_occluder_auroc_is_one_for_a_perfect_map_and_about_half_for_a_random_one():
    generator = torch.Generator().manual_seed(0)
    mask = torch.zeros(4, 64, 64, dtype=torch.uint8)
    mask[:, 16:48, 8:40] = 255
    perfect_map = 1.0 - (mask[:, None].float() / 255)  # P = 0 on occluders, 1 elsewhere
    perfect = OccluderAUROC()
    perfect.update(perfect_map, mask)
    assert perfect.compute().item() == pytest.approx(1.0, abs=1e-3)
    random = OccluderAUROC()
    random.update(torch.rand(4, 1, 8, 8, generator=generator), mask)
    assert random.compute().item() == pytest.approx(0.5, abs=0.1)
    inverted = OccluderAUROC()
    inverted.update(1.0 - perfect_map, mask)
    assert inverted.compute().item() == pytest.approx(0.0, abs=1e-3)


def faces_off_by(offsets_px: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """One face per offset: every point `offset` px off in x (inter-ocular distance 10)."""
    target = face().expand(len(offsets_px), -1, -1).clone()
    pred = target + torch.tensor(offsets_px)[:, None, None] * torch.tensor([1.0, 0.0])
    return pred, target


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_prediction_is_a_failure_and_the_nme_is_nan(bad):
    pred, target = faces_off_by([0.1, 0.2, 0.3, 0.4])  # NME 0.01 .. 0.04: below both thresholds
    good = LandmarkNME(thresholds=(0.08, 0.10))
    good.update(pred, target)
    without = good.compute()
    pred[2, 5, 1] = bad  # one coordinate of one face
    metric = LandmarkNME(thresholds=(0.08, 0.10))
    metric.update(pred, target)
    result = metric.compute()
    assert without["fr_08"].item() == 0.0 and without["fr_10"].item() == 0.0
    assert result["fr_08"].item() == 0.25 and result["fr_10"].item() == 0.25  # 1 face of 4
    assert torch.isnan(result["nme"]) and torch.isfinite(without["nme"])
    assert result["auc_08"].item() < without["auc_08"].item()
    # The failed face adds 0 to the AUC: the other three keep their share.
    expected = (without["auc_08"].item() * 4 - (0.08 - 0.03) / 0.08) / 4
    assert result["auc_08"].item() == pytest.approx(expected, rel=1e-6)


def test_failure_rate_auc_and_ced_count_nan_errors_as_failures():
    errors = torch.tensor([0.01, float("nan"), 0.02, 0.03, float("inf")], dtype=torch.float64)
    assert failure_rate_at(errors, 0.08).item() == 2 / 5
    assert auc_at(errors, 0.1).item() == pytest.approx((0.09 + 0.08 + 0.07) / 0.1 / 5)
    _, fractions = ced_curve(errors, 0.1)
    assert fractions[-1].item() == 3 / 5


def test_a_split_without_occluded_points_has_no_occluded_nme_rather_than_nan():
    pred, target = faces_off_by([1.0, 2.0])
    metric = LandmarkNME()
    metric.update(pred, target, visible=torch.ones(2, 68, dtype=torch.bool))
    result = metric.compute()
    assert "nme_occluded" not in result and "nme_occluded_pooled" not in result
    assert result["nme_visible"].item() == pytest.approx(0.15)
    assert result["nme_visible_pooled"].item() == pytest.approx(0.15)  # equal counts: the same mean


# ------------------------------------------------------------------------ occlusion-map AUROCs

S = 32  # crop side of the constructed faces; their maps are at crop resolution, so P is not resampled


def pixels_to_crop(points_px) -> torch.Tensor:
    """Crop pixels (centres on integers) -> the crop's [-1, 1] frame."""
    return torch.from_numpy(to_normalised(np.asarray(points_px, dtype=np.float64), S)).float()


def diamond_face(centre=(15, 15), radius=8, faces=2) -> torch.Tensor:
    """68 points on and inside the diamond |x - cx| + |y - cy| <= radius (crop pixels): (faces, 68, 2)."""
    rng = np.random.default_rng(4)
    cx, cy = centre
    corners = [(cx - radius, cy), (cx, cy - radius), (cx + radius, cy), (cx, cy + radius)]
    inner = rng.uniform(-radius / 2, radius / 2, (64, 2)) / 2 + centre
    return pixels_to_crop(np.concatenate([corners, inner]))[None].repeat(faces, 1, 1)


def diamond_region(centre=(15, 15), radius=8) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(S), torch.arange(S), indexing="ij")
    return (xs - centre[0]).abs() + (ys - centre[1]).abs() <= radius


def test_face_region_is_the_pixels_whose_centre_is_in_the_landmarks_hull():
    landmarks = diamond_face()
    region = face_region(landmarks, S)
    assert region.shape == (2, S, S)
    assert torch.equal(region[0], diamond_region()) and torch.equal(region[1], diamond_region())
    # The point order does not matter, and a triangle's hull is the triangle.
    triangle = pixels_to_crop([(4, 4), (20, 4), (4, 20), (8, 8)])[None]
    ys, xs = torch.meshgrid(torch.arange(S), torch.arange(S), indexing="ij")
    expected = (xs >= 4) & (ys >= 4) & (xs + ys <= 24)
    assert torch.equal(face_region(triangle, S)[0], expected)
    assert torch.equal(face_region(triangle.flip(1), S)[0], expected)
    assert not face_region(pixels_to_crop([(2, 2), (5, 5), (9, 9)])[None], S).any()  # collinear: empty


def test_landmark_scores_read_the_map_at_pixel_centres_in_the_crop_frame():
    hot = torch.zeros(1, 1, 7, 7)
    hot[0, 0, 2, 5] = 1.0  # row (y) 2, column (x) 5
    points = torch.from_numpy(to_normalised(np.array([[5.0, 2.0], [4.0, 2.0], [4.5, 2.0], [5.0, 2.5]]), 7))
    scores = landmark_occlusion_scores(hot, points[None].float())[0]
    # At the hot pixel's centre 1 - P = 0; at its neighbour's 1; half-way, bilinear, 0.5.
    torch.testing.assert_close(scores, torch.tensor([0.0, 1.0, 0.5, 0.5]))
    # A point at a crop pixel's centre reads what the pixel AUROCs see there: the map up-sampled to the crop.
    occlusion_map = torch.rand(2, 1, 7, 7, generator=torch.Generator().manual_seed(5))
    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    centres = torch.from_numpy(to_normalised(torch.stack([xs, ys], -1).reshape(-1, 2).numpy(), 28)).float()
    read = landmark_occlusion_scores(occlusion_map, centres[None].expand(2, -1, -1)).view(2, 28, 28)
    torch.testing.assert_close(read, 1.0 - crop_probability(occlusion_map, 28))


def mann_whitney(positives: np.ndarray, negatives: np.ndarray) -> float:
    """P(positive > negative) + P(tie) / 2, pair by pair."""
    diff = positives[:, None] - negatives[None, :]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


def test_binned_auroc_is_the_pairwise_probability_of_the_rounded_scores():
    rng = np.random.default_rng(6)
    bins = rng.integers(0, 200, size=(3, 400))
    labels = rng.random((3, 400)) < bins / 300  # higher bins more often positive
    scores = (bins + 0.5) / 200  # mid-bin: rounding down to 0.005 steps gives `bins` unambiguously
    metric = BinnedAUROC()
    metric.update(torch.from_numpy(scores), torch.from_numpy(labels), None, None)
    expected = mann_whitney(bins[labels], bins[~labels])
    assert 0.6 < expected < 0.9
    assert metric.compute().item() == pytest.approx(expected, abs=1e-6)
    # torchmetrics' binned AUROC agrees where no score is 1 (its curve then ends at (0, 0) too).
    reference = BinaryAUROC(thresholds=201)
    reference.update(torch.from_numpy(scores).float().flatten(), torch.from_numpy(labels).long().flatten())
    assert metric.compute().item() == pytest.approx(reference.compute().item(), abs=1e-6)


def test_binned_auroc_counts_a_face_seen_twice_once_and_is_nan_without_both_classes():
    rng = np.random.default_rng(7)
    scores = torch.from_numpy(rng.random((5, 50)))
    labels = torch.from_numpy(rng.random((5, 50)) < 0.4)
    once, twice = BinnedAUROC(), BinnedAUROC()
    once.update(scores, labels, None, torch.arange(5))
    twice.update(scores[:3], labels[:3], None, torch.arange(3))
    twice.update(scores[2:], labels[2:], None, torch.arange(2, 5))  # face 2 again, as DDP padding does
    assert twice.compute().item() == once.compute().item()
    duplicated = BinnedAUROC()
    duplicated.update(scores[[0, 1, 2, 2, 3, 4]], labels[[0, 1, 2, 2, 3, 4]], None, None)  # no index: 6 faces
    assert duplicated.compute().item() != once.compute().item()
    no_positive = BinnedAUROC()
    no_positive.update(scores, torch.zeros_like(labels), None, None)
    assert math.isnan(no_positive.compute().item())


def occluded_faces():
    """Two diamond faces; an occluder over the face's left half and over a background corner."""
    landmarks = diamond_face()
    mask = torch.zeros(2, S, S, dtype=torch.uint8)
    mask[:, 5:26, 3:15] = 255
    mask[:, 0:4, 26:32] = 255
    return landmarks, mask


def test_occluder_auroc_in_face_counts_only_the_face():
    landmarks, mask = occluded_faces()
    face = diamond_region()
    occluded = (mask > 0).float()
    # Right inside the face; outside it, P is 1 on the occluders (the background is "visible").
    perfect = torch.where(face, 1.0 - occluded, 1.0)[:, None]
    inverted = torch.where(face, occluded, 0.5)[:, None]

    def auroc(metric, occlusion_map):
        metric.update(occlusion_map, mask, landmarks)
        return metric.compute().item()

    assert auroc(FaceOccluderAUROC(), perfect) == 1.0
    assert auroc(FaceOccluderAUROC(), inverted) == 0.0
    assert auroc(FaceOccluderAUROC(), torch.full((2, 1, S, S), 0.3)) == 0.5
    # Over the whole crop the same map errs on the background occluders.
    everywhere = OccluderAUROC()
    everywhere.update(perfect, mask)
    assert everywhere.compute().item() < 0.99


def test_occluder_auroc_in_face_is_nan_for_an_occluder_only_on_the_background():
    landmarks, _ = occluded_faces()
    mask = torch.zeros(2, S, S, dtype=torch.uint8)
    mask[:, 0:4, 26:32] = 255  # a corner, outside the diamond
    metric = FaceOccluderAUROC()
    metric.update(torch.rand(2, 1, S, S), mask, landmarks)
    assert math.isnan(metric.compute().item())  # no occluded face pixel: not defined
    whole_crop = OccluderAUROC()
    whole_crop.update(torch.rand(2, 1, S, S), mask)
    assert not math.isnan(whole_crop.compute().item())


def test_face_auroc_is_p_against_the_face_region():
    landmarks = diamond_face()
    face = diamond_region().float().expand(2, 1, S, S)

    def auroc(occlusion_map):
        metric = FaceAUROC()
        metric.update(occlusion_map, landmarks, S)
        return metric.compute().item()

    assert auroc(face) == 1.0
    assert auroc(1.0 - face) == 0.0
    assert auroc(torch.full((2, 1, S, S), 0.7)) == 0.5
    # A low-resolution map, up-sampled: a blob in the middle of the crop is mostly face.
    blob = torch.zeros(2, 1, 4, 4)
    blob[:, :, 1:3, 1:3] = 1.0
    assert 0.8 < auroc(blob) < 1.0


def test_landmark_occlusion_auroc_reads_p_at_each_point_against_its_flags():
    rng = np.random.default_rng(8)
    points = rng.choice(S * S, size=(3, 68), replace=False)  # distinct pixel centres per face
    xs, ys = points % S, points // S
    landmarks = pixels_to_crop(np.stack([xs, ys], -1))
    visible = torch.from_numpy(rng.random((3, 68)) > 0.3)

    def map_with(value_visible, value_occluded):
        occlusion_map = torch.full((3, 1, S, S), 0.5)
        for f in range(3):
            occlusion_map[f, 0, ys[f], xs[f]] = torch.where(visible[f], value_visible, value_occluded)
        return occlusion_map

    def auroc(occlusion_map, has_visibility=None, flags=visible):
        metric = LandmarkOcclusionAUROC()
        metric.update(occlusion_map, landmarks, flags, has_visibility)
        return metric.compute().item()

    assert auroc(map_with(0.9, 0.1)) == 1.0
    assert auroc(map_with(0.1, 0.9)) == 0.0
    assert auroc(torch.full((3, 1, S, S), 0.2)) == 0.5
    assert math.isnan(auroc(map_with(0.9, 0.1), flags=torch.ones_like(visible)))  # nothing occluded
    # Faces without visibility flags are left out: face 2's inverted points do not count.
    mixed = map_with(0.9, 0.1)
    mixed[2] = map_with(0.1, 0.9)[2]
    assert auroc(mixed) < 1.0
    assert auroc(mixed, has_visibility=torch.tensor([True, True, False])) == 1.0


class OcclusionNet(torch.nn.Module):
    """Landmarks at the crop centre and a fixed occlusion map."""

    def __init__(self, occlusion_map: torch.Tensor) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.map = occlusion_map

    def forward(self, images):
        faces = len(images)
        return {"landmarks": self.weight + torch.zeros(faces, 68, 2), "occlusion_map": self.map[:faces]}


def test_the_module_logs_each_occlusion_auroc_where_its_inputs_exist(monkeypatch):
    from odn_lightning.training.module import LandmarkModule

    from ..helpers.batches import CROP_SIDE, random_batches

    (batch,) = random_batches("test", count=1)
    batch["landmarks"] = batch["landmarks"] / 2  # faces in the middle half of the crop
    faces = len(batch["image"])
    occlusion_map = torch.rand(faces, 1, 4, 4, generator=torch.Generator().manual_seed(9))
    module = LandmarkModule(net=OcclusionNet(occlusion_map))
    module.setup("test")
    logged = {}
    monkeypatch.setattr(module, "log", lambda name, value, **_: logged.__setitem__(name, float(value)))

    outputs = module._eval_step(batch, "test")  # no visibility, no occluder mask: P against the face only
    module._log_split_metrics("test")
    occlusion_keys = {k for k in logged if "auroc" in k}
    assert occlusion_keys == {"test/test/face_auroc"}
    assert not [k for k in logged if "landmark_occlusion" in k]  # no visibility flags: not measured
    torch.testing.assert_close(
        outputs["landmark_occlusion"], landmark_occlusion_scores(occlusion_map, batch["landmarks"])
    )

    logged.clear()
    batch["has_visibility"] = torch.ones(faces, dtype=torch.bool)
    batch["visible"] = torch.rand(faces, 68, generator=torch.Generator().manual_seed(10)) > 0.5
    mask = torch.zeros(faces, CROP_SIDE, CROP_SIDE, dtype=torch.uint8)
    mask[:, :2, :2] = 255  # a corner only: no occluder inside any face
    batch["occluder_mask"] = mask
    module._eval_step(batch, "test")
    module._log_split_metrics("test")
    occlusion_keys = {k for k in logged if "auroc" in k}
    assert occlusion_keys == {
        "test/test/face_auroc",
        "test/test/occluder_auroc",
        "test/test/landmark_occlusion_auroc",
    }  # occluder_auroc_face has no occluded face pixel: not measured
    # The occluded landmarks' detection numbers, defined here (some point occluded, some scored >= 0.5).
    detection_keys = {
        f"test/test/landmark_occlusion_{k}" for k in ("precision", "recall", "recall_at_p80", "ap")
    }
    assert detection_keys <= set(logged)
    for key in occlusion_keys | detection_keys:
        assert 0.0 <= logged[key] <= 1.0
