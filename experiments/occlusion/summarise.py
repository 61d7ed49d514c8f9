"""The tables of experiments/occlusion/README.md from the runs' own files under runs/<network>/seed-<k>/:
metrics.json (every run) and faces.csv (split, index, NME of each test face; the runs of this sweep).

    python experiments/occlusion/summarise.py > experiments/occlusion/tables.md

Each cell: mean ± sample standard deviation over the seeds, then the seeds. Against BRNet: the mean of
the seed-paired differences (network - BRNet, same seed) with its 95% t interval (n - 1 degrees of
freedom), and whether the difference exceeds 2 standard deviations of BRNet's seeds (issue 24's bar).
Where both networks have faces.csv, also the face-paired difference of the seed-mean NMEs, with a
95% bootstrap interval over the faces (10,000 resamples, seed 0).
"""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import numpy as np
from scipy import stats

HERE = Path(__file__).parent
NETWORKS = {
    "odn": "ODN as in the paper (P unsupervised), calibrated",
    "odn_supervised": "ODN, P supervised (occlusion_weight=1)",
    "brnet_visibility": "BRNet + visibility head (occlusion_weight=1)",
    "brnet": "BRNet",
}
BASELINE = "brnet"
LANDMARKS = [
    ("NME common (x10^-2)", "test/common/nme", 100, 2),
    ("NME challenging (x10^-2)", "test/challenging/nme", 100, 2),
    ("NME full (x10^-2)", "test/full/nme", 100, 2),
    ("NME occluded points, full (x10^-2)", "test/full/nme_occluded", 100, 2),
    ("NME occluded points, challenging (x10^-2)", "test/challenging/nme_occluded", 100, 2),
]
OCCLUSION = [
    (f"{what}, {split}", f"test/{split}/occlusion_probability_{key}", scale, digits)
    for split in ("full", "challenging")
    for what, key, scale, digits in (
        ("AUROC", "auroc", 1, 3),
        ("AP", "ap", 1, 3),
        ("recall at 80% precision (%)", "recall_at_p80", 100, 1),
        ("precision at 0.5 (%)", "precision", 100, 1),
        ("recall at 0.5 (%)", "recall", 100, 1),
    )
] + [("validation AUROC of the calibration", "val/occlusion_probability_auroc", 1, 3)]


def runs(network: str) -> dict[int, Path]:
    return {int(p.name.split("-")[1]): p for p in sorted((HERE / "runs" / network).glob("seed-*"))}


def metric(run: Path, key: str) -> float | None:
    value = json.loads((run / "metrics.json").read_text()).get(key)
    return None if value is None else float(value)


def cell(values: list[float | None], digits: int) -> str:
    shown = [v for v in values if v is not None]
    if not shown:
        return "-"
    spread = statistics.stdev(shown) if len(shown) > 1 else 0.0
    seeds = ", ".join("-" if v is None else f"{v:.{digits}f}" for v in values)
    return f"{statistics.mean(shown):.{digits}f} ± {spread:.{digits}f} ({seeds})"


def table(rows, title: str) -> list[str]:
    lines = [f"### {title}", "", "| number | " + " | ".join(NETWORKS.values()) + " |", "|---|" + "---|" * len(NETWORKS)]
    for label, key, scale, digits in rows:
        cells = []
        for network in NETWORKS:
            values = [metric(run, key) for run in runs(network).values()]
            cells.append(cell([None if v is None else v * scale for v in values], digits))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines + [""]


def face_nmes(run: Path) -> dict[tuple[str, int], float]:
    with (run / "faces.csv").open() as f:
        return {(r["split"], int(r["index"])): float(r["nme"]) for r in csv.DictReader(f)}


def face_paired(network: str, split: str) -> str:
    mine, base = runs(network), runs(BASELINE)
    seeds = sorted(set(mine) & set(base))
    if not seeds or not all((mine[s] / "faces.csv").is_file() and (base[s] / "faces.csv").is_file() for s in seeds):
        return "-"
    def mean_over_seeds(group):
        per_seed = [face_nmes(group[s]) for s in seeds]
        keys = sorted(k for k in per_seed[0] if k[0] == split)
        return np.array([np.mean([faces[k] for faces in per_seed]) for k in keys])
    difference = (mean_over_seeds(mine) - mean_over_seeds(base)) * 100
    rng = np.random.default_rng(0)
    means = difference[rng.integers(0, len(difference), (10_000, len(difference)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return f"{difference.mean():+.2f} [{low:+.2f}, {high:+.2f}] ({len(difference)} faces)"


def paired_lines() -> list[str]:
    lines = [
        "### Against BRNet, paired",
        "",
        "| network | number | difference (x10^-2), seed-paired, 95% t interval | beyond 2 std of BRNet's seeds? | face-paired, 95% bootstrap |",
        "|---|---|---|---|---|",
    ]
    base = runs(BASELINE)
    for network, name in NETWORKS.items():
        if network == BASELINE:
            continue
        mine = runs(network)
        seeds = sorted(set(mine) & set(base))
        for label, key, scale, _ in LANDMARKS[1:]:
            pairs = [(metric(mine[s], key), metric(base[s], key)) for s in seeds]
            pairs = [(a * scale, b * scale) for a, b in pairs if a is not None and b is not None]
            differences = [a - b for a, b in pairs]
            if len(differences) < 2:
                lines.append(f"| {name} | {label} | (fewer than 2 seed pairs yet) | - | - |")
                continue
            mean = statistics.mean(differences)
            half = stats.t.ppf(0.975, len(differences) - 1) * statistics.stdev(differences) / len(differences) ** 0.5
            spread = statistics.stdev([metric(run, key) * scale for run in base.values()])  # all BRNet seeds
            beyond = "yes, lower" if mean < -2 * spread else ("yes, higher" if mean > 2 * spread else "no")
            split = key.split("/")[1]
            faces = face_paired(network, split) if key.endswith("/nme") else "-"
            lines.append(
                f"| {name} | {label} | {mean:+.2f} [{mean - half:+.2f}, {mean + half:+.2f}] (n={len(differences)}) "
                f"| {beyond} (2 std = {2 * spread:.2f}) | {faces} |"
            )
    return lines + [""]


if __name__ == "__main__":
    print("\n".join(table(LANDMARKS, "Landmarks") + table(OCCLUSION, "Occlusion: the calibrated probability") + paired_lines()))
