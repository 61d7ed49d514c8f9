"""Each dataset's numbers mean what its reference project's mean: the same faces read through two
published layouts land on the same pixels with the same normaliser, the conventions table is the
README's, and `make data-check` prints the evidence that settles what only the real files can."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from odn_lightning.config import CONFIG_DIR
from odn_lightning.config_checks import ConfigError, check_config
from odn_lightning.data.conventions import CONVENTIONS, SCHEMES, conventions_markdown
from odn_lightning.data.datamodule import DataValidationError
from odn_lightning.data_check import check
from odn_lightning.evaluation.metrics import normalisation_for, normalising_distance

from ..helpers.configs import compose_config
from ..helpers.formats import hrnet_csv, write_300w, write_image, write_pts
from .test_dataset_configs import TREES, config

SHIPPED_092 = "image_092 _01.jpg"  # iBUG's file name; HRNet's CSVs write ibug/image_092_01.jpg


def datamodule(name, root, out, *overrides):
    cfg = config(name, root, out)
    for override in overrides:
        key, value = override.split("=", 1)
        OmegaConf.update(cfg, key, value)
    dm = instantiate(cfg.data)
    dm.prepare_data()
    return cfg, dm


def pts_numbers(path: Path) -> list[float]:
    """A `.pts` file's numbers exactly as written (1-based), as HRNet copies them into its CSVs."""
    body = path.read_text().split("{")[1].split("}")[0]
    return [float(v) for v in body.split()]


def hrnet_300w_tree(w300: Path, root: Path) -> None:
    """HRNet's data/300w from a 300W folder: the CSV rows carry the `.pts` values unchanged, the images
    (with their .pts beside them, as the 300W download has them) lie under images/, and the iBUG face
    shipped as `image_092 _01.jpg` is named as HRNet names it."""
    splits = {
        "train": ["lfpw/trainset", "helen/trainset", "afw"],
        "valid_common": ["lfpw/testset", "helen/testset"],
        "valid_challenge": ["ibug"],
        "valid": ["lfpw/testset", "helen/testset", "ibug"],
    }
    for csv_name, folders in splits.items():
        rows = []
        for folder in folders:
            for pts in sorted((w300 / folder).glob("*.pts")):
                image = pts.with_suffix(".jpg")
                (root / "images" / folder).mkdir(parents=True, exist_ok=True)
                for path in (image, pts):
                    shutil.copy(path, root / "images" / folder / path.name)
                name = f"{folder}/{image.name}".replace(SHIPPED_092, "image_092_01.jpg")
                numbers = pts_numbers(pts)
                centre = np.asarray(numbers).reshape(-1, 2).mean(axis=0)
                rows.append([name, 0.3, *centre, *numbers])
        hrnet_csv(root / f"face_landmarks_300w_{csv_name}.csv", rows, 68, box_size=False)


def test_300w_folder_and_hrnet_csv_of_the_same_faces_read_to_identical_coordinates(tmp_path, capsys):
    w300 = tmp_path / "300W"
    write_300w(w300)
    write_image(w300 / "ibug" / SHIPPED_092, 92)
    write_pts(
        w300 / "ibug" / SHIPPED_092.replace(".jpg", ".pts"),
        np.random.default_rng(92).uniform(20, 70, (68, 2)),
    )
    hrnet_300w_tree(w300, tmp_path / "hrnet")
    _, folder = datamodule("w300", w300, tmp_path / "a")
    _, csv = datamodule("w300_hrnet", tmp_path / "hrnet", tmp_path / "b")
    for split in ("train", "common", "challenging", "full"):
        by_folder = {r.image_path.relative_to(w300).as_posix(): r.landmarks for r in folder.records(split)}
        by_csv = {
            r.image_path.relative_to(tmp_path / "hrnet" / "images").as_posix(): r.landmarks
            for r in csv.records(split)
        }
        assert set(by_csv) == set(by_folder), split  # the 092 face is found under its shipped name
        for name, landmarks in by_folder.items():
            np.testing.assert_allclose(by_csv[name], landmarks, atol=1e-4, err_msg=name)
    assert f"ibug/{SHIPPED_092}" in by_csv
    # data-check compares the CSV with the .pts beside each image, and says the base is right.
    with pytest.raises(SystemExit):  # the tiny tree's counts are not 300W's
        check(config("w300_hrnet", tmp_path / "hrnet", tmp_path / "c", task="data_check"))
    printed = capsys.readouterr().out
    assert re.search(
        r"face_landmarks_300w_valid_challenge.csv: read 1-based, minus 1; 3 faces have a \.pts "
        r"beside the image, the CSV's points differ from it by at most 0\.000 px: they agree",
        printed,
    )
    assert "1 image names mapped to the shipped spelling ('image_092 _01.jpg')" in printed


