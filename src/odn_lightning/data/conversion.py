"""A dataset written again in a layout the suite reads back (`python -m odn_lightning.convert`):
the 300W layout (a folder of images and `.pts` per split, with `.occ` flags and `masks/` where the
dataset has them) or the plain CSV (`reader: landmarks_csv`). Everything is written into a temporary
folder beside `out`, renamed onto it once every split is complete: a failure or a kill leaves no
half-written output."""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from PIL import Image

from ..atomic import OutputWriteError, atomic_write_text, shown
from ..config_checks import ConfigError
from ..schemes import SCHEMES, scheme_declaration
from .datamodule import LandmarkDataModule, source_paths
from .formats.landmarks_csv import write_landmarks_csv
from .formats.w300 import IMAGE_SUFFIXES, mask_path_for, occlusion_path, write_occlusion, write_pts
from .records import FaceRecord

FORMATS = ("pts", "csv")
IMAGE_MODES = ("link", "copy")
SCHEME_FILE = "scheme.yaml"
CSV_IMAGES = "images"


def write_error(path: Path, err: OSError) -> OutputWriteError:
    reason = os.strerror(err.errno) if err.errno is not None else str(err)
    return OutputWriteError(
        f"cannot write {shown(path)}: {reason}; check that folder or choose another out=", path, err
    )


@dataclass
class ImagePlacer:
    """Puts source files into the output: hard links (else copies) or copies, counted for the report."""

    mode: str
    counts: dict[str, int] = field(default_factory=lambda: {"linked": 0, "copied": 0, "re-encoded": 0})

    def place(self, source: Path, target: Path, counted: bool = True) -> None:
        """`source` at `target`; `counted`: an image of the report (an occluder mask is not)."""
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise write_error(target, err) from err
        if self.mode == "link":
            try:
                os.link(source, target)
                self.counts["linked"] += counted
                return
            except OSError:
                pass  # another file system, or one without hard links: copy instead
        try:
            shutil.copyfile(source, target)
        except OSError as err:
            raise write_error(target, err) from err
        self.counts["copied"] += counted

    def reencode(self, source: Path, target: Path) -> None:
        """A lossless PNG of an image the 300W layout's reader would not list."""
        try:
            with Image.open(source) as image:
                converted = image if image.mode in ("L", "RGB", "RGBA") else image.convert("RGB")
                target.parent.mkdir(parents=True, exist_ok=True)
                converted.save(target, format="PNG")
        except OSError as err:
            raise write_error(target, err) from err
        self.counts["re-encoded"] += 1

    def summary(self) -> str:
        done = [f"{n} {how}" for how, n in self.counts.items() if n]
        return ", ".join(done) or "none"


def unique_name(name: str, taken: set[str], suffix: str = "") -> str:
    """`name + suffix`, or `name_2 + suffix`, `name_3 + suffix`, ... where `name` is taken (compared
    case-insensitively, as macOS and Windows file systems do)."""
    candidate, k = name, 1
    while candidate.lower() in taken:
        k += 1
        candidate = f"{name}_{k}"
    taken.add(candidate.lower())
    return candidate + suffix


def write_pts_split(folder: Path, records: Sequence[FaceRecord], placer: ImagePlacer) -> str:
    """One split in the 300W layout; returns what was written."""
    before = dict(placer.counts)
    taken: set[str] = set()
    flags = masks = boxes = 0
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise write_error(folder, err) from err
    for record in records:
        source = record.image_path
        listed = source.suffix.lower() in IMAGE_SUFFIXES
        # Unique by stem: the .pts, .occ and mask of a face are named after its image's stem.
        image = folder / unique_name(source.stem, taken, source.suffix if listed else ".png")
        if listed:
            placer.place(source, image)
        else:
            placer.reencode(source, image)
        try:
            write_pts(image.with_suffix(".pts"), record.landmarks)
            if record.occlusion is not None:
                write_occlusion(occlusion_path(image), record.occlusion)
                flags += 1
        except OSError as err:
            raise write_error(image.with_suffix(".pts"), err) from err
        if record.mask_path is not None:
            placer.place(record.mask_path, mask_path_for(image), counted=False)
            masks += 1
        boxes += record.box is not None
    images = {how: placer.counts[how] - before[how] for how in placer.counts}
    images = ", ".join(f"{n} {how}" for how, n in images.items() if n) or "none"
    parts = [f"images: {images}", f"{len(records)} .pts"]
    parts += [f"{flags} .occ"] if flags else []
    parts += [f"{masks} masks"] if masks else []
    parts += [f"{boxes} face boxes not kept (format=csv keeps them)"] if boxes else []
    return "; ".join(parts)


def write_csv_split(
    csv_path: Path, records: Sequence[FaceRecord], placer: ImagePlacer, placed: dict[Path, str], root: Path
) -> str:
    """One split as a plain CSV, its images under `images/` (each once, shared by every split)."""
    image_dir = csv_path.parent / CSV_IMAGES
    taken = {os.path.splitext(name)[0].lower() for name in placed.values()}
    names = []
    masks = 0
    for record in records:
        source = record.image_path
        if source not in placed:
            try:
                # The path under data.root keeps the dataset's own folders (and so its names unique).
                name = source.resolve().relative_to(root).as_posix()
            except ValueError:
                name = source.name
            stem, suffix = os.path.splitext(name)
            name = unique_name(stem, taken, suffix)
            placer.place(source, image_dir / name)
            placed[source] = name
        names.append(placed[source])
        masks += record.mask_path is not None
    header = write_landmarks_csv(csv_path, records, names)
    points = sum(1 for column in header if column.startswith("x"))
    extras = [kind for kind, column in (("visible", "visible0"), ("box", "box_x_min")) if column in header]
    parts = [f"{points} points" + (f" with {' and '.join(extras)} columns" if extras else "")]
    parts += [f"{masks} occluder masks not kept (format=pts keeps them)"] if masks else []
    return "; ".join(parts)


