"""Every option of every config group composes, resolves, and builds what it names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict

from odn_lightning.config import CONFIG_DIR, overridden
from odn_lightning.schemes import get_scheme

from .helpers.configs import compose_config

CONF = Path(CONFIG_DIR)


def options(group: str) -> list[str]:
    """The selectable options; `_name.yaml` files are parts that options include."""
    return sorted(p.stem for p in (CONF / group).glob("*.yaml") if not p.stem.startswith("_"))


GROUPS = [
    "data",
    "model",
    "model/optimizer",
    "model/scheduler",
    "trainer",
    "logger",
    "callbacks",
    "paths",
    "extras",
    "experiment",
    "debug",
    "hydra",
]


def readme_config_groups() -> dict[str, set[str]]:
    """The README's config-group table: each group and the options it names (`name` in backticks)."""
    text = (CONF.parent / "README.md").read_text()
    table = text.split("| group | options |", 1)[1].split("\n\n", 1)[0]
    rows = re.findall(r"^\| `(\w+(?:/\w+)?)` \| (.*) \|$", table, flags=re.M)
    return {group: set(re.findall(r"`([a-z0-9_]+)`", cells)) for group, cells in rows}


def test_readme_lists_every_group_and_option_that_help_lists():
    # `--help` lists conf/<group>/*.yaml; files starting with `_` are parts, not options.
    assert readme_config_groups() == {group: set(options(group)) for group in GROUPS if group != "hydra"}


def test_readme_states_the_bare_train_recipe_the_config_holds(tmp_path):
    text = " ".join((CONF.parent / "README.md").read_text().split())
    cfg = compose_config("train", [], tmp_path)
    stated = (
        f"a bare `python -m odn_lightning.train` trains at {cfg.data.image_size} px, "
        f"{cfg.trainer.max_epochs} epochs over {cfg.data.synthetic.sizes.train} synthetic faces, from scratch"
    )
    assert stated in text and not cfg.model.net.pretrained


def test_every_group_has_options():
    for group in GROUPS:
        assert options(group), f"conf/{group} has no options"


@pytest.mark.parametrize(
    "group,option", [(g, o) for g in GROUPS if g != "hydra" for o in options(g)], ids=lambda v: str(v)
)
def test_train_option_composes_and_resolves(group, option, tmp_path):
    cfg = compose_config("train", [f"{group}={option}"], tmp_path)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    # Point counts come from the scheme alone.
    assert resolved["model"]["net"]["num_landmarks"] == get_scheme(resolved["data"]["scheme"]).num_landmarks
    assert resolved["paths"]["output_dir"] == str(tmp_path)
    # The objects the entry point builds from this composition.
    instantiate(cfg.data)
    if group == "model":
        module = instantiate(cfg.model)
        assert hasattr(module, "net")


@pytest.mark.parametrize("option", options("trainer"))
def test_trainer_options_set_their_accelerator(option, tmp_path):
    trainer = compose_config("train", [f"trainer={option}"], tmp_path).trainer
    expected = {"default": "auto", "cpu": "cpu", "ddp_cpu": "cpu", "gpu": "gpu", "ddp": "gpu"}[option]
    assert trainer.accelerator == expected
    if option == "ddp_cpu":
        assert trainer.devices == 2
        # Not the bare `ddp_spawn`: its gloo workers would exit with their process group alive (SIGABRT).
        assert trainer.strategy._target_ == "odn_lightning.training.strategies.SpawnDDPStrategy"


@pytest.mark.parametrize("option", options("logger"))
def test_logger_options_always_include_csv(option, tmp_path):
    cfg = compose_config("train", [f"logger={option}"], tmp_path)
    assert "csv" in cfg.logger
    if "wandb" in cfg.logger:
        assert cfg.logger.wandb.offline is True


def test_eval_config_composes_with_and_without_data(tmp_path):
    # Without data=, a placeholder that takes data.KEY=VALUE overrides of the checkpoint's data config.
    cfg = compose_config("eval", ["ckpt_path=x.ckpt", "data.batch_size=8", "data.root=/elsewhere"], tmp_path)
    assert cfg.data.name == "from_checkpoint"
    assert (cfg.data.batch_size, cfg.data.root) == (8, "/elsewhere")
    cfg = compose_config("eval", ["ckpt_path=x.ckpt", "data=w300"], tmp_path)
    assert cfg.data.name == "w300"


def test_pictures_sets_the_faces_of_every_picture_callback(tmp_path):
    train = compose_config("train", ["pictures=3"], tmp_path / "train")
    assert (train.callbacks.evaluation_report.pictures, train.callbacks.validation_pictures.count) == (3, 3)
    assert compose_config("train", [], tmp_path / "default").callbacks.evaluation_report.pictures == 8
    evaluation = compose_config("eval", ["ckpt_path=x.ckpt", "pictures=0"], tmp_path / "eval")
    assert evaluation.callbacks.evaluation_report.pictures == 0
    # A run's pictures do not change what it measures: not part of its job folder's name.
    assert "pictures" in OmegaConf.to_container(train.hydra.job.config.override_dirname.exclude_keys)


