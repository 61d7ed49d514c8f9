"""The ODN paper's Figure 4: COFW-68 CEDs of runs of the suite beside the benchmark's published methods,
under both normalisers and both point subsets, each curve's proportion below 0.08 in its legend, and
the table of every method's benchmark numbers (`cofw68_benchmark.score`).

Methods are the benchmark's result files (`Results/`, named as its `Main.m` names them) and any run's
results: a run directory (its predictions.csv's COFW-68 split, or `cofw68_results.txt`, which eval
writes), a predictions.csv, or a file in the benchmark's format.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..atomic import atomic_write_bytes, atomic_write_text
from ..data.records import FaceRecord
from . import cofw68_benchmark as benchmark
from .report_files import PREDICTIONS_FILE
from .scored_run import as_benchmark_results
from .scoring import PredictionsError, detect_format, read_split_predictions

# The benchmark's result files and their names, in Main.m's order (l. 26-45).
PUBLISHED = {
    "HPM_HelenLfpw_COFW68test.txt": "HPM(HELEN,LFPW)",
    "SAPM_COFW68.txt": "SAPM(HELEN)",
    "CFSS_CFOW68.txt": "CFSS(HELEN,LFPW,AFW)",
    "TCDCN_CFOW68.txt": "TCDCN(HELEN,LFPW,AFW,MAFL)",
    "RCPR-occ_300w.txt": "RCPR-occ(HELEN,LFPW)",
}
RESULTS_DIR = "Results"
# eval's COFW-68 results in the benchmark's format, in its run directory.
RUN_RESULTS_FILE = "cofw68_results.txt"
FIGURE_FILE, TABLE_FILE, NUMBERS_FILE = "figure4.png", "figure4.md", "figure4.json"
NORMALISER_TITLES = {
    "inter_pupil": "eye centres (the benchmark's Main.m)",
    "inter_ocular": "outer eye corners",
}


def published_methods(benchmark_root: Path, records: list[FaceRecord]) -> list[benchmark.MethodResults]:
    """The benchmark's shipped result files found under `benchmark_root/Results`, in Main.m's order."""
    folder = benchmark_root / RESULTS_DIR
    return [
        benchmark.read_results(folder / file, num_faces=len(records), name=name)
        for file, name in PUBLISHED.items()
        if (folder / file).is_file()
    ]


def run_method(path: Path, records: list[FaceRecord], split: str, name: str) -> benchmark.MethodResults:
    """A run's COFW-68 results: a run directory (its predictions.csv, else its cofw68_results.txt), a
    predictions.csv, or a file in the benchmark's format."""
    if path.is_dir():
        for candidate in (path / PREDICTIONS_FILE, path / RUN_RESULTS_FILE):
            if candidate.is_file():
                path = candidate
                break
        else:
            raise PredictionsError(f"{path}: holds neither {PREDICTIONS_FILE} nor {RUN_RESULTS_FILE}")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file or run directory")
    fmt = detect_format(path)
    if fmt == "landmarks_csv":
        raise PredictionsError(f"{path}: predict's landmarks.csv; score it with `score` first")
    return as_benchmark_results(read_split_predictions(path, fmt, records, split, name), name)


def method_numbers(
    methods: Sequence[benchmark.MethodResults], truth: np.ndarray, truth_occluded: np.ndarray
) -> dict[str, dict[str, float]]:
    return {m.name: benchmark.score(m, truth, truth_occluded) for m in methods}


