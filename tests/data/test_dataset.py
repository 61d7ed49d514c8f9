"""The dataset's crops: marked pixels follow their landmarks through every augmentation, dataset
boxes steer the crop, occluding patches flag the points they cover, and samples map back exactly."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from odn_lightning.crop import apply_matrix, from_normalised, invert_matrix
from odn_lightning.data.dataset import LandmarkDataset
from odn_lightning.data.records import FaceRecord
from odn_lightning.data.transforms import CropAugmentation, occlusion_augmentation, photometric_augmentation
from odn_lightning.schemes import get_scheme

from ..helpers.formats import face_points, write_image

SCHEME = get_scheme("ibug68")
LEFT, RIGHT = 36, 45  # outer eye corners: a mirror pair


def marked_face(tmp_path, seed):
    """A dark image with a red mark at point LEFT and a green one at point RIGHT."""
    image = np.full((160, 160, 3), 20, dtype=np.uint8)
    points = face_points(seed, 68) + 30  # inside 50..126 of a 160 image
    points = np.round(points)
    for index, channel in ((LEFT, 0), (RIGHT, 1)):
        x, y = points[index].astype(int)
        image[y - 2 : y + 3, x - 2 : x + 3, channel] = 255
    path = tmp_path / f"face{seed}.png"
    from PIL import Image

    Image.fromarray(image).save(path)
    return FaceRecord(path, points.astype(np.float32))


def mark_centre(image_chw: torch.Tensor, channel: int) -> np.ndarray:
    from odn_lightning.imagenet import denormalise_image

    pixels = denormalise_image(image_chw.numpy())[..., channel].astype(np.float64)
    others = denormalise_image(image_chw.numpy())[..., 1 - channel].astype(np.float64)
    weights = np.clip(pixels - others, 0, None)  # where this channel dominates the other
    ys, xs = np.nonzero(weights > 40)
    w = weights[ys, xs]
    return np.array([(xs * w).sum(), (ys * w).sum()]) / w.sum()


def test_marked_pixels_follow_their_landmarks_through_the_training_pipeline(tmp_path):
    augmentation = CropAugmentation(rotation=30, scale=0.2, translation=0.1, flip=True)
    photometric = photometric_augmentation(color_jitter=0.0, blur=0.0, noise=0.0)
    flips = []
    for seed in range(8):
        torch.manual_seed(seed)
        record = marked_face(tmp_path, seed)
        # A wide margin keeps the marks inside the crop whatever the rotation, scale and shift.
        sample = LandmarkDataset([record], SCHEME, "train", 128, 1.2, augmentation, photometric)[0]
        points = from_normalised(sample["landmarks"].numpy().astype(np.float64), 128)
        mirrored = bool(np.linalg.det(sample["matrix"][:, :2].numpy()) < 0)
        flips.append(mirrored)
        # The red mark was drawn at point LEFT: after a flip, that pixel is labelled with LEFT's
        # mirror partner RIGHT (the scheme's permutation), otherwise with LEFT itself.
        red, green = mark_centre(sample["image"], 0), mark_centre(sample["image"], 1)
        np.testing.assert_allclose(red, points[RIGHT if mirrored else LEFT], atol=0.6)
        np.testing.assert_allclose(green, points[LEFT if mirrored else RIGHT], atol=0.6)
    assert any(flips) and not all(flips)


@pytest.mark.parametrize("train", [False, True])
def test_sample_maps_back_to_original_pixels_within_half_a_pixel(tmp_path, train):
    torch.manual_seed(0)
    record = marked_face(tmp_path, 3)
    augmentation = CropAugmentation(rotation=30, scale=0.2, translation=0.1, flip=False) if train else None
    sample = LandmarkDataset([record], SCHEME, "x", 224, 0.25, augmentation)[0]
    crop_px = from_normalised(sample["landmarks"].numpy().astype(np.float64), 224)
    back = apply_matrix(invert_matrix(sample["matrix"].numpy()), crop_px)
    assert np.abs(back - record.landmarks).max() < 0.5
    np.testing.assert_allclose(back, record.landmarks, atol=1e-3)  # float32 storage only


def test_dataset_box_centres_the_crop_and_a_missing_box_is_named(tmp_path):
    write_image(tmp_path / "a.jpg", 0)
    points = face_points(0, 68).astype(np.float32)
    box = np.array([10.0, 30.0, 50.0, 70.0], dtype=np.float32)  # not the landmarks' box
    dataset = LandmarkDataset(
        [FaceRecord(tmp_path / "a.jpg", points, box=box)], SCHEME, "x", 64, 0.0, crop_box="dataset"
    )
    matrix = dataset.eval_matrix(dataset.records[0])
    corners = apply_matrix(matrix, np.array([[10.0, 30.0], [50.0, 70.0]]))
    np.testing.assert_allclose(corners, [[-0.5, -0.5], [63.5, 63.5]], atol=1e-9)  # margin 0: box = crop
    with pytest.raises(ValueError, match=r"a.jpg: no face box in the dataset.*data.crop_box=landmarks"):
        LandmarkDataset([FaceRecord(tmp_path / "a.jpg", points)], SCHEME, "x", 64, 0.0, crop_box="dataset")
    with pytest.raises(ValueError, match="data.crop_box='face'"):
        LandmarkDataset([], SCHEME, "x", 64, 0.0, crop_box="face")


def test_occluding_patches_flag_the_points_they_cover(tmp_path):
    write_image(tmp_path / "a.jpg", 0)
    points = face_points(1, 68).astype(np.float32)
    record = FaceRecord(tmp_path / "a.jpg", points, occlusion=np.zeros(68, dtype=np.uint8))
    plain = LandmarkDataset([record], SCHEME, "x", 64, 0.25)[0]
    occlusion = occlusion_augmentation(probability=1.0, num_patches=(2, 2), size=(0.3, 0.4), fill=0)
    flagged = 0
    for seed in range(10):
        torch.manual_seed(seed)
        np.random.seed(seed)
        sample = LandmarkDataset([record], SCHEME, "x", 64, 0.25, occlusion=occlusion)[0]
        torch.testing.assert_close(sample["landmarks"], plain["landmarks"])  # patches move nothing
        changed = (sample["image"] != plain["image"]).any(dim=0).numpy()
        assert changed.any()
        px = np.round(from_normalised(sample["landmarks"].numpy(), 64)).astype(int)
        on_patch = changed[px[:, 1].clip(0, 63), px[:, 0].clip(0, 63)]
        # A point is flagged occluded exactly when a (black, hence changed) patch pixel covers it.
        np.testing.assert_array_equal(~sample["visible"].numpy(), on_patch)
        flagged += int(on_patch.sum())
    assert flagged > 0
    assert occlusion_augmentation(probability=0.0) is None  # the paper recipe: no patches


def test_occluding_patches_join_the_occluder_mask(tmp_path):
    # The occluder mask (what supervises P on the embedded faces) covers the patches too, so that the
    # flags, the mask and the pixels agree.
    write_image(tmp_path / "a.jpg", 0)
    cv2.imwrite(str(tmp_path / "a_mask.png"), np.zeros((96, 96), np.uint8))  # no generated occluder
    points = face_points(1, 68).astype(np.float32)
    record = FaceRecord(
        tmp_path / "a.jpg", points, occlusion=np.zeros(68, dtype=np.uint8), mask_path=tmp_path / "a_mask.png"
    )
    occlusion = occlusion_augmentation(probability=1.0, num_patches=(2, 2), size=(0.3, 0.4), fill=0)
    plain = LandmarkDataset([record], SCHEME, "x", 64, 0.25, occluder_masks=True)[0]
    assert not plain["occluder_mask"].any()
    sample = LandmarkDataset([record], SCHEME, "x", 64, 0.25, occlusion=occlusion, occluder_masks=True)[0]
    changed = (sample["image"] != plain["image"]).any(dim=0)
    masked = sample["occluder_mask"] > 0
    assert masked.any() and bool((masked == changed).float().mean() > 0.99)


def test_augmented_samples_are_reproducible_by_torch_seed(tmp_path):
    record = marked_face(tmp_path, 0)
    dataset = LandmarkDataset(
        [record],
        SCHEME,
        "train",
        64,
        0.25,
        CropAugmentation(rotation=30, scale=0.2, translation=0.1, flip=True),
        photometric_augmentation(color_jitter=0.4, blur=0.5, noise=0.5),
        occlusion_augmentation(probability=0.5),
    )
    draws = []
    for seed in (7, 7, 8):
        torch.manual_seed(seed)
        draws.append(dataset[0])
    for key in ("image", "landmarks", "visible"):
        torch.testing.assert_close(draws[0][key], draws[1][key])
    assert not torch.equal(draws[0]["image"], draws[2]["image"])