def check_output_folder(
    out: Path, datamodule: LandmarkDataModule, splits: Sequence[str], overwrite: bool
) -> None:
    """`out` may not hold the files it is converted from, nor replace a folder unasked."""
    out = out.resolve()
    read = [datamodule.root.resolve()]
    read += [
        (datamodule.root / path).resolve()
        for split in splits
        for source in datamodule.hparams.splits[split]
        for path in source_paths(source)
    ]
    for path in read:
        if out == path or out in path.parents:
            raise ConfigError(
                f"out={out} holds {path}, which data={datamodule.hparams.name} is read from; choose a folder "
                "outside it"
            )
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out={out} is a file; give a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ConfigError(
            f"out={out} exists and is not empty; choose a new folder, or replace it with overwrite=true"
        )


def move_into_place(temporary: Path, out: Path) -> None:
    """Rename the complete output onto `out`; an existing `out` is set aside first and removed after."""
    old = None
    try:
        if out.is_dir() and any(out.iterdir()):
            old = out.with_name(f".{out.name}.{os.getpid()}.{secrets.token_hex(4)}.old")
            os.replace(out, old)
        elif out.is_dir():
            out.rmdir()
        os.replace(temporary, out)
    except OSError as err:
        if old is not None and not out.exists():
            with suppress(OSError):
                os.replace(old, out)  # the previous output stays where it was
        raise write_error(out, err) from err
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_dataset(
    datamodule: LandmarkDataModule,
    splits: Sequence[str],
    out: Path,
    layout: str,
    images: str,
    overwrite: bool,
) -> tuple[dict[str, int], list[str], str]:
    """Write `splits` of `datamodule` to `out` in `layout` (pts or csv), all or nothing; returns the
    faces per split, a line per split (and one for the images) and the settings that read it back."""
    check_output_folder(out, datamodule, splits, overwrite)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise write_error(out, err) from err
    temporary = out.with_name(f".{out.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    placer = ImagePlacer(images)
    root = datamodule.root.resolve()
    placed: dict[Path, str] = {}
    scheme = datamodule.scheme
    builtin = SCHEMES.get(scheme.name) == scheme
    counts, lines = {}, []
    try:
        for split in splits:
            records = datamodule.checked_records(split)
            counts[split] = len(records)
            if layout == "pts":
                what = write_pts_split(temporary / split, records, placer)
                lines.append(f"{split}: {len(records)} faces -> {shown(out / split)} ({what})")
            else:
                what = write_csv_split(temporary / f"{split}.csv", records, placer, placed, root)
                lines.append(f"{split}: {len(records)} faces -> {shown(out / f'{split}.csv')} ({what})")
        if not builtin:
            text = yaml.safe_dump(scheme_declaration(scheme), sort_keys=False, default_flow_style=None)
            atomic_write_text(temporary / SCHEME_FILE, text)
        move_into_place(temporary, out)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)
    if layout == "csv":
        lines.append(f"images: {placer.summary()} under {shown(out / CSV_IMAGES)}")
    scheme_setting = scheme.name if builtin else str(out / SCHEME_FILE)
    overrides = read_back_overrides(datamodule, splits, out, layout, scheme_setting)
    stand_in = [s for s in (datamodule.hparams.train_split, datamodule.hparams.val_split) if s not in splits]
    if stand_in:
        lines.append(
            f"not written: {', '.join(stand_in)}; the settings below read a written split in its place"
        )
    return counts, lines, "read it back with: " + " ".join(shlex.quote(o) for o in overrides)


def read_back_overrides(
    datamodule: LandmarkDataModule, splits: Sequence[str], out: Path, layout: str, scheme_setting: str
) -> list[str]:
    """The overrides of train, eval or data check that read a conversion back as the source was read:
    the source's data config (its crops, normaliser, flip; the synthetic faces' is 300W's, whose layout
    they are written in, without 300W's published counts), the written splits in place of its own
    (deleted and added: an override of data.splits would merge with them), and its train, validation
    and test splits where they were written (`write_dataset` says which stand in)."""
    hp = datamodule.hparams
    if layout == "pts":
        sources = ", ".join(f"{split}: [{split}]" for split in splits)
    else:
        sources = ", ".join(
            f"{split}: [{{reader: landmarks_csv, csv_file: {split}.csv, image_root: {CSV_IMAGES}}}]"
            for split in splits
        )
    synthetic = hp.name == "synthetic"
    overrides = [
        f"data={'w300' if synthetic else hp.name}",
        f"data.root={out}",
        f"data.scheme={scheme_setting}",
        "~data.splits",
        f"+data.splits={{{sources}}}",
    ]
    tests = [split for split in hp.test_splits if split in splits] or list(splits)
    # The data loads only with a training and a validation split: where they were not written, the
    # first test split stands in (say so: train on it only if that is meant).
    overrides += [
        f"data.{key}={hp[key] if hp[key] in splits else tests[0]}" for key in ("train_split", "val_split")
    ]
    overrides.append(f"data.test_splits=[{', '.join(tests)}]")
    if synthetic:
        overrides.append("data.expected_counts=null")
    return overrides
