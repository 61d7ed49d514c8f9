"""Images that pass the header check but fail to decode when a sample is made, and images over
data.max_image_pixels: `error` stops with one line naming the file, `skip` leaves the face out and
lists it; the loaders drop skipped faces."""

from __future__ import annotations

import json
import logging
import shutil
import struct
import zlib

import numpy as np
import pytest
from PIL import Image
from torch.utils.data import DataLoader

from odn_lightning.data.datamodule import EvalLoader, LandmarkDataModule
from odn_lightning.data.dataset import LandmarkDataset
from odn_lightning.data.formats.w300 import write_pts
from odn_lightning.data.records import (
    DEFAULT_MAX_IMAGE_PIXELS,
    AnnotationError,
    FaceRecord,
    ImageDecodeError,
    checked,
    image_dimensions,
)
from odn_lightning.data.sampler import SampleKey
from odn_lightning.datatypes import collate_samples
from odn_lightning.runs import error_message, user_error
from odn_lightning.schemes import get_scheme

from ..helpers.cli import run_cli
from ..helpers.configs import LIMITS, TINY
from ..helpers.formats import face_points, write_image

SCHEME = get_scheme("ibug68")
DECODE_ADVICE = "fix or remove it, or leave such faces out with data.on_bad_sample=skip"
BIG = 30000


def truncated_jpeg(path, keep: int = 1500):
    """A JPEG cut after `keep` bytes: Pillow still reads its size from the header, not its pixels."""
    write_image(path, seed=1)
    path.write_bytes(path.read_bytes()[:keep])
    with Image.open(path) as image:
        assert image.size[0] > 0
        with pytest.raises(OSError):
            image.load()
    return path


