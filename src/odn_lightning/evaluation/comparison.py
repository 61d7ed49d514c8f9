"""The comparison `python -m odn_lightning.compare` writes: runs grouped into rows (`recorded_runs`), a
table of NME x 10^-2 per test split (as the paper's tables), AUC and FR at a threshold and the
occlusion numbers where measured, the runs listed below it, and each row's CED curves overlaid
(every seed's faces together, from predictions.csv). A run without metrics.json (failed, or not
finished) is shown as such, in its row and in the list of runs."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_text, shown
from .metrics import threshold_suffix
from .plots import plot_ced
from .recorded_runs import RunGroup, common_settings, differing_settings
from .report_files import PREDICTIONS_FILE, read_predictions

COMPARISON_FILE = "compare.md"


def mean_std(values: Sequence[float | None]) -> tuple[float, float] | None:
    """Mean and sample standard deviation (ddof 1; 0 for one value); None if any is not finite."""
    if not values or any(v is None or not np.isfinite(v) for v in values):
        return None
    array = np.asarray(values, dtype=np.float64)
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else 0.0


def stat_cell(values: Sequence[float | None], scale: float, digits: int, measured: int) -> str:
    """A row's cell: "-" not measured; "NaN" not finite (null in metrics.json); one value as is,
    several as "mean ± std", with "(n=k)" where only k of the row's `measured` runs have it."""
    if not values:
        return "-"
    stats = mean_std(values)
    if stats is None:
        text = "NaN"
    elif len(values) == 1:
        text = f"{stats[0] * scale:.{digits}f}"
    else:
        text = f"{stats[0] * scale:.{digits}f} ± {stats[1] * scale:.{digits}f}"
    return text if len(values) == measured else f"{text} (n={len(values)})"


def measured_splits(groups: Sequence[RunGroup]) -> list[str]:
    """The test splits with an NME in some run: each run's data.test_splits order, then any other."""
    runs = [run for group in groups for run in group.measured]
    candidates = [s for run in runs for s in run.test_splits]
    candidates += [k.split("/")[1] for run in runs for k in run.metrics if re.fullmatch(r"test/[^/]+/nme", k)]
    splits = dict.fromkeys(candidates)
    return [s for s in splits if any(f"test/{s}/nme" in run.metrics for run in runs)]


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def comparison_table(groups: Sequence[RunGroup], splits: Sequence[str], threshold: float) -> str:
    """Rows: settings; columns: runs measured (of the row's runs), NME x 10^-2 per split, then AUC and
    FR (%) at `threshold`, the landmark occlusion AUROC, AP and recall at 80% precision (%) per split,
    each where some run measured it."""
    suffix = threshold_suffix(threshold)
    runs = [run for group in groups for run in group.measured]
    columns = [("nme", "{} NME (x10^-2)", 100.0, 2)]
    for name, header, scale, digits in (
        (f"auc_{suffix}", f"{{}} AUC@{threshold:g}", 1.0, 4),
        (f"fr_{suffix}", f"{{}} FR@{threshold:g} (%)", 100.0, 2),
        ("landmark_occlusion_auroc", "{} occlusion AUROC", 1.0, 4),
        ("landmark_occlusion_ap", "{} occlusion AP", 1.0, 4),
        ("landmark_occlusion_recall_at_p80", "{} occlusion recall@80% precision (%)", 100.0, 2),
        ("occlusion_probability_auroc", "{} calibrated occlusion AUROC", 1.0, 4),
        ("occlusion_probability_ap", "{} calibrated occlusion AP", 1.0, 4),
        ("occlusion_probability_recall_at_p80", "{} calibrated recall@80% precision (%)", 100.0, 2),
    ):
        if any(f"test/{s}/{name}" in run.metrics for s in splits for run in runs):
            columns.append((name, header, scale, digits))
    header = ["run", "n"] + [title.format(s) for _, title, _, _ in columns for s in splits]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for group in groups:
        measured = len(group.measured)
        count = f"{measured}" if measured == len(group.runs) else f"{measured} of {len(group.runs)}"
        if not measured:
            cells = ["NO METRICS"] * (len(header) - 2)
        else:
            cells = [
                stat_cell(group.values(f"test/{s}/{name}"), scale, digits, measured)
                for name, _, scale, digits in columns
                for s in splits
            ]
        lines.append("| " + " | ".join([_escape(group.label), count, *cells]) + " |")
    return "\n".join(lines) + "\n"


