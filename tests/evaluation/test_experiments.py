"""The paper's experiments compose as their names say; sweeps run through the basic and submitit
launchers; the Table-4 collector reports done, failed and missing variants."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from odn_lightning.evaluation.ablation_table import TABLE4_ROWS, collect, read_sweep
from odn_lightning.evaluation.report_files import write_predictions

from ..helpers.cli import run_cli, user_error_in_process
from ..helpers.configs import TINY, compose_config
from ..models.test_table4_configs import TABLE4

CONF = Path(__file__).resolve().parents[2] / "conf" / "experiment"
PAPER = {
    "paper_300w": ("w300", ["common", "challenging", "full"]),
    "paper_cofw68": ("cofw68", ["cofw68"]),
    "paper_aflw": ("aflw", ["full", "frontal"]),
}


def paper_recipe_holds(cfg) -> None:
    assert cfg.data.image_size == 224 and cfg.model.net.pretrained is True
    augmentation = cfg.data.augmentation
    assert (augmentation.rotation, augmentation.scale, augmentation.translation, augmentation.flip) == (
        15.0,
        0.1,
        0.05,
        True,
    )
    assert cfg.data.occlusion.probability == 0.0
    objective = cfg.model.objective
    assert (objective.alpha, objective.gamma, objective.lam, objective.beta) == (1e-5, 1e-5, 1e-5, 1e-6)
    # AdamW, with the Frobenius terms as its decoupled weight decay (decided on runs: _paper.yaml).
    assert cfg.model.optimizer._target_ == "torch.optim.AdamW" and objective.weight_penalty == "decoupled"


def test_every_experiment_file_is_tested():
    found = {p.relative_to(CONF).with_suffix("").as_posix() for p in CONF.rglob("*.yaml")}
    found = {name for name in found if not Path(name).name.startswith("_")}
    assert found == set(PAPER) | set(HRNET) | {"ablation", "heatmap", "mechanism", "quickstart"}


# HRNet-Facial's published settings per dataset (experiments/<name>/face_alignment_<name>_hrnet_w18.yaml
# at f776dbe): the data config reading its files, SIGMA and LR; every recipe 256 px crops, 64 x 64 maps,
# Adam without decay, batch 16, 60 epochs, LR_STEP [30, 50] and LR_FACTOR 0.1, scale 0.25, rotation 30, flip.
HRNET = {
    "hrnet_300w": ("w300_hrnet", 1.0, 1e-4),
    "hrnet_cofw": ("cofw", 1.5, 1e-4),
    "hrnet_aflw": ("aflw_hrnet", 1.5, 2e-4),
    "hrnet_wflw": ("wflw_hrnet", 1.5, 1e-4),
}


@pytest.mark.parametrize("name", sorted(HRNET))
def test_hrnet_recipes_compose_with_hrnet_facials_settings(name, tmp_path):
    cfg = compose_config("train", [f"experiment={name}"], tmp_path)
    data, sigma, lr = HRNET[name]
    assert cfg.data.name == data and cfg.model.net._target_ == "odn_lightning.models.HeatmapNet"
    assert (cfg.model.net.backbone, cfg.model.net.pretrained, cfg.model.net.decode) == (
        "hrnet_w18",
        True,
        "hrnet",
    )
    assert (cfg.model.objective.sigma, cfg.model.objective.sigma_at, cfg.model.objective.encoding) == (
        sigma,
        64,
        "hrnet",
    )
    assert cfg.data.image_size == 256 and cfg.data.batch_size == 16 and cfg.trainer.max_epochs == 60
    assert cfg.model.optimizer._target_ == "torch.optim.Adam" and cfg.model.optimizer.lr == lr
    assert cfg.model.optimizer.weight_decay == 0.0
    scheduler = cfg.model.scheduler
    assert scheduler._target_ == "torch.optim.lr_scheduler.MultiStepLR" and set(scheduler) == {
        "_target_",
        "_partial_",
        "milestones",
        "gamma",
    }
    assert (list(scheduler.milestones), scheduler.gamma, cfg.model.scheduler_interval) == (
        [30, 50],
        0.1,
        "epoch",
    )
    augmentation = cfg.data.augmentation
    assert (augmentation.scale, augmentation.rotation, augmentation.flip) == (0.25, 30.0, True)


@pytest.mark.parametrize("name", sorted(PAPER))
def test_paper_experiment_composes_with_its_dataset_and_splits(name, tmp_path):
    cfg = compose_config("train", [f"experiment={name}"], tmp_path)
    data, splits = PAPER[name]
    assert cfg.data.name == data and list(cfg.data.test_splits) == splits
    assert (cfg.model.net.use_gm, cfg.model.net.use_dm, cfg.model.net.use_lm) == (True, True, True)
    assert cfg.model.objective.eta == 1e-6
    paper_recipe_holds(cfg)
    if data == "aflw":
        assert cfg.data.nme_normalisation == "box_width"
    for key in ("data", "model", "trainer", "tags"):
        OmegaConf.to_container(cfg[key], resolve=True)  # every interpolation resolves


@pytest.mark.parametrize("variant", ["brnet", "brnet_conv_pool", "odn"])
def test_mechanism_experiment_is_the_quickstart_with_finer_maps_named_by_its_model(variant, tmp_path):
    quickstart = compose_config("train", ["experiment=quickstart", f"model={variant}"], tmp_path)
    cfg = compose_config("train", ["experiment=mechanism", f"model={variant}"], tmp_path)
    assert cfg.model.net.output_stride == 16 and quickstart.model.net.output_stride == 32
    for key in ("data.image_size", "data.batch_size", "model.optimizer", "trainer.max_epochs"):
        assert OmegaConf.select(cfg, key) == OmegaConf.select(quickstart, key), key
    assert cfg.run_name == variant and cfg.group == "mechanism-synthetic"
    assert cfg.tags[:3] == ["mechanism", "synthetic", variant]


@pytest.mark.parametrize("variant, backbone", [(None, "hrnet_w18"), ("resnet18_heatmap", "resnet18")])
def test_heatmap_experiment_is_the_quickstart_for_heatmap_networks(variant, backbone, tmp_path):
    # experiment=heatmap (make heatmap) trains the heatmap networks at mechanism's recipe, so that its
    # rows are read beside that experiment's BRNet, ODN and ERT: HRNetV2-W18 unless model= says otherwise.
    chosen = [f"model={variant}"] if variant else []
    quickstart = compose_config("train", ["experiment=quickstart", "model=brnet"], tmp_path)
    cfg = compose_config("train", ["experiment=heatmap", *chosen], tmp_path)
    assert cfg.model.net._target_ == "odn_lightning.models.HeatmapNet" and cfg.model.net.backbone == backbone
    assert (cfg.model.net.pretrained, cfg.model.net.decode, cfg.model.objective.encoding) == (
        False,
        "dark",
        "unbiased",
    )
    assert (cfg.model.objective.sigma, cfg.model.objective.sigma_at) == (2.0, 32)
    for key in ("data.image_size", "data.batch_size", "data.augmentation", "model.optimizer", "trainer"):
        assert OmegaConf.select(cfg, key) == OmegaConf.select(quickstart, key), key
    assert cfg.model.scheduler == quickstart.model.scheduler
    name = variant or "hrnet_w18"
    assert (
        cfg.run_name == name
        and cfg.group == "heatmap-synthetic"
        and cfg.tags == ["heatmap", "synthetic", name]
    )


@pytest.mark.parametrize("variant", sorted(TABLE4))
def test_ablation_experiment_runs_the_papers_recipe_named_by_its_model(variant, tmp_path):
    cfg = compose_config("train", ["experiment=ablation", f"model={variant}", "data=w300"], tmp_path)
    use_gm, use_dm, use_lm, with_l1 = TABLE4[variant]
    assert (cfg.model.net.use_gm, cfg.model.net.use_dm, cfg.model.net.use_lm) == (use_gm, use_dm, use_lm)
    assert (cfg.model.objective.eta > 0) == with_l1
    paper_recipe_holds(cfg)
    # W&B: named by variant, grouped per dataset sweep, tagged with the dataset and switches.
    assert cfg.run_name == variant and cfg.group == "table4-w300"
    assert cfg.tags[:3] == ["table4", "w300", variant]
    assert ("gm" if use_gm else "no_gm") in cfg.tags and ("lm" if use_lm else "no_lm") in cfg.tags
    assert ("dm" if use_dm else "no_dm") in cfg.tags
    if use_dm:
        assert ("l1" if with_l1 else "no_l1") in cfg.tags


def test_wandb_logger_takes_the_run_name_group_and_tags(tmp_path):
    cfg = compose_config(
        "train",
        ["experiment=ablation", "model=gm_lm", "data=synthetic", "logger=wandb", "group=sweep-1"],
        tmp_path,
    )
    wandb = OmegaConf.to_container(cfg.logger.wandb, resolve=True)
    assert (wandb["name"], wandb["group"]) == ("gm_lm", "sweep-1")
    assert wandb["tags"][:2] == ["table4", "synthetic"] and wandb["offline"] is True


def test_slurm_launcher_composes(tmp_path):
    cfg = compose_config(
        "train", ["hydra/launcher=slurm", "trainer=ddp", "experiment=ablation", "model=odn"], tmp_path
    )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.gpus_per_node == launcher.tasks_per_node and launcher.timeout_min > 0
    assert cfg.trainer.strategy == "ddp"


# ------------------------------------------------------------------------------- the collector


def fake_job(sweep: Path, number: int, variant: str, nme: float | None) -> Path:
    job = sweep / str(number)
    (job / ".hydra").mkdir(parents=True)
    OmegaConf.save(
        OmegaConf.create({"run_name": variant, "data": {"test_splits": ["common", "full"]}}),
        job / ".hydra" / "config.yaml",
    )
    if nme is not None:
        metrics = {f"test/{s}/{k}": nme * f for s, f in (("common", 1.0), ("full", 1.5)) for k in ("nme",)}
        metrics |= {f"test/{s}/auc_10": 0.5 for s in ("common", "full")}
        metrics |= {f"test/{s}/fr_10": 0.02 for s in ("common", "full")}
        # What train.py adds from the NetworkSummary callback.
        metrics |= {"model/params": 11.21e6, "model/flops": 0.6e9, "model/image_size": 128}
        (job / "metrics.json").write_text(json.dumps(metrics))
        import numpy as np

        rows = [
            {
                "image_path": "a.jpg",
                "split": s,
                "index": i,
                "normalising_distance": 1.0,
                "nme": nme * (i + 1) / 2,
                "predicted": np.zeros((1, 2)),
                "target": np.zeros((1, 2)),
            }
            for s in ("common", "full")
            for i in range(3)
        ]
        write_predictions(rows, job / "predictions.csv")
    return job


def test_collector_reports_done_failed_and_missing_variants(tmp_path):
    sweep = tmp_path / "sweep"
    fake_job(sweep, 0, "brnet", 0.06)
    fake_job(sweep, 1, "gm_dm", None)  # the job started, then failed: no metrics.json
    fake_job(sweep, 2, "odn", 0.04)
    runs = {run.variant: run.status for run in read_sweep(sweep, list(TABLE4_ROWS))}
    assert runs == {
        "ert": "missing",
        "brnet": "done",
        "brnet_conv_pool": "missing",
        "gm_dm": "failed",
        "dm_lm": "missing",
        "gm_lm": "missing",
        "odn_no_l1": "missing",
        "odn": "done",
    }
    table, plots = collect(sweep)
    lines = table.splitlines()
    assert "| params (M) | GFLOPs at 128 px | run |" in lines[0]
    assert lines[2].startswith("| ERT (dlib, Kazemi & Sullivan 2014) | MISSING")
    assert lines[3].startswith("| BRNet | 6.00 | 9.00 | 0.5000 | 0.5000 | 2.00 | 2.00 | 11.21 | 0.60 |")
    assert lines[4].startswith("| BRNet, conv_pool readout (control) | MISSING")
    assert lines[5].startswith("| +GM+DM | FAILED | FAILED") and str(sweep / "1") in lines[5]
    assert lines[6].startswith("| +DM+LM | MISSING") and "no job in this sweep" in lines[6]
    assert lines[9].startswith("| ODN (GM+LM+DM) | 4.00 | 6.00 |")
    assert [p.name for p in plots] == ["table4_ced_common.png", "table4_ced_full.png"]
    written = (sweep / "table4.md").read_text()
    assert "done 2, failed 1, missing 5" in written and table in written


def test_collector_names_a_missing_sweep(tmp_path, capsys):
    # In process (the sweep test below starts the program itself).
    from odn_lightning.table4 import main_task

    cfg = compose_config("table4", [f"paths.log_dir={tmp_path}"], tmp_path / "run")
    code, lines = user_error_in_process(capsys, main_task, cfg)
    assert code != 0 and "make ablation DATA=synthetic" in lines[-1]


# ------------------------------------------------------------------------------------- sweeps

SWEEP_TINY = [
    *TINY,
    "model.net.pretrained=false",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "callbacks.validation_pictures.count=0",
]


@pytest.mark.slow
# Hydra's basic launcher runs README's `make ablation` and `make table4` (tests/test_readme_commands.py).
@pytest.mark.parametrize("launcher", ["submitit_local"])
def test_two_variant_sweep_runs_and_collects(launcher, tmp_path, synthetic_root):
    args = [
        "--multirun",
        "experiment=ablation",
        "model=brnet,odn",
        f"data.root={synthetic_root}",
        f"paths.log_dir={tmp_path}",
        f"hydra/launcher={launcher}",
        "group=test-sweep",
        *SWEEP_TINY,
    ]
    result = run_cli("odn_lightning.train", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = (tmp_path / "train" / "multiruns").iterdir()
    runs = {run.variant: run for run in read_sweep(sweep, ["brnet", "odn"])}
    assert {v: r.status for v, r in runs.items()} == {"brnet": "done", "odn": "done"}
    assert all((r.run_dir / "report.md").is_file() for r in runs.values())
    collected = run_cli("odn_lightning.table4", f"paths.log_dir={tmp_path}", "variants=[brnet,odn]")
    assert collected.returncode == 0, collected.stderr[-3000:]
    assert "| BRNet |" in collected.stdout and "| ODN (GM+LM+DM) |" in collected.stdout


def test_seeds_of_a_variant_become_mean_and_std_marked_beyond_twice_the_pooled_std(tmp_path):
    sweep = tmp_path / "sweep"
    # BRNet 6.0, 6.1, 6.2 (x10^-2 on common); ODN 4.0, 4.1, 4.2: 2.00 apart, pooled std 0.10 -> marked.
    # The readout control 6.1, 6.2, 6.3: 0.10 apart -> not marked.
    for number, (variant, nme) in enumerate(
        [
            (v, base + 0.001 * k)
            for v, base in (("brnet", 0.06), ("odn", 0.04), ("brnet_conv_pool", 0.061))
            for k in range(3)
        ]
    ):
        fake_job(sweep, number, variant, nme)
    runs = {run.variant: run for run in read_sweep(sweep, ["brnet", "brnet_conv_pool", "odn"])}
    assert len(runs["odn"].replicas) == 3 and runs["odn"].jobs == 3
    table, _ = collect(sweep, ["brnet", "brnet_conv_pool", "odn"])
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in table.splitlines()[2:]}
    assert rows["BRNet"][1] == "6.10 ± 0.10"
    assert rows["ODN (GM+LM+DM)"][1] == "4.10 ± 0.10 *"
    assert rows["BRNet, conv_pool readout (control)"][1] == "6.20 ± 0.10"
    assert "3 of 3 seeds" in rows["ODN (GM+LM+DM)"][-1]


def test_paired_difference_is_face_by_face_with_a_bootstrap_interval(tmp_path):
    from odn_lightning.evaluation.ablation_table import paired_difference

    sweep = tmp_path / "sweep"
    # fake_job's faces have NME nme * (i + 1) / 2 for i = 0, 1, 2: ODN is BRNet - 0.5 x 0.02 x (i + 1).
    fake_job(sweep, 0, "brnet", 0.06)
    fake_job(sweep, 1, "odn", 0.04)
    runs = {run.variant: run for run in read_sweep(sweep, ["brnet", "odn"])}
    mean, low, high, faces = paired_difference(runs["odn"], runs["brnet"], "common")
    assert faces == 3
    assert mean == pytest.approx(-0.02)  # mean of -0.01, -0.02, -0.03
    assert -0.03 - 1e-12 <= low <= mean <= high <= -0.01 + 1e-12  # every face improved: 0 is outside
    same, low, high, _ = paired_difference(runs["brnet"], runs["brnet"], "common")
    assert same == low == high == 0.0
    collect(sweep, ["brnet", "odn"])
    written = (sweep / "table4.md").read_text()
    assert "- common: -2.00 [" in written and "3 faces" in written


def test_heatmap_runs_are_rows_named_as_networks_beside_the_papers(tmp_path):
    sweep = tmp_path / "sweep"
    for number, (variant, nme) in enumerate(
        [("brnet", 0.06), ("hrnet_w18", 0.03), ("resnet18_heatmap", 0.04)]
    ):
        fake_job(sweep, number, variant, nme)
    table, _ = collect(sweep, None)  # the sweep's own rows: Table 4's found, then the others
    rows = [line.split(" | ")[0].lstrip("| ") for line in table.splitlines()[2:]]
    assert rows == ["BRNet", "HRNetV2-W18 (heatmaps)", "ResNet-18 + deconv (heatmaps)"]
    assert "| GFLOPs at 128 px |" in table and "| 0.60 |" in table
    # Crops of different sizes in one table (make heatmap's HRNet at 64 px): each row's cost says its own.
    metrics_file = sweep / "1" / "metrics.json"
    metrics_file.write_text(
        json.dumps(json.loads(metrics_file.read_text()) | {"model/flops": 0.15e9, "model/image_size": 64})
    )
    table, _ = collect(sweep, None)
    assert "| GFLOPs |" in table and "| 0.15 at 64 px |" in table and "| 0.60 at 128 px |" in table
    # Face by face against BRNet: ODN's line by default; any row named in `paired` (make heatmap's).
    written = (sweep / "table4.md").read_text()
    assert "face by face" not in written  # no ODN row here, and no other row asked for
    collect(sweep, None, paired=["hrnet_w18", "resnet18_heatmap", "odn"])
    written = (sweep / "table4.md").read_text()
    assert "**HRNetV2-W18 (heatmaps) - BRNet, face by face**" in written
    assert "**ResNet-18 + deconv (heatmaps) - BRNet, face by face**" in written
    assert "- common: -3.00 [" in written and "- common: -2.00 [" in written  # 0.03 - 0.06, 0.04 - 0.06
    assert "ODN (GM+LM+DM) - BRNet" not in written  # asked for but absent: no line
