"""Figure 4 entry point: `python -m odn_lightning.figure4 benchmark_root=DIR [runs=[...]]` (or
`odn-figure4`, `make figure4`), configured by conf/figure4.yaml.

Overlays the COFW-68 CEDs of any runs with the benchmark's published result files, under the
benchmark's normaliser (eye centres) and the outer eye corners, on all and on visible points, and
tabulates every method's benchmark numbers (`evaluation.figure4`).
"""

from __future__ import annotations

from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig

from . import runs
from .config import CONFIG_DIR
from .config_checks import ConfigError
from .evaluation.figure4 import TABLE_FILE, published_methods, run_method, write_figure4
from .evaluation.scored_run import BENCHMARK_ANNOTATIONS, cofw68_records


def run_figure4(cfg: DictConfig) -> dict[str, dict[str, float]]:
    runs.log_to_run_file()
    runs.apply_extras(cfg)
    root = Path(str(cfg.benchmark_root))
    annotations = root / BENCHMARK_ANNOTATIONS
    if not annotations.is_dir():
        raise FileNotFoundError(
            f"benchmark_root={root} has no {BENCHMARK_ANNOTATIONS}: give a checkout of "
            "https://github.com/golnazghiasi/cofw68-benchmark"
        )
    records = cofw68_records(annotations, cfg.expected_faces)
    paths = [Path(str(p)) for p in cfg.runs]
    labels = (
        list(cfg.labels) if cfg.labels is not None else [p.stem if p.is_file() else p.name for p in paths]
    )
    if len(labels) != len(paths):
        raise ConfigError(
            f"labels: {len(labels)} names for {len(paths)} runs; give one a run, or labels=null"
        )
    methods = published_methods(root, records) if cfg.published else []
    methods += [run_method(p, records, str(cfg.split), label) for p, label in zip(paths, labels, strict=True)]
    if not methods:
        raise ConfigError(f"nothing to draw: benchmark_root={root} has no Results/ and runs=[] is empty")
    truth = np.stack([r.landmarks for r in records]).astype(np.float64)
    truth_occluded = np.stack([~r.visible for r in records])
    output_dir = Path(str(cfg.output_dir or cfg.paths.output_dir))
    facts = [
        f"benchmark: {root} ({len(records)} faces)",
        "methods: " + ", ".join(f"{m.name} ({m.source})" for m in methods),
        "rules: the benchmark's (odn_lightning.evaluation.cofw68_benchmark); NME x10^-2, proportions in %",
    ]
    numbers = write_figure4(output_dir, methods, truth, truth_occluded, float(cfg.max_error), facts)
    print((output_dir / TABLE_FILE).read_text(encoding="utf-8"))
    print(f"written: {output_dir}/figure4.png, figure4.md, figure4.json")
    return numbers


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="figure4")
def main(cfg: DictConfig) -> None:
    runs.run_reporting_user_errors(run_figure4, cfg)


if __name__ == "__main__":
    main()
