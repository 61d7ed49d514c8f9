"""README's recipes are tests: every command line of README.md's shell blocks runs here, as written, at
smoke size in a scratch project (tests/helpers/readme.py: the smoke limits appended, placeholders
filled), in README's order, so a user following README meets what the tests met. NOT_RUN is the one
list of those that cannot run on a test machine, each with why."""

from __future__ import annotations

import json
import shlex

import pytest

from .helpers.configs import compose_config
from .helpers.readme import make_expansion, readme_commands, with_smoke
from .helpers.readme_project import Project

COMMANDS = readme_commands()
NOT_RUN = {
    "make test": "the test suite itself",
    "make test PYTEST_ARGS=\"-m 'not slow'\"": "the test suite itself",
    "python -m odn_lightning.predict ckpt_path=... input=0 annotate=true max_frames=300": (
        "a camera: a test machine has none (a video file, clip.mp4 above, goes the same way)"
    ),
    # Sweeps of 9 and more trainings: about half a minute each at smoke size, over make test's budget.
    # test_make_lines_not_run_compose_as_they_would_run composes what make would run.
    "make ablation DATA=synthetic SEEDS=3": "the line above under seeds 0, 1 and 2 (21 trainings)",
    "make mechanism": "three networks under 3 seeds, the ERT anchor and table4 (9 trainings and a fit)",
    "make heatmap": "four networks under 3 seeds, the ERT anchor and table4 (12 trainings and a fit)",
    "python -m odn_lightning.train --multirun hydra/launcher=slurm hydra.launcher.partition=gpu"
    " hydra.launcher.gpus_per_node=4 hydra.launcher.tasks_per_node=4 trainer=ddp trainer.devices=4"
    " experiment=ablation model=brnet,gm_dm,dm_lm,gm_lm,odn_no_l1,odn data=w300 data.root=/data/300W": (
        "a SLURM cluster and 4 GPUs a job (evaluation/test_experiments.py composes the launcher's config)"
    ),
}
SWEEP = "logs/train/multiruns/<date>_<time>"


def in_running_order(commands: list[str]) -> list[str]:
    """README's order, but for the lines that read a sweep: they come after `make table4`, so they
    compare the sweep `make ablation` made, as a user who followed README would."""
    readers = [line for line in commands if SWEEP in line]
    rest = [line for line in commands if SWEEP not in line]
    at = rest.index("make table4") + 1
    return [*rest[:at], *readers, *rest[at:]]


RUN = in_running_order([line for line in COMMANDS if line not in NOT_RUN])
# What Lightning prints that does not apply to the suite's runs (training/quiet.py), and its table of
# modules (the run's network line says the parameters and FLOPs).
NOT_APPLICABLE = (
    "Tip:",
    "LeafSpec",
    "TPU available",
    "Be aware that when using `ckpt_path`",
    "Trainable params",
)


def quiet(results) -> None:
    """One summary table and the paths; nothing Lightning says that does not apply."""
    output = results[-1].stdout + results[-1].stderr
    assert not [text for text in NOT_APPLICABLE if text in output], output[-3000:]
    assert "NME" in results[-1].stdout and "run directory: " in results[-1].stdout


def reproduces_the_runs_test(project: Project, results) -> None:
    """eval of the checkpoint train tested gives train's test numbers (the same smoke limits)."""
    quiet(results)
    trained = json.loads((project.trained() / "metrics.json").read_text())
    evaluated = json.loads((project.runs("eval")[-1] / "metrics.json").read_text())
    assert evaluated["test/common/nme"] == pytest.approx(trained["test/common/nme"], rel=1e-6)


def prints(*texts: str):
    def check(project: Project, results) -> None:
        for text in texts:
            assert text in results[-1].stdout, f"no {text!r} in\n{results[-1].stdout[-3000:]}"

    return check


# What a line must show beyond succeeding, where README says what it does.
CHECKS = {
    "make train": lambda project, results: quiet(results),
    "python -m odn_lightning.eval ckpt_path=logs/train/runs/<run>/checkpoints/best-....ckpt": reproduces_the_runs_test,
    "python -m odn_lightning.export ckpt_path=path/to/last.ckpt": prints("model: ", ".onnx", "max abs diff"),
    "make table4": prints("| BRNet |", "| ODN (GM+LM+DM) |", "| ERT"),
}


@pytest.fixture(scope="module")
def project(tmp_path_factory, synthetic_root, trained_run) -> Project:
    return Project(tmp_path_factory.mktemp("readme") / "project", synthetic_root, trained_run)


def test_every_readme_command_is_run_or_listed_with_why():
    assert len(COMMANDS) > 40 and "make train" in COMMANDS  # README's blocks were found
    assert set(NOT_RUN) <= set(COMMANDS), f"listed but not in README: {sorted(set(NOT_RUN) - set(COMMANDS))}"
    assert all(reason.strip() for reason in NOT_RUN.values())


@pytest.mark.parametrize(
    "line", [line for line in NOT_RUN if line.startswith(("make ablation", "make mechanism", "make heatmap"))]
)
def test_make_lines_not_run_compose_as_they_would_run(line, tmp_path):
    """What make would run for a line left out: each entry point's config composes from the printed
    arguments (a sweep at its first value), with the smoke limits; the seeds are the ones README says."""
    commands = make_expansion(line, tmp_path)
    assert commands and all(words[0].endswith("python") and words[1] == "-m" for words in commands)
    for number, words in enumerate(commands):
        module = words[2].removeprefix("odn_lightning.")
        first = [arg.split(",")[0] if "=" in arg and not set("/[{") & set(arg) else arg for arg in words[3:]]
        args = [
            arg for arg in with_smoke(module, first) if arg != "--multirun" and not arg.startswith("hydra.")
        ]
        compose_config(module, args, tmp_path / f"run{number}")
    sweep = next(words for words in commands if "--multirun" in words)
    assert "seed=0,1,2" in sweep


@pytest.mark.slow
@pytest.mark.parametrize(
    "line", RUN, ids=[f"{i:02d}-{' '.join(line.split()[:3])[:50]}" for i, line in enumerate(RUN)]
)
def test_readme_command_runs_as_written(project, line):
    results = project.run(line)
    last = results[-1]
    assert last.returncode == 0, (
        f"{shlex.join(last.args) if isinstance(last.args, list) else last.args}\n{last.stdout[-2000:]}\n{last.stderr[-4000:]}"
    )
    assert not any("Traceback" in r.stderr for r in results)
    if line in CHECKS:
        CHECKS[line](project, results)
