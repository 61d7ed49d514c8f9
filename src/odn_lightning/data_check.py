"""Prepare and check a dataset: `python -m odn_lightning.data_check data=NAME [data.root=PATH]`.

Generates the synthetic faces if needed, reads every split the config defines, decodes every image
(training only reads their headers up front, so a truncated file is found here, before a run) and
prints each split's size next to the published one, then the evidence for the dataset's
conventions that only its real files can give (`data.conventions.evidence`).
"""

from __future__ import annotations

import sys

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from .config import CONFIG_DIR
from .config_checks import check_config
from .data.conventions import evidence
from .data.datamodule import source_paths
from .data.records import LABEL_KINDS, label_counts
from .runs import run_reporting_user_errors


def check(cfg: DictConfig) -> dict[str, int]:
    """Per split: faces found, bad faces and the published count; exits non-zero on any problem."""
    check_config(cfg)
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    records, problems = {}, {}
    for split in cfg.data.splits:
        problems[split] = []
        records[split] = datamodule.records(split, problems[split], decode_images=True)
    counts = {split: len(found) for split, found in records.items()}
    expected = cfg.data.get("expected_counts") or {}
    table = Table(title=f"{cfg.data.name} at {cfg.data.root}")
    for column in ("split", "faces", "bad", "expected", "folders"):
        table.add_column(column, justify="left" if column in ("split", "folders") else "right")
    for split, count in counts.items():
        table.add_row(
            split,
            str(count),
            str(len(problems[split])),
            str(expected.get(split, "-")),
            ", ".join(path for source in cfg.data.splits[split] for path in source_paths(source)),
        )
    Console().print(table)
    labels = {split: label_counts(found) for split, found in records.items()}
    expected_labels = cfg.data.get("expected_labels") or {}
    if expected_labels or any(sum(counts.values()) for counts in labels.values()):
        Console().print(label_table(labels, expected_labels))
    data = OmegaConf.to_container(cfg.data, resolve=True)
    for line in evidence(data, records, datamodule.root):
        print(line)
    # A face in two splits (300W's full = common + challenging) is reported once.
    bad = sorted({str(p) for found in problems.values() for p in found})
    for line in bad:
        print(f"bad: {line}")  # plain print: rich would wrap long paths
    mismatches = datamodule.count_mismatches(counts)
    for split, (found, wanted) in mismatches.items():
        print(f"count: split '{split}' has {found} faces, the benchmark defines {wanted}")
    for split, (found, wanted) in datamodule.label_mismatches(labels).items():
        mismatches[split] = (found, wanted)
        print(f"labels: split '{split}' has points {found}, the published files {wanted}")
    if bad or mismatches:
        sys.exit(
            f"error: {len(bad)} bad faces and {len(mismatches)} split counts off in data.root={cfg.data.root}"
        )
    return counts


def label_table(labels: dict[str, dict[str, int]], expected: dict) -> Table:
    """Points per label kind and split, each beside the published count where the config gives one."""
    table = Table(title="points per label (visibility flags)")
    table.add_column("split", justify="left")
    for kind in LABEL_KINDS:
        table.add_column(kind.replace("_", " "), justify="right")
    for split, counts in labels.items():
        published = expected.get(split) or {}
        cells = [f"{counts[k]}" + (f" / {published[k]}" if k in published else "") for k in LABEL_KINDS]
        table.add_row(split, *cells)
    table.caption = "found / published (the dataset's label files), where the config states them"
    return table


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="data_check")
def main(cfg: DictConfig) -> None:
    run_reporting_user_errors(check, cfg)


if __name__ == "__main__":
    main()
