"""compare: run and sweep directories as rows labelled by their overrides, seeds as mean ± std, runs
without metrics shown; table4 as one view of it; sweep job folders named by their overrides."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from odn_lightning import compare
from odn_lightning.evaluation import comparison, recorded_runs
from odn_lightning.evaluation.ablation_table import collect, read_sweep
from odn_lightning.evaluation.report_files import write_predictions

from ..helpers.cli import run_cli
from ..helpers.configs import TINY, compose_config
from ..helpers.folders import passing_folder

# One batch per stage: what the two-model sweep needs to leave metrics and predictions.
SWEEP_TINY = [
    *TINY,
    "model.net.pretrained=false",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=1",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "callbacks.validation_pictures.count=0",
    "callbacks.evaluation_report.pictures=0",
    "extras.print_config=false",
]
GROUPS = ("model", "data", "experiment", "trainer")


def fake_run(
    run_dir: Path,
    overrides: list[str],
    nme: float | None,
    task: str = "train",
    config: dict | None = None,
    faces: int = 0,
) -> Path:
    """A run directory as the entry points leave it: .hydra/{config,hydra,overrides}.yaml, and
    metrics.json (NME `nme` on common, 1.5 x on full) unless `nme` is None (a failed run)."""
    settings = dict(recorded_runs.parse_override(line) for line in overrides)
    choices = {key: value for key, value in settings.items() if key in GROUPS}
    values = [f"{key}={value}" for key, value in settings.items() if key not in GROUPS]
    composed = OmegaConf.merge(
        {"task_name": task, "seed": 42, "data": {"test_splits": ["common", "full"]}},
        config or {},
        OmegaConf.from_dotlist(values),
    )
    (run_dir / ".hydra").mkdir(parents=True)
    OmegaConf.save(composed, run_dir / ".hydra" / "config.yaml")
    OmegaConf.save({"hydra": {"runtime": {"choices": choices}}}, run_dir / ".hydra" / "hydra.yaml")
    OmegaConf.save(OmegaConf.create(overrides), run_dir / ".hydra" / "overrides.yaml")
    if nme is not None:
        metrics = {"test/common/nme": nme, "test/full/nme": 1.5 * nme, "test/common/fr_10": 0.25}
        (run_dir / "metrics.json").write_text(json.dumps(metrics))
    if nme is not None and faces:
        rows = [
            {
                "image_path": f"{i}.jpg",
                "split": split,
                "index": i,
                "normalising_distance": 1.0,
                "nme": nme,
                "predicted": np.zeros((1, 2)),
                "target": np.zeros((1, 2)),
            }
            for split in ("common", "full")
            for i in range(faces)
        ]
        write_predictions(rows, run_dir / "predictions.csv")
    return run_dir


def rows_of(table: str) -> dict[str, list[str]]:
    """A Markdown table's rows by their first cell: the other cells."""
    cells = [line.strip("|").split(" | ") for line in table.splitlines() if line.startswith("| ")]
    return {row[0].strip(): [c.strip() for c in row[1:]] for row in cells[1:]}


# ------------------------------------------------------------------------- a real two-model sweep


@pytest.fixture(scope="module")
def two_model_sweep(tmp_path_factory, synthetic_root) -> Iterator[Path]:
    """`--multirun model=brnet,odn`, one batch per stage (about 15 s on 2 cores)."""
    with passing_folder(tmp_path_factory, "two_models") as folder:
        yield sweep_in(folder / "logs", synthetic_root)