def _where(path: Path) -> str:
    """A run directory as the listing shows it: relative to the working directory when below it."""
    try:
        return shown(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return shown(path)


def runs_listing(groups: Sequence[RunGroup]) -> list[str]:
    lines = []
    for group in groups:
        entries = [
            f"`{_where(run.run_dir)}`" + (f" ({run.problem})" if run.metrics is None else "")
            for run in group.runs
        ]
        lines.append(f"- {_escape(group.label)}: " + ", ".join(entries))
    return lines


def plot_ceds(
    groups: Sequence[RunGroup], splits: Sequence[str], threshold: float, output_dir: Path
) -> list[Path]:
    """compare_ced_<split>.png: per row, the NMEs of its faces in every measured run's predictions.csv."""
    faces: dict[Path, dict[str, np.ndarray]] = {}
    for group in groups:
        for run in group.measured:
            path = run.run_dir / PREDICTIONS_FILE
            if path.is_file():
                faces[run.run_dir] = {split: f["nme"] for split, f in read_predictions(path).items()}
    plots = []
    for split in splits:
        curves = {}
        for group in groups:
            errors = [faces[r.run_dir][split] for r in group.measured if split in faces.get(r.run_dir, {})]
            if errors:
                runs = f" ({len(errors)} runs)" if len(errors) > 1 else ""
                curves[group.label + runs] = np.concatenate(errors)
        if curves:
            path = output_dir / f"compare_ced_{split}.png"
            plots.append(plot_ced(curves, threshold, path, title=f"CED, {split}"))
    return plots


def write_comparison(
    groups: Sequence[RunGroup], output_dir: str | Path, threshold: float = 0.10
) -> tuple[str, list[Path]]:
    """compare.md and the overlaid CED plots into `output_dir`; returns compare.md's text and the plots."""
    output_dir = Path(output_dir)
    splits = measured_splits(groups)
    runs = [run for group in groups for run in group.runs]
    shared = common_settings(runs)
    unmeasured = [run for run in runs if run.metrics is None]
    plots = plot_ceds(groups, splits, threshold, output_dir)
    text = [
        "# Runs compared",
        "",
        f"{len(runs)} runs in {len(groups)} rows; {len(unmeasured)} without metrics. Common to every run: "
        + (" ".join(f"`{s}`" for s in shared) if shared else "no override")
        + ".",
        "",
        comparison_table(groups, splits, threshold),
        "NME normalised as each dataset defines it, x 10^-2 as in the paper; AUC and FR at NME "
        f"{threshold:g}. Occlusion AUROC, AP, recall@80% precision (where measured): how well 1 - P at each "
        "ground-truth point finds the points annotated occluded, as report.md defines them; calibrated: "
        "the same of the calibrated probability the suite outputs. n: runs with "
        "metrics.json (of the row's runs); over several a cell is mean ± standard deviation (n=k: only k of "
        "them measured it). NO METRICS: no run of the row left metrics.json (failed, or not finished).",
        "",
        "Runs:",
        "",
        *runs_listing(groups),
        "",
        "Settings that differ between the runs (each run's whole config and config-group choices, not "
        "only its command line; where files go, names and logging left out):",
        "",
        *(differing_settings(runs) or ["- none"]),
        "",
    ]
    text += [f"![{p.name}]({p.name})" for p in plots]
    atomic_write_text(output_dir / COMPARISON_FILE, "\n".join(text) + "\n")
    return "\n".join(text) + "\n", plots
