"""The GPU check's commands compose with the suite's configs (it runs them as processes, so a renamed
option would only show when a GPU is at hand): the training recipe of each variant, and the record's
report. `make gpu-check DEVICE=cpu` runs the whole check in CI (.ci/run)."""

from __future__ import annotations

from omegaconf import OmegaConf

from odn_lightning.benchmarks.gpu_check import markdown, training_args

from ..helpers.configs import compose_config


def check_config(device: str) -> OmegaConf:
    return OmegaConf.create(
        {
            "device": device,
            "steps": 200,
            "image_size": 224,
            "batch_size": 32,
            "num_workers": 8,
            "synthetic_sizes": {"train": 1024, "val": 64, "common": 32, "challenging": 32},
            "output_dir": "/tmp/check",
        }
    )


def test_each_variant_is_the_paper_recipe_for_the_steps_asked(tmp_path):
    for device, trainer in (("cuda", "gpu"), ("cpu", "cpu")):
        args = training_args(check_config(device), "16-mixed", {"mode": "max-autotune"}, tmp_path / "run")
        args = [a for a in args if not a.startswith("hydra.run.dir=")]
        cfg = compose_config("train", args, tmp_path / "run")
        assert cfg.trainer.max_steps == 200 and cfg.trainer.max_epochs == -1
        assert cfg.trainer.precision == "16-mixed"
        assert cfg.trainer.accelerator == trainer
        assert OmegaConf.to_container(cfg.model.compile) == {"mode": "max-autotune"}
        assert (cfg.data.image_size, cfg.data.batch_size) == (224, 32)
        assert cfg.model.objective.weight_penalty == "decoupled"  # the paper recipe's
        assert cfg.data.root == "/tmp/check/synthetic" and cfg.data.synthetic.sizes.train == 1024
        assert cfg.callbacks.sync_guard._target_.endswith("SyncDebugGuard")
        assert not cfg.test


def test_the_report_names_a_failed_step_and_its_last_line():
    record = {
        "device": "nvidia-h100",
        "torch": "2.14.1",
        "passed": False,
        "steps": {
            "bench": {"returncode": 0, "seconds": 80.0, "last_lines": []},
            "train 16-mixed": {
                "returncode": 1,
                "seconds": 9.5,
                "last_lines": ["RuntimeError: called a synchronizing CUDA operation"],
            },
        },
    }
    report = markdown(record)
    assert report.startswith("# GPU check on nvidia-h100 (torch 2.14.1): FAILED")
    assert "| train 16-mixed | 1 | 9.5 | RuntimeError: called a synchronizing CUDA operation |" in report