def sweep_in(logs: Path, synthetic_root: Path) -> Path:
    result = run_cli(
        "odn_lightning.train",
        "--multirun",
        "model=brnet,odn",
        f"data.root={synthetic_root}",
        f"paths.log_dir={logs}",
        *SWEEP_TINY,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = (logs / "train" / "multiruns").iterdir()
    return sweep


@pytest.mark.slow
def test_a_two_model_sweep_compares_as_two_rows_labelled_by_model(two_model_sweep, tmp_path):
    jobs = sorted(p for p in two_model_sweep.iterdir() if p.is_dir())
    # Job folders: number, then the overrides, Hydra-safe (no `=` or `,`), paths and limits left out.
    assert [job.name.split("_", 1)[0] for job in jobs] == ["0", "1"]
    assert "+model-brnet+" in jobs[0].name and "+model-odn+" in jobs[1].name
    assert not any(c in job.name for job in jobs for c in "=,/") and "limit" not in jobs[0].name

    # The command line's folder, as `python -m odn_lightning.compare SWEEP` hands it to Hydra.
    out = tmp_path / "out"
    cfg = compose_config("compare", compare.folders_as_override([str(two_model_sweep)]), out)
    rows = rows_of(compare.main_task(cfg))
    assert list(rows) == ["model=brnet", "model=odn"]
    splits = ["common", "challenging", "full"]
    for job, label in zip(jobs, rows, strict=True):
        metrics = json.loads((job / "metrics.json").read_text())
        assert rows[label][0] == "1"  # one run
        assert rows[label][1:4] == [f"{metrics[f'test/{s}/nme'] * 100:.2f}" for s in splits]
    assert rows_of((out / "compare.md").read_text()) == rows
    groups = recorded_runs.group_runs(recorded_runs.find_runs([two_model_sweep]))
    for job, group in zip(jobs, groups, strict=True):
        metrics = json.loads((job / "metrics.json").read_text())
        assert [run.run_dir for run in group.runs] == [job]
        assert {s: group.values(f"test/{s}/nme") for s in splits} == {
            s: [metrics[f"test/{s}/nme"]] for s in splits
        }
    assert sorted(p.name for p in out.glob("compare_ced_*.png")) == [
        f"compare_ced_{s}.png" for s in sorted(splits)
    ]


@pytest.mark.slow
def test_table4_of_a_two_model_sweep_is_two_rows_not_missing_ones(two_model_sweep):
    runs = read_sweep(two_model_sweep)
    assert [(run.variant, run.status) for run in runs] == [("brnet", "done"), ("odn", "done")]
    table, plots = collect(two_model_sweep, None)
    assert list(rows_of(table)) == ["BRNet", "ODN (GM+LM+DM)"]
    assert "MISSING" not in table and len(plots) == 3


# ------------------------------------------------------------------------------ rows and labels


def test_seeds_of_a_setting_are_one_row_of_mean_and_std_and_a_run_without_metrics_shows(tmp_path):
    sweep = tmp_path / "sweep"
    for seed, nme in enumerate((0.060, 0.061, 0.062)):
        fake_run(sweep / f"{seed}_model-brnet+seed-{seed}", ["model=brnet", f"seed={seed}"], nme, faces=2)
    fake_run(sweep / "3_model-odn+seed-0", ["model=odn", "seed=0"], 0.04, faces=2)
    fake_run(sweep / "4_model-odn+seed-1", ["model=odn", "seed=1"], None)  # failed: no metrics.json
    fake_run(sweep / "10_model-gm_dm+seed-0", ["model=gm_dm", "seed=0"], None)
    groups = recorded_runs.group_runs(recorded_runs.find_runs([sweep]))
    assert [g.label for g in groups] == ["model=brnet", "model=odn", "model=gm_dm"]
    text, plots = comparison.write_comparison(groups, tmp_path / "out")
    rows = rows_of(text)
    assert rows["model=brnet"][:3] == ["3", "6.10 ± 0.10", "9.15 ± 0.15"]
    assert rows["model=odn"][:3] == ["1 of 2", "4.00", "6.00"]
    assert rows["model=gm_dm"] == ["0 of 1"] + ["NO METRICS"] * 4  # NME and FR on common and full
    listing = text.split("Runs:")[1]
    assert "4_model-odn+seed-1` (no metrics.json: failed, or not finished)" in listing
    assert "10_model-gm_dm+seed-0` (no metrics.json" in listing
    assert [p.name for p in plots] == ["compare_ced_common.png", "compare_ced_full.png"]
    assert (tmp_path / "out" / "compare.md").read_text() == text


def test_labels_come_from_the_values_runs_took_less_ignored_keys_and_per_entry_point(tmp_path):
    # Two runs at max_epochs 5 (one set it, one took it as its default) and one at 2; log dirs differ
    # (ignored); an ERT run is labelled by its entry point.
    fake_run(tmp_path / "a", ["model=odn", "trainer.max_epochs=5", "paths.log_dir=/a"], 0.05)
    fake_run(tmp_path / "b", ["model=odn", "paths.log_dir=/b"], 0.07, config={"trainer": {"max_epochs": 5}})
    fake_run(tmp_path / "c", ["model=odn"], 0.09, config={"trainer": {"max_epochs": 2}})
    groups = recorded_runs.group_runs(
        recorded_runs.find_runs([tmp_path / "a", tmp_path / "b", tmp_path / "c"])
    )
    assert [(g.label, len(g.runs)) for g in groups] == [
        ("trainer.max_epochs=5", 2),
        ("trainer.max_epochs=2", 1),
    ]
    fake_run(tmp_path / "ert", ["data=synthetic"], 0.03, task="ert")
    groups = recorded_runs.group_runs(recorded_runs.find_runs([tmp_path]))
    assert [g.label for g in groups] == [
        "train: trainer.max_epochs=5",
        "train: trainer.max_epochs=2",
        "ert",
    ]


def test_compare_md_lists_every_setting_that_differs_not_only_the_command_lines(tmp_path):
    # An ERT run and a DDP train run that share no override: their configs and group choices still differ.
    fake_run(tmp_path / "ert", ["ert.cascade_depth=2"], 0.03, task="ert", config={"data": {"limit": 200}})
    fake_run(
        tmp_path / "train",
        ["trainer=ddp_cpu"],
        0.05,
        config={"trainer": {"limit_train_batches": 3}, "paths": {"output_dir": "/x"}},
    )
    groups = recorded_runs.group_runs(recorded_runs.find_runs([tmp_path / "ert", tmp_path / "train"]))
    text, _ = comparison.write_comparison(groups, tmp_path / "out")
    differing = text.split("Settings that differ between the runs", 1)[1].split("\n\n", 2)[1]
    lines = differing.splitlines()
    assert "- `ert.cascade_depth`: `2` (ert); not set (train)" in lines
    assert "- `data.limit`: `200` (ert); not set (train)" in lines
    assert "- `trainer` (group): not set (ert); `ddp_cpu` (train)" in lines
    assert "- `trainer.limit_train_batches`: not set (ert); `3` (train)" in lines
    assert "- `task_name`: `ert` (ert); `train` (train)" in lines
    assert not [line for line in lines if "paths." in line or "seed" in line]  # ignored; equal


def test_table4_names_rows_by_variant_where_that_is_unique_else_by_overrides(tmp_path):
    sweep = tmp_path / "sweep"
    fake_run(sweep / "0", ["model=brnet"], 0.06)
    fake_run(sweep / "1", ["model=odn", "model.objective.eta=0"], 0.05)
    fake_run(sweep / "2", ["model=odn", "model.objective.eta=1e-6"], 0.04)
    assert [run.variant for run in read_sweep(sweep)] == [
        "brnet",
        "model=odn model.objective.eta=0",
        "model=odn model.objective.eta=1e-6",
    ]
    # A sweep of `experiment=ablation` is Table 4's: every variant is a row, one without a job MISSING.
    fake_run(tmp_path / "ablation" / "0", ["experiment=ablation", "model=odn"], 0.05)
    statuses = {run.variant: run.status for run in read_sweep(tmp_path / "ablation")}
    assert statuses["odn"] == "done" and statuses["brnet"] == statuses["ert"] == "missing"


def test_folders_not_runs_are_named_in_one_line(tmp_path):
    missing = re.escape(f"{tmp_path / 'nowhere'} is not a folder: name run")
    with pytest.raises(FileNotFoundError, match=missing):
        recorded_runs.find_runs([tmp_path / "nowhere"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty holds no run \(no .hydra/config.yaml"):
        recorded_runs.find_runs([tmp_path / "empty"])


# ---------------------------------------------------------------------------------- command line


def test_folders_given_as_arguments_become_one_quoted_runs_override(tmp_path):
    job = tmp_path / "0_model=odn,seed=0"  # a job folder of Hydra's default naming
    job.mkdir()
    # Folders that do not exist go to runs too, to be named in compare's one-line error.
    arguments = [str(job), "threshold=0.2", "--cfg", "job", "logs/typo", "logs/x/0_model=odn"]
    *kept, runs = compare.folders_as_override(arguments)
    assert kept == ["threshold=0.2", "--cfg", "job"]
    folders = [str(job), "logs/typo", "logs/x/0_model=odn"]
    assert OverridesParser.create().parse_override(runs).value() == folders
    assert list(compose_config("compare", [runs, "hydra.run.dir=x"], tmp_path / "out").runs) == folders
    with pytest.raises(compare.UsageError, match="use one of the two"):
        compare.folders_as_override([str(job), "runs=[a]"])
    assert compare.folders_as_override(["runs=[a]", "threshold=0.2"]) == ["runs=[a]", "threshold=0.2"]


def test_compare_config_holds_the_module_defaults(tmp_path):
    cfg = compose_config("compare", [], tmp_path)
    assert tuple(cfg.replicate_keys) == recorded_runs.REPLICATE_KEYS
    assert tuple(cfg.ignore_keys) == recorded_runs.IGNORE_KEYS
    assert list(cfg.runs) == [] and cfg.threshold == 0.10


def test_occlusion_columns_show_where_measured_as_mean_and_std():
    def run(name: str, metrics: dict) -> recorded_runs.Run:
        return recorded_runs.Run(Path(name), "train", {}, metrics={"test/full/nme": 0.07, **metrics})

    supervised = recorded_runs.RunGroup(
        "model.objective.occlusion_weight=1",
        [
            run(
                "a", {"test/full/occlusion_probability_auroc": 0.9, "test/full/occlusion_probability_ap": 0.6}
            ),
            run(
                "b", {"test/full/occlusion_probability_auroc": 0.8, "test/full/occlusion_probability_ap": 0.4}
            ),
        ],
    )
    brnet = recorded_runs.RunGroup("model=brnet", [run("c", {})])
    lines = comparison.comparison_table([supervised, brnet], ["full"], 0.1).splitlines()
    assert lines[0].endswith("| full calibrated occlusion AUROC | full calibrated occlusion AP |")
    # Mean ± sample standard deviation over the seeds; "-" where a row has no map.
    assert lines[2].endswith("| 0.8500 ± 0.0707 | 0.5000 ± 0.1414 |")
    assert lines[3].endswith("| - | - |")
