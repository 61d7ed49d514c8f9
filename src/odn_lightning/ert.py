"""ERT baseline entry point: `python -m odn_lightning.ert [data=NAME]`, configured by conf/ert.yaml.

Fits dlib's shape predictor (`baselines.ert`) on the dataset's training split and measures it on every
test split with the networks' metrics (`metrics.LandmarkNME`: the same normalisation, AUC, FR and
occluded / visible NME), writing what a training run writes: metrics.json, predictions.csv, report.md
and CED plots.
"""

from __future__ import annotations

import time
from pathlib import Path

import hydra
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from . import runs
from .baselines.ert import ERT
from .config import CONFIG_DIR
from .config_checks import check_config
from .data.dataset import LandmarkDataset
from .evaluation.metrics import LandmarkNME, describe_normalisation, normalisation_for
from .evaluation.plots import plot_ced
from .evaluation.report_files import PREDICTIONS_FILE, REPORT_FILE, write_predictions, write_report
from .evaluation.reports import counts_as_metrics
from .schemes import SchemeSpec


def evaluate_split(model: ERT, records: list, scheme: SchemeSpec, normalisation: str, thresholds, split: str):
    """The split's metrics (`test/<split>/...`) and its predictions.csv rows."""
    predicted = torch.from_numpy(model.predict(records))
    target = torch.from_numpy(np.stack([r.landmarks for r in records]).astype(np.float64))
    normaliser = {
        "normalising_box": torch.from_numpy(np.stack([LandmarkDataset.normalising_box(r) for r in records])),
        "box_size": torch.tensor([LandmarkDataset.box_size(r) for r in records], dtype=torch.float64),
    }
    with_visibility = all(r.visible is not None for r in records)
    visible = torch.from_numpy(np.stack([r.visible for r in records])) if with_visibility else None
    metric = LandmarkNME(scheme, normalisation, tuple(thresholds))
    metric.update(predicted, target, visible=visible, index=torch.arange(len(records)), **normaliser)
    metrics = {f"test/{split}/{k}": float(v) for k, v in metric.compute().items()}
    nme, distance = metric.per_face(predicted, target, **normaliser)
    rows = [
        {
            "image_path": str(r.image_path),
            "split": split,
            "index": i,
            "normalising_distance": float(distance[i]),
            "nme": float(nme[i]),
            "predicted": predicted[i].numpy(),
            "target": target[i].numpy(),
        }
        for i, r in enumerate(records)
    ]
    return metrics, rows


def run_ert(cfg: DictConfig) -> dict[str, float | None]:
    check_config(cfg)
    runs.log_to_run_file()
    runs.apply_extras(cfg)
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    options = instantiate(cfg.ert)
    model = ERT(options, crop_box=cfg.data.crop_box)
    started = time.perf_counter()
    model.fit(datamodule.checked_records(datamodule.hparams.train_split))
    metrics: dict[str, float | None] = {"ert/fit_seconds": time.perf_counter() - started}
    rows, errors = [], {}
    for split in datamodule.test_split_names:
        records = datamodule.checked_records(split)
        normalisation = normalisation_for(cfg.data.nme_normalisation, split)
        values, split_rows = evaluate_split(
            model, records, datamodule.scheme, normalisation, cfg.nme_thresholds, split
        )
        metrics |= values | counts_as_metrics({split: (len(records), len(records))})
        rows += split_rows
        errors[split] = np.array([row["nme"] for row in split_rows])
    output_dir = cfg.paths.output_dir
    write_predictions(rows, Path(output_dir) / PREDICTIONS_FILE)
    threshold = max(cfg.nme_thresholds)
    plot_ced(errors, threshold, Path(output_dir) / "ced.png", title="ERT, all test splits")
    facts = {
        "method": f"ERT (dlib shape predictor): {options}",
        "data": f"{cfg.data.name} at {cfg.data.root}",
        "NME normalisation": describe_normalisation(cfg.data.nme_normalisation),
        "face rectangle": f"data.crop_box={cfg.data.crop_box}",
        "predictions": PREDICTIONS_FILE,
    }
    write_report(
        Path(output_dir) / REPORT_FILE, metrics, list(errors), cfg.nme_thresholds, facts, ["ced.png"]
    )
    metrics = runs.scalar_metrics(metrics)
    runs.write_metrics(output_dir, metrics)
    runs.print_summary("odn-ert", metrics, {"run directory": output_dir})
    runs.log_metrics(metrics)
    runs.check_finite(metrics, output_dir)
    return metrics


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="ert")
def main(cfg: DictConfig) -> None:
    runs.run_reporting_user_errors(run_ert, cfg)


if __name__ == "__main__":
    main()
