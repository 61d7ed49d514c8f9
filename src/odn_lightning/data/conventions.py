"""What each dataset's numbers mean, kept as data (as mmpose keeps its dataset meta): how a file's
coordinates become the suite's 0-based pixels, what divides the NME and what else could, where the
flip pairs come from, and which reference project each choice follows. README's conventions table is
`conventions_markdown()` (a test keeps the two equal).

Some choices can only be settled on the real files; `evidence` gives `make data-check` the lines that
settle them on the user's copy: how square the face boxes are (the box normalisers agree only on
square boxes), HRNet CSV points against any `.pts` beside the image (the coordinate base), the AFLW
frontal count under both rules, the WFLW subset lists against the full list's attribute flags, and
the COFW-68 pairing of annotations and images.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..evaluation.metrics import normalisation_for
from ..schemes import get_scheme
from .formats.aflw import FRONTAL_RULES, is_frontal
from .formats.hrnet_csv import SHIPPED_NAMES
from .formats.w300 import read_pts
from .formats.wflw import WFLW_SUBSET_ATTRIBUTES, subset_agreement
from .records import AnnotationError, FaceRecord

# Published size of AFLW's frontal test set (Zhu et al., CCL, CVPR 2016).
AFLW_FRONTAL_FACES = 1165


@dataclass(frozen=True)
class Convention:
    coordinates: str  # how the files' values become 0-based pixels
    normaliser: str  # the config's nme_normalisation (metrics.NORMALISATIONS)
    alternatives: str  # the other normalisers in use for this benchmark, and whose they are
    flip_pairs: str  # where the scheme's mirror pairs come from (odn_lightning.schemes)
    reference: str  # the project whose reader and metric the suite follows


PTS = "`.pts` 1-based (iBUG tools), minus 1"
HRNET_300W = "HRNet-Facial `face300w.py`, `compute_nme`; mmpose `Face300WDataset`"
FLIP_68 = "HRNet-Facial `MATCHED_PARTS['300W']` = mmpose `300w`"
CONVENTIONS: dict[str, Convention] = {
    "w300": Convention(PTS, "inter_ocular", "inter_pupil", FLIP_68, HRNET_300W),
    "w300_hrnet": Convention(
        "CSV holds the `.pts` values (1-based), minus 1 (`one_based: true`)",
        "inter_ocular",
        "inter_pupil",
        FLIP_68,
        HRNET_300W,
    ),
    "synthetic": Convention(PTS + " (written so)", "inter_ocular", "inter_pupil", FLIP_68, "300W's layout"),
    "cofw": Convention(
        "`.mat` 1-based (MATLAB), minus 1",
        "inter_ocular",
        "inter_pupil (the pupils, 16 and 17)",
        "HRNet-Facial `MATCHED_PARTS['COFW']` = mmpose `cofw`",
        "HRNet-Facial `cofw.py`, `compute_nme`",
    ),
    "cofw68": Convention(
        "300W `.pts` and `{i}_points.mat`, 1-based, minus 1",
        "inter_ocular",
        "inter_pupil for the COFW-68 split (the benchmark's `Main.m`)",
        FLIP_68,
        "LAB's comparison tables; pairing as cofw68-benchmark",
    ),
    "aflw": Convention(
        "`.mat` values as stored",
        "box_width",
        "box_max_side (mmpose), box_sqrt_area (SAN)",
        "HRNet-Facial `MATCHED_PARTS['AFLW']` = mmpose `aflw`",
        "the ODN paper's metric; SAN, PIPNet, FaRL read the `.mat`",
    ),
    "aflw_hrnet": Convention(
        "CSV values as stored (the `.mat`'s)",
        "box_size",
        "box_width (the paper), box_max_side, box_sqrt_area",
        "HRNet-Facial `MATCHED_PARTS['AFLW']` = mmpose `aflw`",
        "HRNet-Facial `aflw.py`, `compute_nme`",
    ),
    "wflw": Convention(
        "list values as stored (0-based)",
        "inter_ocular",
        "inter_pupil",
        "HRNet-Facial `MATCHED_PARTS['WFLW']` = mmpose `wflw`",
        "HRNet-Facial `wflw.py`; LAB's evaluator (subset lists of 196 numbers)",
    ),
    "wflw_hrnet": Convention(
        "CSV values as stored (WFLW's)",
        "inter_ocular",
        "inter_pupil",
        "HRNet-Facial `MATCHED_PARTS['WFLW']` = mmpose `wflw`",
        "HRNet-Facial `wflw.py`, `compute_nme`",
    ),
    "merl_rav": Convention(
        PTS + "; a negated point externally occluded, (-1, -1) self-occluded with no position",
        "box_sqrt_area",
        "inter_ocular (undefined where an eye corner is self-occluded)",
        FLIP_68,
        "LUVLi's MERL-RAV labels and NME_box (the located points' tight box)",
    ),
    "face5_csv": Convention(
        "plain CSV (`landmarks_csv`) 0-based, as stored",
        "inter_ocular",
        "inter_pupil (the same eye centres here), box_width with face boxes in the CSV",
        "declared in `conf/scheme/face5.yaml`",
        "your own data; the 5-point layout of MTCNN / RetinaFace",
    ),
}
# The two layouts convert writes (and a user's own data may come in), by what a split source names:
# a plain string is a 300W folder. A data config whose splits are given in one of them reads their
# files under that layout's convention, whatever the config's own (convert's read-back overrides).
LAYOUT_COORDINATES = {
    "pts_folder": (PTS, "`.pts`"),
    "landmarks_csv": ("plain CSV (`landmarks_csv`) 0-based, as stored", "`landmarks_csv`"),
}


def _layout(source: object) -> str | None:
    if isinstance(source, str):
        return "pts_folder"
    return source.get("reader") if isinstance(source, Mapping) else None


def coordinates_read(data: Mapping, convention: Convention) -> str:
    """The coordinate convention of the files `data`'s splits read: the config's own, or, where a
    split is given in a layout the config's convention does not name, that layout's."""
    given = {_layout(source) for sources in data["splits"].values() for source in sources}
    foreign = [
        LAYOUT_COORDINATES[layout][0]
        for layout in sorted(given & LAYOUT_COORDINATES.keys())
        if LAYOUT_COORDINATES[layout][1] not in convention.coordinates
    ]
    if not foreign:
        return convention.coordinates
    return f"{'; '.join(foreign)} (the layout the splits are given in)"


# data config name -> its scheme's name, for the table's point count (a test checks them against conf/data).
SCHEMES = {
    "w300": "ibug68",
    "w300_hrnet": "ibug68",
    "synthetic": "ibug68",
    "cofw": "cofw29",
    "cofw68": "ibug68",
    "aflw": "aflw19",
    "aflw_hrnet": "aflw19",
    "wflw": "wflw98",
    "wflw_hrnet": "wflw98",
    "merl_rav": "ibug68",
    "face5_csv": "face5",
}


def conventions_markdown() -> str:
    """README's table: one row per data config."""
    lines = [
        "| data= | points | coordinates | NME normaliser | alternatives | flip pairs | follows |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, c in CONVENTIONS.items():
        points = get_scheme(SCHEMES[name]).num_landmarks
        cells = (f"`{name}`", str(points), c.coordinates, f"`{c.normaliser}`", c.alternatives, c.flip_pairs)
        lines.append("| " + " | ".join((*cells, c.reference)) + " |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- evidence


def evidence(data: Mapping, records: Mapping[str, list[FaceRecord]], root: Path) -> list[str]:
    """`make data-check`'s convention lines for a dataset (its config `data`, every split's good
    records, its root)."""
    lines = []
    convention = CONVENTIONS.get(data["name"])
    if convention is None:
        lines.append(f"conventions: data={data['name']} has no entry in odn_lightning.data.conventions")
    else:
        lines.append(
            f"conventions: coordinates {coordinates_read(data, convention)}; NME normaliser {convention.normaliser} "
            f"(alternatives: {convention.alternatives}); follows {convention.reference}"
        )
    for split in data["test_splits"]:
        normalisation = normalisation_for(data["nme_normalisation"], split)
        if normalisation.startswith("box"):
            lines.append(box_squareness(split, records.get(split, []), normalisation))
    for split, sources in data["splits"].items():
        for source in sources:
            reader = source.get("reader") if isinstance(source, Mapping) else None
            if reader == "hrnet_csv":
                lines += hrnet_csv_evidence(split, source, records.get(split, []))
            elif reader == "aflw_info" and source.get("split") == "test":
                lines.append(aflw_frontal_counts(records.get(split, []), frontal_rule(data)))
            elif reader == "cofw68":
                lines += cofw68_evidence(source, root)
    subsets = {name: records[name] for name in WFLW_SUBSET_ATTRIBUTES if name in records}
    if subsets and "full" in records:
        lines += subset_agreement(records["full"], subsets)
    return list(dict.fromkeys(lines))  # a split read again (validation = the full test set) says it once


def box_squareness(split: str, records: Sequence[FaceRecord], normalisation: str) -> str:
    """How far a split's face boxes are from square, and so how far the box normalisers part."""
    boxes = np.asarray([r.box for r in records if r.box is not None], dtype=np.float64).reshape(-1, 4)
    if not len(boxes):
        return f"boxes of '{split}': none in the dataset; {normalisation} uses the landmarks' tight box"
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    off_square = np.abs(width - height) / np.maximum(width, height)
    # box_width against box_max_side and box_sqrt_area: the largest relative difference of the divisors.
    parted = 1.0 - np.minimum(width, np.sqrt(width * height)) / np.maximum(width, height)
    return (
        f"boxes of '{split}': {len(boxes)} faces, |w - h| / max(w, h) median {np.median(off_square):.3f}, "
        f"max {off_square.max():.3f}; box_width, box_max_side and box_sqrt_area differ by up to "
        f"{100 * parted.max():.1f}% ({normalisation} is used)"
    )


def hrnet_csv_evidence(split: str, source: Mapping, records: Sequence[FaceRecord]) -> list[str]:
    """The CSV's coordinate base against any `.pts` beside its images, its `box_size` column against
    its box, and the image names mapped to the shipped spelling."""
    lines = []
    name = Path(str(source.get("csv_file"))).name
    offsets = []
    for record in records:
        pts = record.image_path.with_suffix(".pts")
        if pts.is_file():
            try:
                offsets.append(np.abs(record.landmarks - read_pts(pts)).max())
            except AnnotationError:
                continue
    base = "1-based, minus 1" if source.get("one_based") else "as stored"
    if offsets:
        worst = float(np.max(offsets))
        verdict = "they agree" if worst < 0.01 else "they DISAGREE: check one_based on this source"
        lines.append(
            f"{name}: read {base}; {len(offsets)} faces have a .pts beside the image, the CSV's points "
            f"differ from it by at most {worst:.3f} px: {verdict}"
        )
    elif source.get(
        "one_based"
    ):  # a 1-based CSV claims to hold .pts values: say that none was there to check
        lines.append(f"{name}: read {base}; no .pts beside the images to compare with")
    sized = [r for r in records if r.box_size is not None and r.box is not None]
    if sized:
        ratio = np.asarray([r.box_size / float(r.box[2] - r.box[0]) for r in sized])
        lines.append(
            f"{name}: box_size / the CSV box's side (scale x 200): median {np.median(ratio):.3f}, "
            f"range [{ratio.min():.3f}, {ratio.max():.3f}] over {len(sized)} faces"
        )
    mapped = [
        r for r in records if any(str(r.image_path).endswith(shipped) for shipped in SHIPPED_NAMES.values())
    ]
    if mapped:
        lines.append(
            f"{name}: {len(mapped)} image names mapped to the shipped spelling ({mapped[0].image_path.name!r})"
        )
    return lines


def frontal_rule(data: Mapping) -> str:
    """The frontal rule a config's AFLW frontal split uses (the reader's default where unset)."""
    for sources in data["splits"].values():
        for source in sources:
            if isinstance(source, Mapping) and source.get("split") == "test_frontal":
                return source.get("frontal_rule", FRONTAL_RULES[0])
    return FRONTAL_RULES[0]


def aflw_frontal_counts(test_records: Sequence[FaceRecord], used: str) -> str:
    """How many AFLW test faces each frontal rule keeps, next to the published count."""
    counts = {
        rule: sum(
            r.visible is not None and r.box is not None and is_frontal(r.visible, r.landmarks, r.box, rule)
            for r in test_records
        )
        for rule in FRONTAL_RULES
    }
    shown = ", ".join(f"{rule}: {count}" for rule, count in counts.items())
    return f"AFLW frontal test faces by rule: {shown} (published: {AFLW_FRONTAL_FACES}; used: {used})"


def cofw68_evidence(source: Mapping, root: Path) -> list[str]:
    """The per-face pairing of COFW-68's annotations with the COFW test images."""
    from .formats.cofw68 import pairing_evidence

    paths = {key: root / source[key] for key in ("points_dir", "mat_file", "image_dir") if source.get(key)}
    return pairing_evidence(**paths)