def test_overridden_matches_keys_and_subkeys():
    assert overridden("data", ["data=w300"])
    assert overridden("data", ["data.root=/x"])
    assert overridden("trainer.limit_test_batches", ["+trainer.limit_test_batches=2"])
    assert not overridden("data", ["datamodule=1", "seed=3"])


def test_extras_print_the_resolved_config_only_when_asked(tmp_path, capsys):
    from odn_lightning.runs import apply_extras

    apply_extras(compose_config("train", [], tmp_path))
    assert "task_name" not in capsys.readouterr().out
    apply_extras(compose_config("train", ["extras.print_config=true"], tmp_path))
    printed = capsys.readouterr().out
    assert "task_name: train" in printed and f"output_dir: {tmp_path}" in printed


def run_config_as_checkpointed(overrides: list[str], tmp_path) -> dict:
    """What a training run stores in its checkpoints: its resolved config, without Hydra's own node."""
    cfg = compose_config("train", overrides, tmp_path / "train")
    with open_dict(cfg):
        del cfg["hydra"]
    return OmegaConf.to_container(cfg, resolve=True)


@pytest.mark.parametrize(
    "train_overrides,expected",
    [([], "inter_pupil"), (["model.nme_normalisation=box_sqrt_area"], "box_sqrt_area")],
    ids=["dataset's", "forced"],
)
def test_eval_on_other_data_takes_its_normalisation_unless_training_forced_one(
    train_overrides, expected, tmp_path
):
    from odn_lightning.eval import eval_config
    from odn_lightning.training.callbacks import RUN_CONFIG_KEY

    run = run_config_as_checkpointed(["data=w300", "data.image_size=96", *train_overrides], tmp_path)
    overrides = ["ckpt_path=x.ckpt", "data=w300", "data.nme_normalisation=inter_pupil"]
    cfg = eval_config(compose_config("eval", overrides, tmp_path / "eval"), {RUN_CONFIG_KEY: run}, overrides)
    model = OmegaConf.to_container(cfg.model, resolve=True)
    assert model["nme_normalisation"] == expected
    assert model["image_size"] == cfg.data.image_size == 96  # the trained crop size
    assert model["net"]["pretrained"] is False  # the weights come from the checkpoint


def test_configs_outside_the_repository_are_found_with_config_dir(tmp_path):
    from .helpers.cli import run_cli

    (tmp_path / "my_conf" / "data").mkdir(parents=True)
    (tmp_path / "my_conf" / "data" / "mine.yaml").write_text("defaults: [synthetic, _self_]\nname: mine\n")
    result = run_cli(
        "odn_lightning.train", "--config-dir", str(tmp_path / "my_conf"), "data=mine", "--cfg", "job"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    data = yaml.safe_load(result.stdout)["data"]
    assert data["name"] == "mine" and data["scheme"] == "ibug68"  # the rest from conf/data/synthetic.yaml


def test_job_folder_names_stay_legal_and_unique_when_cut():
    from odn_lightning.config import JOB_DIRNAME_BYTES, job_dirname

    assert job_dirname(3, "model-odn+seed-1") == "3_model-odn+seed-1"
    assert job_dirname(0, "") == "0" and job_dirname(1, "ckpt_path-a/b.ckpt") == "1_ckpt_path-a_b.ckpt"
    long_a, long_b = (f"{'data.some_key-1+' * 20}model-{m}" for m in ("brnet", "odn"))
    cut_a, cut_b = job_dirname(0, long_a), job_dirname(0, long_b)
    assert len(cut_a.encode()) <= JOB_DIRNAME_BYTES and cut_a != cut_b  # the hash of all tells them apart


def test_synthetic_faces_of_other_settings_get_a_folder_of_their_own(tmp_path):
    """Other sizes, seed or image size never rewrite the faces another run reads (issue 27)."""
    roots = {
        overrides: compose_config("train", list(overrides), tmp_path).data.root
        for overrides in (
            (),
            ("data.synthetic.sizes.train=200",),
            ("data.synthetic.seed=1",),
            ("data.synthetic.image_size=128",),
            ("experiment=quickstart",),
        )
    }
    assert roots[()].endswith("/data/synthetic/seed0-256px-train3148-val300-common554-challenging135")
    assert roots[("data.synthetic.sizes.train=200",)].endswith(
        "/synthetic/seed0-256px-train200-val300-common554-challenging135"
    )
    assert len({roots[k] for k in roots if k != ("experiment=quickstart",)}) == 4
    assert roots[("experiment=quickstart",)] == roots[()]  # make train reads the default faces
