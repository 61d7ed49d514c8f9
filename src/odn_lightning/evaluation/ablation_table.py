"""Table 4 of the paper from an ablation sweep, as `python -m odn_lightning.table4` writes it.

Table 4 is one view of the comparison (`evaluation.comparison`): the sweep's runs are read and grouped
as compare does (runs that differ only in the seed are one row), and a row is named by its variant where
that names it alone (its `model=` choice, from `.hydra/hydra.yaml`; else the `run_name` of
`.hydra/config.yaml`: `brnet`, `odn`, the `ert` anchor, shown with the paper's labels in the paper's
order), else by compare's label from its overrides (`model=odn model.objective.eta=0`). Numbers come from
`metrics.json`, faces from `predictions.csv`. `collect` writes `table4.md` (NME x 10^-2 per test split,
as the paper's Table 4, plus AUC and FR at the largest threshold) and `table4_ced_<split>.png` (the
variants' CED curves overlaid) into the sweep directory. A variant whose job failed, or that has no job,
is a row saying so: with `variants` named, each of them; by default, every Table-4 variant when the sweep
ran `experiment=ablation` (`make ablation`), else only the rows the sweep holds."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_text
from .comparison import mean_std, stat_cell
from .metrics import threshold_suffix
from .occlusion_scores import DECISION_THRESHOLD
from .recorded_runs import Run, RunGroup, group_runs, newest_sweep, runs_in
from .report_files import PREDICTIONS_FILE, overlay_ced, read_predictions

# Table 4's rows, in the paper's order: the model choice (conf/model/<name>.yaml) -> the paper's label.
# Cells of the other rows are compared with this row's (over seeds: `beyond_noise`).
REFERENCE = "brnet"
# The experiment `make ablation` runs: its sweeps are Table 4's, so a variant without a job is MISSING.
ABLATION_EXPERIMENT = "ablation"
TABLE4_ROWS = {
    # The classical anchor, not in the paper's Table 4: dlib's ERT (`python -m odn_lightning.ert`,
    # run into the sweep as its `ert` folder by `make ablation`).
    "ert": "ERT (dlib, Kazemi & Sullivan 2014)",
    "brnet": "BRNet",
    # A control, not in the paper: BRNet with the module rows' readout (conv_pool), so that a module
    # row's difference from BRNet is not its readout's.
    "brnet_conv_pool": "BRNet, conv_pool readout (control)",
    "gm_dm": "+GM+DM",
    "dm_lm": "+DM+LM",
    "gm_lm": "+GM+LM",
    "odn_no_l1": "GM+LM+DM w/o L1",
    "odn": "ODN (GM+LM+DM)",
}
# Rows a sweep may hold beyond Table 4's, named where they appear (after its rows), never missing from
# it: the field's baseline, heatmap regression (issue 28).
ROW_LABELS = {
    **TABLE4_ROWS,
    "hrnet_w18": "HRNetV2-W18 (heatmaps)",
    "resnet18_heatmap": "ResNet-18 + deconv (heatmaps)",
}


@dataclass
class SweepRun:
    """A row: one variant, with one job per seed. `metrics` and `run_dir` are its first done job's
    (or its first job's); `replicas` and `run_dirs` hold every done job's (one per seed)."""

    variant: str
    status: str  # "done" (a job with test metrics), "failed" (jobs, none with metrics) or "missing"
    run_dir: Path | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    splits: list[str] = field(default_factory=list)
    replicas: list[dict[str, float]] = field(default_factory=list)
    run_dirs: list[Path] = field(default_factory=list)
    jobs: int = 0

    def values(self, key: str) -> list[float | None]:
        """`key` of every seed (the single job's when there are no replicas)."""
        return [m.get(key) for m in (self.replicas or [self.metrics]) if key in m]


def latest_sweep(log_dir: str | Path) -> Path:
    """The newest multirun of the training entry point under `log_dir`."""
    newest = newest_sweep(log_dir)
    if newest is None:
        raise FileNotFoundError(
            f"no sweep under {Path(log_dir, 'train', 'multiruns')}: run `make ablation DATA=synthetic` first, "
            "or pass sweep_dir=DIR"
        )
    return newest


def run_variant(run: Run) -> str:
    """A job's variant: its model choice as Hydra recorded it, else its `run_name`, else its folder.

    The choice is read from `.hydra/hydra.yaml` rather than resolved from `run_name`: the saved config
    keeps `${hydra:...}` interpolations, which only the job's own process can resolve."""
    return str(run.choices.get("model") or run.run_name or run.run_dir.name)


def row_names(groups: Sequence[RunGroup]) -> list[str]:
    """Each row's name: its runs' variant where that names this row alone, else compare's label (two
    rows of one model differ in some other override, which the label shows)."""
    variants = [{run_variant(run) for run in group.runs} for group in groups]
    return [
        next(iter(names)) if len(names) == 1 and variants.count(names) == 1 else group.label
        for group, names in zip(groups, variants, strict=True)
    ]


def sweep_row(variant: str, group: RunGroup) -> SweepRun:
    """A row of Table 4 from compare's group: done where a run has test metrics."""
    done = [run for run in group.runs if any(k.startswith("test/") for k in run.metrics or {})]
    first = done[0] if done else group.runs[0]
    return SweepRun(
        variant,
        "done" if done else "failed",
        first.run_dir,
        dict(first.metrics or {}),
        first.test_splits,
        [dict(run.metrics) for run in done],
        [run.run_dir for run in done],
        len(group.runs),
    )


def read_sweep(sweep_dir: str | Path, variants: Sequence[str] | None = None) -> list[SweepRun]:
    """One SweepRun per row (its jobs of every seed together): `variants` first, in their order (one
    without a job is MISSING), then the sweep's other rows. `variants` None: the Table-4 variants the
    sweep holds in the paper's order (all of them, when the sweep ran experiment=ablation)."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"sweep_dir={sweep_dir} does not exist")
    runs = runs_in(sweep_dir)
    groups = group_runs(runs)
    found = {name: sweep_row(name, group) for name, group in zip(row_names(groups), groups, strict=True)}
    if variants is None:
        ablation = any(run.choices.get("experiment") == ABLATION_EXPERIMENT for run in runs)
        variants = [v for v in TABLE4_ROWS if ablation or v in found]
    rows = [found.pop(v, SweepRun(v, "missing")) for v in variants]
    return rows + list(found.values())


def beyond_noise(run: SweepRun, reference: SweepRun | None, key: str) -> bool:
    """Whether `run` differs from `reference` on `key` by more than twice their pooled standard
    deviation, sqrt((s_a^2 + s_b^2) / 2); needs two seeds or more on both sides."""
    if reference is None or reference is run or len(run.replicas) < 2 or len(reference.replicas) < 2:
        return False
    a, b = mean_std(run.values(key)), mean_std(reference.values(key))
    if a is None or b is None:
        return False
    pooled = np.sqrt((a[1] ** 2 + b[1] ** 2) / 2)
    return abs(a[0] - b[0]) > 2 * pooled


def _cell(
    run: SweepRun, split: str, key: str, scale: float, digits: int, reference: SweepRun | None = None
) -> str:
    """A number not measured (no key) is "-"; a non-finite one (null in metrics.json) is "NaN"; over
    several seeds "mean ± std", with "*" where it differs from `reference` beyond twice the pooled std."""
    key = f"test/{split}/{key}"
    values = run.values(key)
    mark = " *" if len(values) > 1 and beyond_noise(run, reference, key) else ""
    return stat_cell(values, scale, digits, len(values)) + mark


def _size(run: SweepRun, key: str, scale: float, digits: int) -> str:
    value = run.metrics.get(key)
    return "-" if value is None else f"{value * scale:.{digits}f}"


def table_markdown(runs: Sequence[SweepRun], splits: Sequence[str], threshold: float) -> str:
    """Rows: variants; columns: NME x 10^-2 per split, then AUC and FR (%) at `threshold` per split,
    then the network's parameters and cost per image (`model/params`, `model/flops` of metrics.json)."""
    reference = next((r for r in runs if r.variant == REFERENCE and r.status == "done"), None)
    sizes = {r.metrics.get("model/image_size") for r in runs if r.status == "done"} - {None}
    image_size = int(sizes.pop()) if len(sizes) == 1 else None
    suffix = threshold_suffix(threshold)
    header = ["Method"] + [f"{s} NME (x10^-2)" for s in splits]
    header += [f"{s} AUC@{threshold:g}" for s in splits] + [f"{s} FR@{threshold:g} (%)" for s in splits]
    header += ["params (M)", f"GFLOPs at {image_size} px" if image_size else "GFLOPs", "run"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for run in runs:
        label = ROW_LABELS.get(run.variant, run.variant)
        if run.status != "done":
            where = f"`{run.run_dir}`" if run.run_dir else "no job in this sweep"
            cells = [run.status.upper()] * (3 * len(splits) + 2)
            lines.append("| " + " | ".join([label, *cells, where]) + " |")
            continue

        cells = [_cell(run, s, "nme", 100, 2, reference) for s in splits]
        cells += [_cell(run, s, f"auc_{suffix}", 1, 4, reference) for s in splits]
        cells += [_cell(run, s, f"fr_{suffix}", 100, 2, reference) for s in splits]
        flops = _size(run, "model/flops", 1e-9, 2)
        crop = run.metrics.get("model/image_size")
        if image_size is None and crop is not None and flops != "-":
            flops += f" at {int(crop)} px"  # the rows' crops differ: each cost says its own
        cells += [_size(run, "model/params", 1e-6, 2), flops]
        where = f"`{run.run_dir.name}`"
        if len(run.replicas) > 1 or run.jobs > 1:
            where = f"{len(run.replicas)} of {run.jobs} seeds: " + ", ".join(
                f"`{d.name}`" for d in run.run_dirs
            )
        lines.append("| " + " | ".join([label, *cells, where]) + " |")
    return "\n".join(lines) + "\n"


# How the occlusion map P finds occlusion (`odn_lightning.evaluation.metrics`, `evaluation.occlusion_scores`), as
# the occlusion table labels and shows them: metric -> (label, scale, digits).
OCCLUSION_NUMBERS = {
    "occluder_auroc_face": ("occluder AUROC in face", 1, 3),
    "face_auroc": ("face AUROC", 1, 3),
    "landmark_occlusion_auroc": ("per-landmark occlusion AUROC", 1, 3),
    "landmark_occlusion_ap": ("per-landmark occlusion AP", 1, 3),
    "landmark_occlusion_precision": (f"occlusion precision@{DECISION_THRESHOLD:g} (%)", 100, 2),
    "landmark_occlusion_recall": (f"occlusion recall@{DECISION_THRESHOLD:g} (%)", 100, 2),
    "landmark_occlusion_recall_at_p80": ("occlusion recall@80% precision (%)", 100, 2),
    "occlusion_probability_auroc": ("calibrated occlusion AUROC", 1, 3),
    "occlusion_probability_ap": ("calibrated occlusion AP", 1, 3),
    "occlusion_probability_recall_at_p80": ("calibrated recall@80% precision (%)", 100, 2),
}


def occlusion_markdown(runs: Sequence[SweepRun], splits: Sequence[str], map_split: str) -> str:
    """Rows: variants; columns: NME x 10^-2 at the occluded points of each split, then the occlusion
    map's numbers on `map_split` (`OCCLUSION_NUMBERS`; "-" for a row without a map, as BRNet)."""
    header = ["Method"] + [f"{s} occluded-point NME (x10^-2)" for s in splits]
    header += [f"{map_split} {label}" for label, _, _ in OCCLUSION_NUMBERS.values()]
    reference = next((r for r in runs if r.variant == REFERENCE and r.status == "done"), None)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for run in runs:
        if run.status != "done":
            continue
        cells = [_cell(run, s, "nme_occluded", 100, 2, reference) for s in splits]
        cells += [
            _cell(run, map_split, key, scale, digits) for key, (_, scale, digits) in OCCLUSION_NUMBERS.items()
        ]
        lines.append("| " + " | ".join([ROW_LABELS.get(run.variant, run.variant), *cells]) + " |")
    return "\n".join(lines) + "\n"


def per_face_nme(run: SweepRun, split: str) -> dict[int, float]:
    """Each face's NME on `split` by dataset index, averaged over the run's seeds (predictions.csv)."""
    by_face: dict[int, list[float]] = {}
    for run_dir in run.run_dirs:
        path = run_dir / PREDICTIONS_FILE
        faces = read_predictions(path).get(split) if path.is_file() else None
        if faces is not None:
            for index, nme in zip(faces["index"], faces["nme"], strict=True):
                by_face.setdefault(int(index), []).append(float(nme))
    return {index: float(np.mean(values)) for index, values in by_face.items()}


def paired_difference(
    a: SweepRun, b: SweepRun, split: str, resamples: int = 2000, seed: int = 0
) -> tuple[float, float, float, int] | None:
    """Mean over the faces both rows evaluated of NME_a - NME_b (each face's NME averaged over seeds)
    and its 95% percentile bootstrap interval (faces resampled with replacement): (mean, low, high,
    faces). Pairing removes what the faces share, so it sees smaller effects than the two means do."""
    first, second = per_face_nme(a, split), per_face_nme(b, split)
    faces = sorted(set(first) & set(second))
    if not faces:
        return None
    differences = np.array([first[i] - second[i] for i in faces])
    if not np.isfinite(differences).all():
        return float("nan"), float("nan"), float("nan"), len(faces)
    rng = np.random.default_rng(seed)
    means = differences[rng.integers(0, len(faces), (resamples, len(faces)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(differences.mean()), float(low), float(high), len(faces)


def paired_lines(runs: Sequence[SweepRun], splits: Sequence[str], first: str = "odn") -> list[str]:
    """The face-by-face comparison of `first` with the reference row, one line per split."""
    rows = {r.variant: r for r in runs if r.status == "done"}
    if first not in rows or REFERENCE not in rows:
        return []
    a, b = rows[first], rows[REFERENCE]
    label_a, label_b = ROW_LABELS.get(first, first), ROW_LABELS.get(REFERENCE, REFERENCE)
    lines = [
        f"**{label_a} - {label_b}, face by face** (NME x 10^-2; each face's NME averaged over "
        f"{len(a.run_dirs)} and {len(b.run_dirs)} seeds; 95% bootstrap interval over faces; below 0: "
        f"{label_a} is better):",
        "",
    ]
    for split in splits:
        result = paired_difference(a, b, split)
        if result is not None:
            mean, low, high, faces = result
            lines.append(f"- {split}: {mean * 100:+.2f} [{low * 100:+.2f}, {high * 100:+.2f}], {faces} faces")
    return lines + [""]


def collect(
    sweep_dir: str | Path,
    variants: Sequence[str] | None = tuple(TABLE4_ROWS),
    threshold: float = 0.10,
    paired: Sequence[str] = ("odn",),
) -> tuple[str, list[Path]]:
    """Writes table4.md and the overlaid CED plots into the sweep; returns the table and the plots.
    `variants`: the rows wanted (see read_sweep; None: those the sweep holds); `paired`: the rows
    compared with BRNet face by face (those the sweep has done)."""
    sweep_dir = Path(sweep_dir)
    runs = read_sweep(sweep_dir, variants)
    splits = list(dict.fromkeys(s for run in runs if run.status == "done" for s in run.splits))
    table = table_markdown(runs, splits, threshold)
    done = {ROW_LABELS.get(r.variant, r.variant): r.run_dir for r in runs if r.status == "done"}
    with_predictions = {label: d for label, d in done.items() if (d / PREDICTIONS_FILE).is_file()}
    plots = [
        overlay_ced(
            with_predictions, split, threshold, sweep_dir / f"table4_ced_{split}.png", f"Table 4, {split}"
        )
        for split in splits
        if with_predictions
    ]
    counts = {status: sum(r.status == status for r in runs) for status in ("done", "failed", "missing")}
    text = [
        "# Table 4 (ablation)",
        "",
        f"Sweep: `{sweep_dir}`. Variants done {counts['done']}, failed {counts['failed']}, missing "
        f"{counts['missing']}. NME normalised as the dataset defines it, x 10^-2 as in the paper.",
        "",
        table,
        "Over several seeds a cell is mean ± standard deviation; * marks a difference from BRNet larger "
        "than twice the pooled standard deviation.",
        "",
        "Occlusion: NME at the points flagged occluded (`nme_occluded`: each face's mean over its occluded "
        "points, averaged over faces), and how the occlusion map P ranks occluders, the face and occluded "
        "points (AUROC of 1 - P, of P, and of 1 - P read at each point; 0.5 is chance); for the points, the "
        "average precision and, at the raw (uncalibrated) 1 - P, precision and recall at "
        f"{DECISION_THRESHOLD:g} and recall at 80% precision (occluded points positive); then the same of "
        "the calibrated probability the suite outputs (its direction learnt on validation: an inverted P "
        "counts the right way round).",
        "",
        occlusion_markdown(runs, splits, "full" if "full" in splits else splits[-1]) if splits else "",
        *(line for first in paired for line in paired_lines(runs, splits, first)),
    ]
    text += [f"![{p.name}]({p.name})" for p in plots]
    atomic_write_text(sweep_dir / "table4.md", "\n".join(text) + "\n")
    return table, plots
