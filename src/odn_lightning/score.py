"""Scoring entry point: `python -m odn_lightning.score data=NAME predictions=FILE` (or `odn-score`,
`make score`), configured by conf/score.yaml.

Scores predictions made elsewhere (the COFW-68 benchmark's result files, a run's predictions.csv,
predict's landmarks.csv) on the dataset's ground truth with its rules, without opening its images
(`evaluation.scoring`, `evaluation.scored_run`), and writes what eval writes: metrics.json,
report.md, predictions.csv and CED plots.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from . import runs
from .config import CONFIG_DIR
from .config_checks import ConfigError, check_config
from .evaluation.metrics import describe_normalisation, normalisation_for
from .evaluation.scored_run import (
    cofw68_annotations_dir,
    cofw68_records,
    is_cofw68,
    score_split,
    write_outputs,
)
from .evaluation.scoring import FORMATS, PredictionsError, detect_format, read_split_predictions


def run_score(cfg: DictConfig) -> dict[str, float | None]:
    check_config(cfg)
    runs.log_to_run_file()
    runs.apply_extras(cfg)
    predictions = Path(str(cfg.predictions))
    if not predictions.is_file():
        raise FileNotFoundError(f"predictions={predictions}: no such file")
    fmt = detect_format(predictions) if cfg.format == "auto" else str(cfg.format)
    if fmt not in FORMATS:
        raise ConfigError(f"format={cfg.format}: choose auto or one of {', '.join(FORMATS)}")
    datamodule = instantiate(cfg.data)
    if cfg.data.get("synthetic") is not None:
        datamodule.prepare_data()  # the embedded faces are generated on first use
    splits = list(cfg.splits) if cfg.splits is not None else datamodule.test_split_names
    unknown = [s for s in splits if s not in cfg.data.splits]
    if unknown:
        raise ConfigError(
            f"splits: data={cfg.data.name} has no split {unknown[0]!r} ({', '.join(cfg.data.splits)})"
        )
    if fmt == "benchmark" and len(splits) != 1:
        raise ConfigError(
            f"a benchmark result file holds one split's faces; name it with splits=[NAME] (of {', '.join(splits)})"
        )
    name = str(cfg.method or predictions.stem)
    expected = OmegaConf.to_container(cfg.data.expected_counts) if cfg.data.get("expected_counts") else {}
    scores, normalisations = {}, {}
    for split in splits:
        sources = OmegaConf.to_container(cfg.data.splits[split])
        cofw68 = is_cofw68(sources)
        if cofw68:
            records = cofw68_records(cofw68_annotations_dir(datamodule.root, sources[0]), expected.get(split))
        else:
            records = [r for source in sources for r in datamodule.read_source(source)]
        split_predictions = read_split_predictions(predictions, fmt, records, split, name)
        if not split_predictions.has_prediction.any():
            raise PredictionsError(
                f"predictions={predictions}: no prediction matches a face of split '{split}' ({len(records)} faces)"
            )
        normalisations[split] = normalisation_for(cfg.data.nme_normalisation, split)
        scores[split] = score_split(
            split,
            records,
            split_predictions,
            datamodule.scheme,
            normalisations[split],
            cfg.nme_thresholds,
            cofw68,
            name,
        )
    facts = {
        "method": name,
        "predictions": f"{predictions} ({fmt})",
        "data": f"{cfg.data.name} at {cfg.data.root}",
        "NME normalisation": describe_normalisation(cfg.data.nme_normalisation),
    }
    output_dir = Path(cfg.paths.output_dir)
    metrics = runs.scalar_metrics(
        write_outputs(output_dir, scores, cfg.nme_thresholds, facts, normalisations)
    )
    runs.write_metrics(output_dir, metrics)
    runs.print_summary(
        "odn-score", metrics, {"run directory": str(output_dir), "predictions": str(predictions)}
    )
    runs.log_metrics(metrics)
    runs.check_finite(metrics, output_dir)
    return metrics


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="score")
def main(cfg: DictConfig) -> None:
    runs.run_reporting_user_errors(run_score, cfg)


if __name__ == "__main__":
    main()
