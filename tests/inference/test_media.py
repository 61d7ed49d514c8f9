"""What predict reads: images, folders, videos, cameras (tests/assets/photos)."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from odn_lightning.data.dataset import load_rgb
from odn_lightning.inference.media import Frame, MediaError, Skipped, open_media

PHOTOS = Path(__file__).resolve().parents[1] / "assets" / "photos"


def test_single_image_is_rgb_in_stored_order():
    media = open_media(str(PHOTOS / "einstein.jpg"))  # greyscale JPEG: read as RGB
    assert media.kind == "image" and len(media) == 1 and media.fps is None and media.root is None
    (frame,) = list(media)
    assert isinstance(frame, Frame) and frame.frame is None and frame.source.endswith("einstein.jpg")
    assert frame.image.shape == (1024, 817, 3) and frame.image.dtype == np.uint8


def test_folder_skips_a_corrupt_image_and_goes_on(tmp_path):
    (tmp_path / "sub").mkdir()
    shutil.copy(PHOTOS / "takeo.png", tmp_path / "b_takeo.PNG")
    shutil.copy(PHOTOS / "einstein.jpg", tmp_path / "sub" / "c.jpg")
    (tmp_path / "a_broken.jpg").write_bytes((PHOTOS / "einstein.jpg").read_bytes()[:400])
    (tmp_path / "notes.txt").write_text("not an image")
    media = open_media(str(tmp_path))
    assert media.kind == "folder" and media.root == tmp_path and len(media) == 3
    items = list(media)
    assert [Path(i.source).name for i in items] == ["a_broken.jpg", "b_takeo.PNG", "c.jpg"]
    skipped = items[0]
    assert isinstance(skipped, Skipped) and skipped.frame is None
    assert "a_broken.jpg" in skipped.reason and "\n" not in skipped.reason
    assert all(isinstance(i, Frame) for i in items[1:])
    np.testing.assert_array_equal(items[1].image, load_rgb(PHOTOS / "takeo.png"))


def write_video(path: Path, frames: int = 32) -> tuple[np.ndarray, str]:
    """A crop moving across breakingbad; MJPG .avi (this OpenCV writes and reads it back)."""
    photo = cv2.imread(str(PHOTOS / "breakingbad.jpg"))[100:340, 300:620]
    height, width = 200, 280
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 12.0, (width, height))
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.ascontiguousarray(photo[i : i + height, i : i + width]))
    writer.release()
    return photo, path.suffix


def test_video_reads_every_frame_as_rgb(tmp_path):
    path = tmp_path / "moving.avi"
    photo, _ = write_video(path)
    media = open_media(str(path))
    assert media.kind == "video" and len(media) == 32 and media.fps == pytest.approx(12.0)
    frames = list(media)
    assert [f.frame for f in frames] == list(range(32)) and all(isinstance(f, Frame) for f in frames)
    first = frames[0].image.astype(int)
    expected = cv2.cvtColor(photo[:200, :280], cv2.COLOR_BGR2RGB).astype(int)
    assert first.shape == (200, 280, 3) and np.abs(first - expected).mean() < 8  # RGB, not BGR
    step = open_media(str(path), max_frames=5, frame_step=3)
    assert len(step) == 5 and [f.frame for f in step] == [0, 3, 6, 9, 12]


def test_video_ending_early_says_so(tmp_path):
    path = tmp_path / "moving.avi"
    write_video(path)
    data = path.read_bytes()
    # Cut the frame data; the header still says 32 frames.
    (tmp_path / "cut.avi").write_bytes(data[: len(data) // 2])
    media = open_media(str(tmp_path / "cut.avi"))
    items = list(media)
    frames = [i for i in items if isinstance(i, Frame)]
    skipped = [i for i in items if isinstance(i, Skipped)]
    assert media.frame_count == 32 and 0 < len(frames) < 32
    assert len(skipped) == 1 and skipped[0].frame == len(frames) and items[-1] is skipped[0]
    assert f"ends early at frame {len(frames)} of 32" in skipped[0].reason


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda d: str(d / "nope.jpg"), "no such file or folder"),
        (lambda d: str(d / "empty"), "holds no image"),
        (lambda d: str(d / "data.csv"), "unknown file type .csv"),
        (lambda d: str(d / "bad.mp4"), "cannot open the video"),
        (lambda d: 7, "no camera at index 7"),
        (lambda d: "7", "no camera at index 7"),
    ],
)
def test_unusable_input_is_one_line(tmp_path, make, expected):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    (tmp_path / "data.csv").write_text("a,b\n")
    (tmp_path / "bad.mp4").write_bytes(b"not a video at all" * 10)
    with pytest.raises(MediaError) as err:
        open_media(make(tmp_path))
    message = str(err.value)
    assert expected in message and "\n" not in message
    if expected == "holds no image":
        assert "1 other file(s)" in message