def test_a_wrong_coordinate_base_is_what_data_check_shows(tmp_path, capsys):
    w300 = tmp_path / "300W"
    write_300w(w300)
    hrnet_300w_tree(w300, tmp_path / "hrnet")
    cfg = config("w300_hrnet", tmp_path / "hrnet", tmp_path / "c", task="data_check")
    for sources in cfg.data.splits.values():
        for source in sources:
            source.one_based = False  # HRNet's values used as stored: 1 px right and down of 300W's
    with pytest.raises(SystemExit):
        check(cfg)
    assert "differ from it by at most 1.000 px: they DISAGREE: check one_based" in capsys.readouterr().out


def aflw_hrnet_tree(aflw: Path, root: Path) -> None:
    """HRNet's data/aflw derived from AFLWinfo_release.mat: values as stored, the box as centre and
    scale (side / 200), `box_size` the box's side (the boxes here are square)."""
    mat = scipy.io.loadmat(str(aflw / "AFLWinfo_release.mat"))
    order = mat["ra"].reshape(-1) - 1
    splits = {
        "train": order[:4],
        "test": order[4:],
        "test_frontal": [i for i in order[4:] if mat["mask_new"][i].all()],
    }
    for csv_name, faces in splits.items():
        rows = []
        for i in faces:
            name = str(mat["nameList"][i, 0][0])
            (root / "images" / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(aflw / "flickr" / name, root / "images" / name)
            left, right, top, bottom = mat["bbox"][i]
            side = right - left
            points = np.stack([mat["data"][i, :19], mat["data"][i, 19:]], axis=1).reshape(-1)
            rows.append([name, side / 200, side, (left + right) / 2, (top + bottom) / 2, *points])
        hrnet_csv(root / f"face_landmarks_aflw_{csv_name}.csv", rows, 19, box_size=True)


def test_aflw_mat_and_hrnet_csv_agree_on_coordinates_crops_and_normaliser(tmp_path):
    TREES["aflw"](tmp_path / "aflw")
    aflw_hrnet_tree(tmp_path / "aflw", tmp_path / "hrnet")
    mat_cfg, mat = datamodule("aflw", tmp_path / "aflw", tmp_path / "a")
    csv_cfg, csv = datamodule("aflw_hrnet", tmp_path / "hrnet", tmp_path / "b")
    mat.setup("test")
    csv.setup("test")
    for split in ("full", "frontal"):
        a, b = mat.datasets[split], csv.datasets[split]
        assert len(a) == len(b) > 0
        for i in range(len(a)):
            sa, sb = a[i], b[i]
            torch.testing.assert_close(sb["target_px"], sa["target_px"])
            torch.testing.assert_close(sb["image"], sa["image"])  # the same crop: the same box
            distances = [
                normalising_distance(
                    s["target_px"][None],
                    mat.scheme,
                    normalisation_for(c.data.nme_normalisation, split),
                    s["normalising_box"][None],
                    s["box_size"][None],
                )
                for s, c in ((sa, mat_cfg), (sb, csv_cfg))
            ]
            # The paper's box width on the .mat, HRNet's box_size column on the CSV: one number.
            assert (
                mat_cfg.data.nme_normalisation == "box_width" and csv_cfg.data.nme_normalisation == "box_size"
            )
            torch.testing.assert_close(distances[1], distances[0])


def test_box_size_normalisation_needs_the_datasets_column(tmp_path):
    TREES["aflw"](tmp_path / "aflw")
    _, dm = datamodule("aflw", tmp_path / "aflw", tmp_path / "a", "data.nme_normalisation=box_size")
    with pytest.raises(DataValidationError, match="split 'full' is normalised by box_size.*box_width"):
        dm.setup("test")


@pytest.mark.parametrize(
    "name,lines",
    [
        ("w300", []),
        ("cofw", []),
        ("cofw68", [r"COFW-68 pairing: 3 faces"]),
        (
            "aflw",
            [
                r"boxes of 'full': 3 faces, \|w - h\| / max\(w, h\) median 0\.000, max 0\.000; box_width, "
                r"box_max_side and box_sqrt_area differ by up to 0\.0% \(box_width is used\)",
                r"AFLW frontal test faces by rule: all_visible: 2, visible_in_box: \d \(published: 1165; used: all_visible\)",
            ],
        ),
        (
            "aflw_hrnet",
            [r"face_landmarks_aflw_test.csv: box_size / the CSV box's side \(scale x 200\): median"],
        ),
        ("w300_hrnet", [r"face_landmarks_300w_valid.csv: read 1-based, minus 1; no .pts beside the images"]),
        ("wflw_hrnet", [r"cannot cross-check: the full test list carries no attribute flags"]),
    ],
)
def test_data_check_prints_each_formats_convention_evidence(name, lines, tmp_path, capsys):
    TREES[name](tmp_path / "root")
    with pytest.raises(SystemExit):  # the tiny trees' counts are not the benchmarks'
        check(config(name, tmp_path / "root", tmp_path / "out", task="data_check"))
    printed = capsys.readouterr().out
    convention = CONVENTIONS[name]
    assert (
        f"conventions: coordinates {convention.coordinates}; NME normaliser {convention.normaliser}"
        in printed
    )
    for line in lines:
        assert re.search(line, printed), line


def test_the_conventions_table_is_the_readmes_and_matches_every_data_config():
    readme = (Path(CONFIG_DIR).parent / "README.md").read_text()
    assert conventions_markdown() in readme
    names = {p.stem for p in (Path(CONFIG_DIR) / "data").glob("*.yaml") if not p.stem.startswith("_")}
    assert set(CONVENTIONS) == names == set(SCHEMES)
    for name in names:
        cfg = compose_config("train", [f"data={name}"], Path("/tmp/unused"))
        assert cfg.data.nme_normalisation == CONVENTIONS[name].normaliser, name
        assert cfg.data.scheme == SCHEMES[name], name


@pytest.mark.parametrize(
    "setting,error",
    [
        ("{default: inter_ocular, cofw68: inter_pupil}", None),
        ("{cofw68: inter_pupil}", "gives no normalisation for split 'val'"),
        ("{default: inter_ocular, cofw: inter_pupil}", "names split 'cofw', which data=cofw68 does not have"),
        ("{default: inter_ocular, cofw68: eye_centres}", "expected one of inter_ocular"),
    ],
)
def test_a_per_split_normalisation_is_checked_before_the_run(setting, error, tmp_path):
    cfg = compose_config("train", ["data=cofw68", f"data.nme_normalisation={setting}"], tmp_path)
    if error is None:
        check_config(cfg)
        module = instantiate(cfg.model, net=torch.nn.Identity(), _convert_="all")
        assert module._nme_metric("cofw68").normalisation == "inter_pupil"
        assert module._nme_metric("common").normalisation == "inter_ocular"
    else:
        with pytest.raises(ConfigError, match=re.escape(error)):
            check_config(cfg)


@pytest.mark.parametrize(
    "name, source, named, not_named",
    [
        # convert's read-back of a CSV under the source's data config (data=w300: .pts folders)
        ("w300", {"reader": "landmarks_csv", "csv_file": "train.csv"}, "`landmarks_csv`", "`.pts`"),
        # and of .pts folders under a CSV data config
        ("face5_csv", "train", "`.pts` 1-based", "landmarks_csv"),
        # a config's own sources: its own line
        ("w300", "lfpw/trainset", "`.pts` 1-based", "the layout the splits"),
    ],
)
def test_the_conventions_line_names_the_format_of_the_splits_given(name, source, named, not_named):
    """data-check's conventions line: where the splits are given in another format than the data
    config's own (convert's read-back), the coordinates named are those of the files read."""
    from odn_lightning.data.conventions import evidence

    data = {
        "name": name,
        "splits": {"train": [source]},
        "test_splits": [],
        "nme_normalisation": "inter_ocular",
    }
    (line,) = [line for line in evidence(data, {}, Path("/nowhere")) if line.startswith("conventions:")]
    assert named in line and not_named not in line, line