def big_png(path, side: int = BIG):
    """The header of a side x side 1-bit PNG and a few rows of it: a few hundred bytes, opened
    instantly (decoding it would need the missing rows)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    rows = zlib.compress(b"\0" * (1 + side // 8) * 4)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )
    assert path.stat().st_size < 1000
    return path


def record(path):
    return FaceRecord(path, face_points(0, 68).astype(np.float32))


def dataset(records, **kwargs):
    return LandmarkDataset(records, SCHEME, "train", 32, 0.25, **kwargs)


@pytest.fixture
def faces(tmp_path):
    """Two good faces and a truncated one between them."""
    good = [tmp_path / f"good{i}.jpg" for i in range(2)]
    for i, path in enumerate(good):
        write_image(path, seed=i + 2)
    bad = truncated_jpeg(tmp_path / "bad.jpg")
    return [record(good[0]), record(bad), record(good[1])], bad


def test_collate_drops_skipped_faces_and_an_all_skipped_batch_is_none(faces):
    records, _ = faces
    samples = dataset(records[::2])
    batch = collate_samples([samples[0], None, samples[1]])
    assert batch["image"].shape == (2, 3, 32, 32) and batch["index"].tolist() == [0, 1]
    assert collate_samples([None, None]) is None


@pytest.mark.parametrize("key", [1, SampleKey(1, 7)], ids=["index", "sample_key"])
def test_error_names_the_file_in_one_line(faces, key):
    records, bad = faces
    with pytest.raises(ImageDecodeError) as err:
        dataset(records)[key]
    message = str(err.value)
    assert message.startswith(f"{bad}: cannot decode the image (") and message.endswith(DECODE_ADVICE)
    assert "\n" not in message and "truncated" in message


def test_skip_leaves_the_face_out_warns_and_lists_it_once(faces, tmp_path, caplog):
    records, bad = faces
    out = tmp_path / "run"
    data = dataset(records, on_bad_sample="skip", bad_samples_dir=out)
    with caplog.at_level(logging.WARNING, logger="odn_lightning.data.dataset"):
        assert data[SampleKey(1, 3)] is None
        assert data[1] is None  # a second epoch: not listed again
    assert data[0] is not None and data[2] is not None
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and str(bad) in warnings[0] and "data.on_bad_sample=skip" in warnings[0]
    listed = (out / "bad_samples_train.txt").read_text().splitlines()
    assert len(listed) == 1 and listed[0].startswith(f"{bad}: cannot decode the image (")
    # Another process (a loader worker) meeting the same face does not list it twice either.
    assert dataset(records, on_bad_sample="skip", bad_samples_dir=out)[1] is None
    assert (out / "bad_samples_train.txt").read_text().splitlines() == listed


def test_a_worker_error_reduces_to_the_one_line(faces):
    records, bad = faces
    loader = DataLoader(dataset(records), batch_size=3, num_workers=1, collate_fn=collate_samples)
    with pytest.raises(ImageDecodeError) as err:
        next(iter(loader))
    assert "DataLoader worker" in str(err.value)  # torch's wrapping, reduced by runs.error_message
    assert user_error(err.value) is err.value
    message = error_message(err.value)
    assert message.startswith(f"{bad}: cannot decode the image (") and message.endswith(DECODE_ADVICE)


def test_evaluation_loader_leaves_out_a_batch_of_only_skipped_faces(faces, tmp_path):
    records, _ = faces
    data = LandmarkDataset(
        records, SCHEME, "common", 32, 0.25, on_bad_sample="skip", bad_samples_dir=tmp_path
    )
    batches = list(EvalLoader(data, batch_size=1, collate_fn=collate_samples))
    assert [b["index"].tolist() for b in batches] == [[0], [2]]
    assert (tmp_path / "bad_samples_common.txt").is_file()


def test_on_bad_sample_is_checked(faces):
    with pytest.raises(ValueError, match="data.on_bad_sample='ignore'"):
        dataset(faces[0], on_bad_sample="ignore")


# ----------------------------------------------------------------------------------------------
# images over data.max_image_pixels


def refusal(path, limit=DEFAULT_MAX_IMAGE_PIXELS):
    return (
        f"{path}: {BIG}x{BIG} pixels (900 M) is more than data.max_image_pixels={limit}; "
        "raise it (or set it to null) if you trust the file"
    )


def test_pillow_alone_would_fail_with_its_own_error(tmp_path):
    with pytest.raises(Image.DecompressionBombError):
        Image.open(big_png(tmp_path / "big.png"))


def test_the_header_check_refuses_a_big_image_in_one_line(tmp_path):
    big = big_png(tmp_path / "big.png")
    limit = Image.MAX_IMAGE_PIXELS
    with pytest.raises(AnnotationError) as err:
        image_dimensions(big)
    assert str(err.value) == refusal(big)
    problems = []
    assert checked([record(big)], 68, problems) == [] and [str(p) for p in problems] == [refusal(big)]
    # No limit: the size is read from the header, Pillow's own limit does not interfere.
    assert image_dimensions(big, max_pixels=None) == (BIG, BIG)
    assert Image.MAX_IMAGE_PIXELS == limit  # Pillow's global limit is left as it was


def test_a_sample_over_the_limit_is_a_bad_sample(tmp_path):
    big = big_png(tmp_path / "big.png")
    with pytest.raises(ImageDecodeError) as err:
        dataset([record(big)])[0]
    assert str(err.value) == refusal(big)
    with pytest.raises(ImageDecodeError) as err:
        dataset([record(big)], max_image_pixels=10**6)[0]
    assert str(err.value) == refusal(big, 10**6)
    out = tmp_path / "run"
    assert dataset([record(big)], on_bad_sample="skip", bad_samples_dir=out)[0] is None
    assert (
        (out / "bad_samples_train.txt").read_text()
        == f"{big}: {BIG}x{BIG} pixels (900 M) is more than data.max_image_pixels={DEFAULT_MAX_IMAGE_PIXELS}\n"
    )


def test_a_lower_limit_refuses_ordinary_images_up_front(tmp_path):
    folder = tmp_path / "root" / "faces"
    folder.mkdir(parents=True)
    for name in ("a", "b"):
        write_image(folder / f"{name}.jpg", seed=3)
        write_pts(folder / f"{name}.pts", face_points(3, 68))
    splits = {"train": ["faces"], "val": ["faces"], "test": ["faces"]}

    def datamodule(**kwargs):
        return LandmarkDataModule(
            "x", str(tmp_path / "root"), splits, test_splits=["test"], image_size=32, num_workers=0, **kwargs
        )

    side = Image.open(folder / "a.jpg").size
    dm = datamodule(
        max_image_pixels=side[0] * side[1] - 1, on_bad_sample="skip", bad_samples_dir=str(tmp_path)
    )
    dm.setup("fit")
    assert len(dm.datasets["train"]) == 0
    listed = (tmp_path / "bad_samples_train.txt").read_text().splitlines()
    assert len(listed) == 2 and all("is more than data.max_image_pixels=" in line for line in listed)
    dm = datamodule(max_image_pixels=side[0] * side[1])
    dm.setup("fit")
    assert len(dm.datasets["train"]) == 2 and dm.datasets["train"].max_image_pixels == side[0] * side[1]
    for bad in (0, -5, 2.5, True):
        with pytest.raises(ValueError, match=r"data.max_image_pixels=.*null for no limit"):
            datamodule(max_image_pixels=bad)


# ----------------------------------------------------------------------------------------------
# through the command line, with loader worker processes


@pytest.mark.slow
def test_cli_train_stops_or_skips_on_an_image_that_fails_to_decode(tmp_path, synthetic_root):
    root = tmp_path / "data"
    # Not its crop cache: other tests' runs may be writing it while this copies.
    shutil.copytree(synthetic_root, root, ignore=shutil.ignore_patterns(".cache"))
    bad = truncated_jpeg(root / "train" / "train_00005.jpg")
    common = [
        *TINY,
        *LIMITS,
        f"data.root={root}",
        f"paths.log_dir={tmp_path / 'logs'}",
        "data.num_workers=2",
        "trainer.limit_train_batches=null",  # every training face is read
        "trainer.limit_val_batches=1",
        "extras.print_config=false",
    ]
    stopped = run_cli("odn_lightning.train", *common, "test=false", f"hydra.run.dir={tmp_path / 'error'}")
    assert stopped.returncode != 0
    last = stopped.stderr.rstrip().splitlines()[-1]
    assert last.startswith(f"error: {bad}: cannot decode the image (") and last.endswith(DECODE_ADVICE), (
        stopped.stderr[-3000:]
    )
    assert "Traceback" not in stopped.stderr

    # Skipped: training goes on without the face, and a bad test face is left out of its split.
    bad_test = truncated_jpeg(root / "common" / "common_00003.jpg")
    run = tmp_path / "skip"
    skipped = run_cli(
        "odn_lightning.train",
        *common,
        "data.on_bad_sample=skip",
        "trainer.limit_test_batches=null",
        "callbacks=evaluation",
        f"hydra.run.dir={run}",
    )
    assert skipped.returncode == 0, skipped.stderr[-3000:]
    for split, path in (("train", bad), ("common", bad_test), ("full", bad_test)):
        listed = (run / f"bad_samples_{split}.txt").read_text().splitlines()
        assert len(listed) == 1 and listed[0].startswith(f"{path}: cannot decode the image ("), split
    assert f"skipped {bad}: cannot decode" in skipped.stdout + skipped.stderr  # the warning
    metrics = json.loads((run / "metrics.json").read_text())
    assert (metrics["test/common/faces"], metrics["test/common/faces_in_split"]) == (7, 8)
    assert (metrics["test/challenging/faces"], metrics["test/challenging/faces_in_split"]) == (4, 4)