def figure(
    methods: Sequence[benchmark.MethodResults],
    truth: np.ndarray,
    truth_occluded: np.ndarray,
    max_error: float,
) -> Figure:
    """Four panels (rows: normaliser, columns: all points, visible points), one CED per method, each
    legend entry with the method's proportion of faces below 0.08 (a face without a result never
    reaches the curve, as the success rate counts it)."""
    fig = Figure(figsize=(12.0, 9.5), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 2)
    xs = np.linspace(0.0, max_error, 600)
    for row, normaliser in enumerate(benchmark.NORMALISERS):
        for column, subset in enumerate(benchmark.SUBSETS):
            ax = axes[row, column]
            for method in methods:
                errors = benchmark.face_errors(method, truth, truth_occluded, normaliser, subset)
                errors = np.where(np.isfinite(errors), errors, np.inf)
                fractions = (errors[None, :] <= xs[:, None]).mean(axis=1)
                below = benchmark.proportion_below(errors, benchmark.FIGURE4_THRESHOLD)
                ax.plot(xs, fractions, linewidth=1.8, label=f"{method.name}: {below * 100:.1f}% below 0.08")
            ax.axvline(benchmark.FIGURE4_THRESHOLD, color="grey", linewidth=0.8, linestyle="--")
            ax.set_xlim(0.0, max_error)
            ax.set_ylim(0.0, 1.0)
            ax.grid(True, alpha=0.3)
            points = "all 68 points" if subset == "all" else "visible points only"
            ax.set_title(f"{points}, normalised by the {NORMALISER_TITLES[normaliser]}", fontsize=10)
            ax.set_xlabel("mean error / normalising distance")
            ax.set_ylabel("proportion of faces")
            ax.legend(loc="lower right", fontsize=8)
    fig.suptitle(f"COFW-68 ({len(truth)} faces): cumulative error distributions")
    return fig


def _cell(value: float, scale: float = 100.0) -> str:
    return "NaN" if np.isnan(value) else f"{value * scale:.2f}"


def table_markdown(numbers: Mapping[str, Mapping[str, float]]) -> str:
    """One row a method: NME (x10^-2) and % below 0.08 per normaliser and subset, the success rate at
    0.1 (eye centres, all points: Main.m's), occlusion precision and recall (%), faces with a result."""
    combos = [(n, s) for n in benchmark.NORMALISERS for s in benchmark.SUBSETS]
    header = ["method"]
    header += [f"NME {n} {s}" for n, s in combos] + [f"<=0.08 {n} {s} (%)" for n, s in combos]
    header += ["success@0.1 inter_pupil all (%)", "occlusion precision (%)", "occlusion recall (%)", "faces"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, values in numbers.items():
        row = [name]
        row += [_cell(values[f"{n}/{s}/nme"]) for n, s in combos]
        row += [_cell(values[f"{n}/{s}/below_08"]) for n, s in combos]
        row += [
            _cell(values["inter_pupil/all/below_10"]),
            _cell(values["occlusion_precision"]),
            _cell(values["occlusion_recall"]),
            f"{int(values['faces_with_result'])}",
        ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def write_figure4(
    output_dir: Path,
    methods: Sequence[benchmark.MethodResults],
    truth: np.ndarray,
    truth_occluded: np.ndarray,
    max_error: float,
    facts: Sequence[str],
) -> dict[str, dict[str, float]]:
    """figure4.png, figure4.md (the facts, then the table) and figure4.json (every number), atomically."""
    numbers = method_numbers(methods, truth, truth_occluded)
    encoded = io.BytesIO()
    figure(methods, truth, truth_occluded, max_error).savefig(encoded, format="png", dpi=100)
    atomic_write_bytes(output_dir / FIGURE_FILE, encoded.getvalue())
    lines = ["# Figure 4: COFW-68", ""] + [f"- {fact}" for fact in facts]
    lines += ["", table_markdown(numbers), f"![{FIGURE_FILE}]({FIGURE_FILE})", ""]
    atomic_write_text(output_dir / TABLE_FILE, "\n".join(lines))
    plain = {
        name: {k: (None if np.isnan(v) else v) for k, v in values.items()} for name, values in numbers.items()
    }
    atomic_write_text(output_dir / NUMBERS_FILE, json.dumps(plain, indent=2, allow_nan=False) + "\n")
    return numbers
