"""Your own data: landmark schemes declared in YAML, the plain CSV reader, the converter, and the
project root the entry points write under from any directory."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from odn_lightning import config as config_module
from odn_lightning.atomic import OutputWriteError
from odn_lightning.config import REPOSITORY, project_root
from odn_lightning.config_checks import ConfigError, check_config
from odn_lightning.convert import convert
from odn_lightning.data.formats import READERS
from odn_lightning.data.formats.landmarks_csv import read_landmarks_csv
from odn_lightning.data.formats.w300 import read_pts_folder
from odn_lightning.data.records import OCCLUDED_BY_OBJECT, AnnotationError, FaceRecord
from odn_lightning.evaluation.metrics import LandmarkNME
from odn_lightning.schemes import (
    SCHEMES,
    SchemeError,
    get_scheme,
    scheme_declaration,
    scheme_from_declaration,
)
from odn_lightning.train import train
from odn_lightning.training.callbacks import RUN_CONFIG_KEY
from odn_lightning.training.checkpoints import load_checkpoint

from ..helpers.cli import run_cli
from ..helpers.configs import LIMITS, TINY, TINY_SYNTHETIC, compose_config
from ..helpers.formats import write_face5_dataset

FACE5 = {
    "name": "face5",
    "num_landmarks": 5,
    "flip_pairs": [[0, 1], [3, 4]],
    "outer_eye_corners": [0, 1],
    "eye_centres": [[0], [1]],
}
# TINY without the synthetic generator's sizes (face5_csv has no generator).
CSV_TINY = [option for option in TINY if not option.startswith("data.synthetic.")]


# ----------------------------------------------------------------------------- schemes in YAML


def test_the_shipped_face5_declaration_is_found_by_its_name():
    scheme = get_scheme("face5")
    assert (scheme.num_landmarks, scheme.flip_permutation) == (5, (1, 0, 2, 4, 3))
    assert scheme.outer_eye_corners == (0, 1) and scheme.eye_centres == ((0,), (1,))
    assert scheme == scheme_from_declaration(
        FACE5 | {"parts": {"eyes": [0, 1], "nose": [2], "mouth": [3, 4]}}
    )
    # A mapping is a scheme too, everywhere a name is (the metric here).
    assert LandmarkNME(FACE5).scheme.flip_permutation == scheme.flip_permutation


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_every_built_in_scheme_survives_its_declaration(name):
    assert scheme_from_declaration(scheme_declaration(SCHEMES[name])) == SCHEMES[name]


@pytest.mark.parametrize(
    "change,reason",
    [
        (
            {"flip_pairs": [[0, 1], [3, 7]]},
            "flip_pairs [3, 7]: point 7 is out of range; the scheme has 5 points",
        ),
        ({"flip_pairs": [[0, 1], [3, 3]]}, "pairs a point with itself"),
        ({"flip_pairs": [[0, 1], [1, 4]]}, "point 1 is in two pairs"),
        ({"flip_pairs": [[3, 4]]}, "must swap the outer eye corners 0 and 1"),
        ({"flip_pairs": [[0, 1, 2]]}, "flip_pairs must be 2 point indices"),
        ({"outer_eye_corners": [0, 5]}, "outer_eye_corners [0, 5]: point 5 is out of range"),
        ({"outer_eye_corners": [0, 1.5]}, "must be point indices (whole numbers)"),
        ({"eye_centres": [[0], [2]]}, "must map the left eye_centres points [0] onto the right ones [2]"),
        ({"eye_centres": [[0]]}, "eye_centres must be two lists of points"),
        ({"num_landmarks": 0}, "num_landmarks must be a positive whole number"),
        ({"num_landmarks": None}, "num_landmarks is missing"),
        ({"flip_pair": [[0, 1]]}, "unknown key 'flip_pair'"),
        ({"name": "ibug68"}, "'ibug68' is a built-in scheme's name"),
        ({"parts": {"eyes": [0, 9]}}, "parts.eyes [0, 9]: point 9 is out of range"),
    ],
)
def test_a_bad_declaration_is_refused_in_one_line(change, reason):
    with pytest.raises(SchemeError) as caught:
        get_scheme(FACE5 | change)
    message = str(caught.value)
    assert reason in message and "\n" not in message, message


def test_a_bad_scheme_file_is_refused_naming_the_file_before_the_run(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(FACE5 | {"flip_pairs": [[0, 1], [3, 9]]}))
    cfg = compose_config("train", ["data=face5_csv", f"data.scheme={path}"], tmp_path / "run")
    with pytest.raises(ConfigError) as caught:
        check_config(cfg)
    assert str(caught.value).startswith(
        f"data.scheme={path}: {path}: flip_pairs [3, 9]: point 9 is out of range"
    )
    path.write_text("name: [unclosed")
    with pytest.raises(SchemeError, match=f"{path}: not a YAML scheme declaration"):
        get_scheme(str(path))
    with pytest.raises(ValueError, match="unknown landmark scheme 'nope'; choose one of .*face5"):
        get_scheme("nope")


def test_a_declared_scheme_goes_into_the_run_config_whole(tmp_path):
    # Named by its file, the scheme is put into the config as its declaration (checkpoints hold it);
    # the model's scheme and point count follow it.
    cfg = compose_config("train", ["data=face5_csv"], tmp_path)
    assert cfg.data.scheme == "face5" and cfg.model.net.num_landmarks == 5
    check_config(cfg)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert resolved["data"]["scheme"] == scheme_declaration(get_scheme("face5"))
    assert resolved["model"]["scheme"] == resolved["data"]["scheme"]
    # Given as a mapping on the command line, any scheme works without a file.
    inline = "{name: hand5, num_landmarks: 5, flip_pairs: [[0, 1], [3, 4]], outer_eye_corners: [0, 1], eye_centres: [[0], [1]]}"
    cfg = compose_config("train", ["data=face5_csv", f"data.scheme={inline}"], tmp_path)
    check_config(cfg)
    assert cfg.model.net.num_landmarks == 5 and isinstance(cfg.model.scheme, DictConfig)
    # A model scheme other than the data's is refused, a name and its declaration are the same.
    cfg = compose_config("train", ["data=face5_csv", "model.scheme=ibug68"], tmp_path)
    with pytest.raises(ConfigError, match="model.scheme=ibug68 but data.scheme=face5"):
        check_config(cfg)
    check_config(compose_config("train", ["data=face5_csv", "model.scheme=face5"], tmp_path))


# ----------------------------------------------------------------------------- the plain CSV reader


def write_image(path: Path, side: int = 64) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((side, side, 3), 128, dtype=np.uint8)).save(path)


def test_csv_reader_reads_points_flags_and_boxes_by_header_name(tmp_path):
    write_image(tmp_path / "images" / "a.png")
    # Columns in any order, names in any case; a byte-order mark (spreadsheets) is no part of a name.
    (tmp_path / "faces.csv").write_text(
        "\ufeffX0,y0,image,x1,y1,visible0,visible1,box_x_min,box_y_min,box_x_max,box_y_max\n"
        "10,20,a.png,30.5,40,1,0,5,6,50,60\n"
        "\n"
        "11,21,a.png,31,41,0,1,5,6,50,60\n"
    )
    first, second = read_landmarks_csv(tmp_path / "faces.csv", tmp_path / "images")
    np.testing.assert_array_equal(first.landmarks, [[10, 20], [30.5, 40]])
    assert first.image_path == tmp_path / "images" / "a.png" and first.landmarks.dtype == np.float32
    assert list(first.occlusion) == [0, OCCLUDED_BY_OBJECT] and list(second.visible) == [False, True]
    np.testing.assert_array_equal(first.box, [5, 6, 50, 60])
    assert second.annotation == f"{tmp_path / 'faces.csv'}: row 4"  # the file's own row numbers
    # Without flags and box columns; images relative to the CSV's folder; 1-based values shifted.
    (tmp_path / "plain.csv").write_text("image,x0,y0\nimages/a.png,1,1\n")
    (face,) = read_landmarks_csv(tmp_path / "plain.csv", one_based=True)
    assert face.image_path == tmp_path / "images" / "a.png" and face.occlusion is None and face.box is None
    np.testing.assert_array_equal(face.landmarks, [[0, 0]])
    assert READERS["landmarks_csv"] is read_landmarks_csv


@pytest.mark.parametrize(
    "text,reason",
    [
        ("", "no faces (a header row and at least one face are expected)"),
        ("image,x0,y0\n", "no faces"),
        ("image,x0,y0,z\na.png,1,2,3\n", "header: column 4 'z' is not one of image, x<i>, y<i>, visible<i>"),
        ("x0,y0\n1,2\n", "header: no 'image' column"),
        ("image,x0,y0,x0\na.png,1,2,3\n", "header: column 'x0' appears twice"),
        ("image,x0,y0,x1\na.png,1,2,3\n", "header: y1 is missing; 2 points need x0, y0, ..., x1, y1"),
        ("image,x0,y0,y1\na.png,1,2,3\n", "header: column 'y1' is beyond the points x0..x0"),
        ("image,x0,y0,x1,y1,visible0\na.png,1,2,3,4,1\n", "visible columns for 1 of the 2 points"),
        (
            "image,x0,y0,box_x_min\na.png,1,2,3\n",
            "give all of box_x_min, box_y_min, box_x_max, box_y_max or none",
        ),
        ("image\na.png\n", "header: no landmark columns"),
    ],
)
def test_a_bad_csv_header_fails_the_file_naming_it(tmp_path, text, reason):
    path = tmp_path / "faces.csv"
    path.write_text(text)
    with pytest.raises(AnnotationError) as caught:
        read_landmarks_csv(path, tmp_path)
    assert str(caught.value).startswith(f"{path}: ") and reason in str(caught.value), caught.value


@pytest.mark.parametrize(
    "row,reason",
    [
        ("a.png,1,2", "row 2: 3 columns; the header has 4"),
        ("a.png,1,x,1", "row 2: non-numeric value"),
        ("a.png,1,nan,1", "row 2: values must be finite"),
        (" ,1,2,1", "row 2: the image column is empty"),
        ("a.png,1,2,0.5", "row 2: visible values must be 1 (visible) or 0 (not)"),
    ],
)
def test_a_bad_csv_row_names_file_and_row_and_is_collected_with_problems(tmp_path, row, reason):
    path = tmp_path / "faces.csv"
    path.write_text(f"image,x0,y0,visible0\n{row}\nb.png,3,4,1\n")
    with pytest.raises(AnnotationError) as caught:
        read_landmarks_csv(path, tmp_path)
    assert str(caught.value) == f"{path}: {reason}"
    problems: list[AnnotationError] = []
    (good,) = read_landmarks_csv(path, tmp_path, problems=problems)  # one pass: the good rows read on
    assert good.image_path.name == "b.png" and len(problems) == 1 and reason in str(problems[0])


def test_csv_reader_refuses_a_box_that_is_not_one(tmp_path):
    path = tmp_path / "faces.csv"
    path.write_text("image,x0,y0,box_x_min,box_y_min,box_x_max,box_y_max\na.png,1,2,10,10,5,20\n")
    with pytest.raises(AnnotationError, match="row 2: the box must have box_x_max > box_x_min"):
        read_landmarks_csv(path, tmp_path)


# ----------------------------------------------------------------------------- own 5-point data


FACE5_SPLITS = {"train": "train", "val": "val", "test": "common"}


@pytest.mark.slow
def test_a_5_point_scheme_declared_in_yaml_trains_tests_and_evaluates_from_its_checkpoint(
    tmp_path, synthetic_root
):
    root = tmp_path / "faces"
    write_face5_dataset(root, synthetic_root, FACE5_SPLITS)
    # The scheme lives in a YAML file only (a copy of conf/scheme/face5.yaml, removed before eval).
    declaration = tmp_path / "myface5.yaml"
    shutil.copyfile(Path(REPOSITORY) / "conf" / "scheme" / "face5.yaml", declaration)
    text = declaration.read_text().replace("name: face5", "name: myface5")
    declaration.write_text(text)
    overrides = ["data=face5_csv", f"data.root={root}", f"data.scheme={declaration}", *CSV_TINY, *LIMITS]
    metrics = train(
        compose_config("train", [*overrides, f"paths.log_dir={tmp_path / 'logs'}"], tmp_path / "run")
    )
    assert metrics["test/test/nme"] > 0 and metrics["test/test/faces"] == 8
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    stored = load_checkpoint(last)[RUN_CONFIG_KEY]
    assert stored["data"]["scheme"]["name"] == "myface5" and stored["model"]["net"]["num_landmarks"] == 5
    # A fresh process rebuilds the scheme from the checkpoint alone: the file is gone.
    declaration.unlink()
    result = run_cli(
        "odn_lightning.eval",
        f"ckpt_path={last}",
        f"paths.log_dir={tmp_path / 'logs'}",
        "hydra.run.dir=" + str(tmp_path / "eval"),
        "trainer.enable_progress_bar=false",
        "extras.print_config=false",
        "pictures=0",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    evaluated = yaml.safe_load((tmp_path / "eval" / "metrics.json").read_text())
    assert evaluated["test/test/nme"] == pytest.approx(metrics["test/test/nme"], rel=1e-6)


# ----------------------------------------------------------------------------- the converter


def convert_config(tmp_path: Path, data: list[str], *options: str) -> DictConfig:
    return compose_config(
        "convert", [*data, f"paths.log_dir={tmp_path / 'logs'}", *options], tmp_path / "run"
    )


def synthetic_data(synthetic_root: Path) -> list[str]:
    return ["data=synthetic", f"data.root={synthetic_root}", *TINY_SYNTHETIC]


def read_back(printed: str, output_dir: Path) -> DictConfig:
    """The train config of the overrides convert printed to read its output back, as a shell splits them."""
    (line,) = [line for line in printed.splitlines() if line.startswith("read it back with: ")]
    return compose_config("train", shlex.split(line.removeprefix("read it back with: ")), output_dir)


def by_stem(records: list[FaceRecord]) -> dict[str, FaceRecord]:
    return {r.image_path.stem: r for r in records}


def test_a_dataset_converted_to_pts_and_to_csv_reads_back_to_the_same_faces(tmp_path, synthetic_root, capsys):
    cfg = convert_config(tmp_path, synthetic_data(synthetic_root), f"out={tmp_path / 'pts'}", "format=pts")
    counts = convert(cfg)
    assert counts == {"train": 24, "val": 8, "common": 8, "challenging": 4, "full": 12}
    printed = capsys.readouterr().out
    assert (
        f"common: 8 faces -> {tmp_path / 'pts' / 'common'} (images: 8 linked; 8 .pts; 8 .occ; 8 masks)"
        in printed
    )
    # The printed settings, pasted after `train`, read the conversion back: every split, whole.
    reread = read_back(printed, tmp_path / "r")
    assert reread.data.root == str(tmp_path / "pts") and reread.data.name == "w300"
    assert list(reread.data.test_splits) == ["common", "challenging", "full"]
    reader = instantiate(reread.data)
    assert {split: len(reader.records(split)) for split in counts} == counts
    source = instantiate(cfg.data)
    for split in counts:
        original = by_stem(source.records(split))
        converted = by_stem(read_pts_folder(tmp_path / "pts" / split))
        assert converted.keys() == original.keys()
        for stem, record in original.items():
            np.testing.assert_allclose(converted[stem].landmarks, record.landmarks, atol=1e-3)
            np.testing.assert_array_equal(converted[stem].occlusion, record.occlusion)
            assert converted[stem].mask_path is not None

    cfg = convert_config(
        tmp_path, synthetic_data(synthetic_root), f"out={tmp_path / 'csv'}", "format=csv", "images=copy"
    )
    convert(cfg)
    printed = capsys.readouterr().out
    assert "images: 44 copied" in printed  # every image once, however many splits name it
    for split in counts:
        original = source.records(split)
        converted = read_landmarks_csv(tmp_path / "csv" / f"{split}.csv", tmp_path / "csv" / "images")
        assert [r.image_path.name for r in converted] == [r.image_path.name for r in original]
        for back, record in zip(converted, original, strict=True):
            np.testing.assert_array_equal(back.landmarks, record.landmarks)  # float32 exactly
            np.testing.assert_array_equal(back.visible, record.visible)
    # The CSV conversion reads back the same way.
    reader = instantiate(read_back(printed, tmp_path / "r_csv").data)
    assert {split: len(reader.records(split)) for split in counts} == counts


def test_a_declared_scheme_and_face_boxes_survive_conversion(tmp_path, synthetic_root, capsys):
    root = tmp_path / "faces"
    write_face5_dataset(root, synthetic_root, FACE5_SPLITS, with_box=True)
    data = ["data=face5_csv", f"data.root={root}"]
    convert(convert_config(tmp_path, data, f"out={tmp_path / 'csv'}", "format=csv"))
    assert yaml.safe_load((tmp_path / "csv" / "scheme.yaml").read_text()) == scheme_declaration(
        get_scheme("face5")
    )
    original = read_landmarks_csv(root / "test.csv", root / "images")
    converted = read_landmarks_csv(tmp_path / "csv" / "test.csv", tmp_path / "csv" / "images")
    for back, record in zip(converted, original, strict=True):
        np.testing.assert_array_equal(back.landmarks, record.landmarks)
        np.testing.assert_array_equal(back.box, record.box)
    capsys.readouterr()
    convert(convert_config(tmp_path, data, f"out={tmp_path / 'pts'}", "format=pts", "splits=[test]"))
    printed = capsys.readouterr().out
    assert "8 face boxes not kept (format=csv keeps them)" in printed
    assert f"data.scheme={tmp_path / 'pts' / 'scheme.yaml'}" in printed
    assert sorted(p.name for p in (tmp_path / "pts").iterdir()) == ["scheme.yaml", "test"]
    # Read back through the written declaration, with the settings printed (only `test` was written).
    back = read_back(printed, tmp_path / "r")
    assert list(back.data.splits) == ["test"] and list(back.data.test_splits) == ["test"]
    check_config(back)
    assert len(instantiate(back.data).records("test")) == 8


def test_conversion_is_whole_or_nothing(tmp_path, synthetic_root, monkeypatch):
    from odn_lightning.data import conversion as convert_module

    calls = []

    def failing_write_pts(path, landmarks):
        calls.append(path)
        if len(calls) == 30:  # in the second split
            raise OSError(28, "No space left on device")
        return original(path, landmarks)

    original = convert_module.write_pts
    monkeypatch.setattr(convert_module, "write_pts", failing_write_pts)
    out = tmp_path / "out"
    with pytest.raises(OutputWriteError, match="cannot write .*: No space left on device"):
        convert(convert_config(tmp_path, synthetic_data(synthetic_root), f"out={out}"))
    assert not out.exists() and len(calls) == 30
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left
    monkeypatch.setattr(convert_module, "write_pts", original)

    # A non-empty folder is not replaced unasked; with overwrite=true it is, whole.
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match=f"out={out} exists and is not empty; .* overwrite=true"):
        convert(convert_config(tmp_path, synthetic_data(synthetic_root), f"out={out}"))
    assert (out / "keep.txt").read_text() == "mine"
    convert(
        convert_config(
            tmp_path, synthetic_data(synthetic_root), f"out={out}", "overwrite=true", "splits=[val]"
        )
    )
    assert sorted(p.name for p in out.iterdir()) == ["val"]
    # The folder a dataset is read from is never an output.
    with pytest.raises(ConfigError, match="which data=synthetic is read from; choose a folder outside it"):
        convert(
            convert_config(
                tmp_path, synthetic_data(synthetic_root), f"out={synthetic_root}", "overwrite=true"
            )
        )


@pytest.mark.parametrize(
    "option,message",
    [
        ("format=json", "format=json: expected one of pts, csv"),
        ("images=symlink", "images=symlink: expected one of link, copy"),
        ("splits=[nope]", "splits=['nope']: expected a list of data.splits"),
    ],
)
def test_converter_options_are_checked_in_one_line(tmp_path, synthetic_root, option, message):
    cfg = convert_config(tmp_path, synthetic_data(synthetic_root), f"out={tmp_path / 'out'}", option)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        convert(cfg)


# ----------------------------------------------------------------------------- the project root


def test_paths_are_under_the_repository_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ODN_ROOT", raising=False)
    paths = compose_config("train", [], tmp_path / "run").paths
    assert (paths.root_dir, paths.data_dir, paths.log_dir) == (
        str(REPOSITORY),
        str(REPOSITORY / "data"),
        str(REPOSITORY / "logs"),
    )
    monkeypatch.setenv("ODN_ROOT", "elsewhere")  # relative: to the directory the command starts in
    assert compose_config("train", [], tmp_path / "run").paths.log_dir == str(tmp_path / "elsewhere" / "logs")
    # Installed without the repository: the directory the command starts in.
    monkeypatch.delenv("ODN_ROOT")
    monkeypatch.setattr(config_module, "REPOSITORY", tmp_path / "site-packages")
    assert project_root() == str(tmp_path)


@pytest.mark.slow
def test_a_command_started_elsewhere_writes_under_the_root(tmp_path):
    elsewhere, root = tmp_path / "elsewhere", tmp_path / "root"
    elsewhere.mkdir()
    # Unset, the repository is the root: shown without running anything (--cfg writes nothing).
    # (ODN_ROOT is read when the command composes its config, not at import.)
    shown = run_cli(
        "odn_lightning.train",
        *["--cfg", "job", "--resolve", "-p", "paths.log_dir"],
        cwd=elsewhere,
        runtime_env={"ODN_ROOT": None},
    )
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert shown.stdout.strip().splitlines()[-1] == str(REPOSITORY / "logs")
    # With ODN_ROOT, data and logs go there.
    result = run_cli(
        "odn_lightning.data_check",
        *["data=synthetic", *TINY_SYNTHETIC],
        cwd=elsewhere,
        runtime_env={"ODN_ROOT": str(root)},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (folder,) = (root / "data" / "synthetic").iterdir()  # named by its settings
    assert folder.name == "seed0-128px-train24-val8-common8-challenging4" and (folder / "train").is_dir()
    assert list((root / "logs" / "data_check" / "runs").glob("*/data_check.log"))
    assert not any(elsewhere.iterdir())


def test_a_5_point_metric_uses_the_declared_eyes():
    metric = LandmarkNME(FACE5)
    target = torch.tensor([[[10.0, 10.0], [30.0, 10.0], [20.0, 20.0], [12.0, 30.0], [28.0, 30.0]]])
    metric.update(target + torch.tensor([2.0, 0.0]), target)
    assert float(metric.compute()["nme"]) == pytest.approx(2.0 / 20.0)
