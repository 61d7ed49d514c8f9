"""Landmark schemes: how many points a dataset annotates, how they mirror, and which points normalise
the error. The one source of every point count in the suite: readers, configs, networks and metrics
take it from here, never type it again.

A scheme is given (`data.scheme`, `model.scheme`, `get_scheme`) as one of:
- the name of a built-in scheme (`SCHEMES`: ibug68, cofw29, aflw19, wflw98);
- the name of a YAML declaration `conf/scheme/<name>.yaml`, or the path of a `.yaml` file;
- a declaration itself, a mapping (`SCHEME_KEYS`):
  `{name: face5, num_landmarks: 5, flip_pairs: [[0, 1], [3, 4]], outer_eye_corners: [0, 1],
  eye_centres: [[0], [1]], parts: {eyes: [0, 1], ...}}` (flip_pairs and parts optional).
A declaration is data (read with `yaml.safe_load`, no code) and is checked whole: a bad one raises
`SchemeError`, one line naming the file (or the scheme) and what to fix. The training and evaluation
entry points put the declaration a name stands for into the run config (`config.inline_declared_scheme`),
so a checkpoint carries its scheme and evaluates without the file.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .locations import CONFIG_DIR


@dataclass(frozen=True)
class LandmarkScheme:
    name: str
    num_landmarks: int
    # flip_permutation[i] is the index that point i becomes after a horizontal flip.
    flip_permutation: tuple[int, ...]
    # Outer eye corners (image-left eye first): the inter-ocular distance of 300W / COFW.
    outer_eye_corners: tuple[int, int]
    # Points whose mean is each eye centre (image-left eye first): the inter-pupil distance.
    eye_centres: tuple[tuple[int, ...], tuple[int, ...]]
    parts: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        perm = self.flip_permutation
        if sorted(perm) != list(range(self.num_landmarks)):
            raise ValueError(
                f"{self.name}: flip_permutation is not a permutation of 0..{self.num_landmarks - 1}"
            )
        if any(perm[perm[i]] != i for i in range(self.num_landmarks)):
            raise ValueError(f"{self.name}: flipping twice must be the identity")

    @classmethod
    def from_mirror_pairs(
        cls, name: str, num_landmarks: int, pairs: Iterable[tuple[int, int]], **fields
    ) -> LandmarkScheme:
        """A scheme whose flip permutation swaps each (a, b) of `pairs`; other points map to themselves."""
        perm = list(range(num_landmarks))
        for a, b in pairs:
            perm[a], perm[b] = b, a
        return cls(name=name, num_landmarks=num_landmarks, flip_permutation=tuple(perm), **fields)


# iBUG / 300W, 68 points (Sagonas et al., 300 Faces in-the-Wild, 2013): 0-16 jaw, 17-26 brows,
# 27-35 nose, 36-47 eyes, 48-67 mouth.
IBUG68 = LandmarkScheme.from_mirror_pairs(
    "ibug68",
    68,
    [(i, 16 - i) for i in range(8)]  # jaw
    + [(17 + i, 26 - i) for i in range(5)]  # brows
    + [(31, 35), (32, 34)]  # nostrils
    + [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]  # eyes
    + [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58)]  # outer lips
    + [(60, 64), (61, 63), (65, 67)],  # inner lips
    outer_eye_corners=(36, 45),
    eye_centres=(tuple(range(36, 42)), tuple(range(42, 48))),
    parts={
        "jaw": tuple(range(0, 17)),
        "brows": tuple(range(17, 27)),
        "nose": tuple(range(27, 36)),
        "eyes": tuple(range(36, 48)),
        "mouth": tuple(range(48, 68)),
    },
)

# COFW's 29 points (Burgos-Artizzu, Perona, Dollar, "Robust face landmark estimation under occlusion",
# ICCV 2013; the LFPW 29-point subset of Belhumeur et al. 2011).
# Mirror pairs: HRNet-Facial `lib/utils/transforms.py` MATCHED_PARTS["COFW"] (1-based there) and mmpose
# `configs/_base_/datasets/cofw.py` (0-based `swap`), which agree. Outer eye corners (8, 9): HRNet-Facial
# `lib/core/evaluation.py` (`L == 29`). Layout (0-based), first of each pair assumed on the image left
# (not checked against the real data): 0/1 brow outer ends, 2/3 brow inner ends, 4/5 and 6/7 brow
# top/bottom midpoints, 8/9 outer eye corners, 10/11 inner eye corners, 12/13 and 14/15 eye top/bottom,
# 16/17 pupils, 18/19 nostrils, 20 nose tip, 21 nose base, 22/23 mouth corners, 24-27 lip midpoints
# (upper lip top, bottom; lower lip top, bottom), 28 chin.
COFW29 = LandmarkScheme.from_mirror_pairs(
    "cofw29",
    29,
    [(0, 1), (2, 3), (4, 6), (5, 7), (8, 9), (10, 11), (12, 14), (13, 15), (16, 17), (18, 19), (22, 23)],
    outer_eye_corners=(8, 9),
    eye_centres=((16,), (17,)),  # the pupils
    parts={
        "brows": tuple(range(0, 8)),
        "eyes": tuple(range(8, 18)),
        "nose": (18, 19, 20, 21),
        "mouth": tuple(range(22, 28)),
        "chin": (28,),
    },
)

# AFLW's 21 points without the two ears (Koestinger et al., "Annotated Facial Landmarks in the Wild",
# ICCV-W 2011; the 19-point protocol of Zhu et al., CCL, CVPR 2016). Order (0-based), image-left first:
# 0-2 left brow (outer, centre, inner), 3-5 right brow (inner, centre, outer), 6-8 left eye (outer
# corner, centre, inner corner), 9-11 right eye (inner, centre, outer), 12-14 nose (left, tip, right),
# 15-17 mouth (left corner, centre, right corner), 18 chin. Mirror pairs: HRNet-Facial
# MATCHED_PARTS["AFLW"] (1-based there). AFLW's NME is normalised by the face box (HRNet `compute_nme`,
# `L == 19`), so the eye points here serve inter-ocular / inter-pupil metrics only when asked for.
AFLW19 = LandmarkScheme.from_mirror_pairs(
    "aflw19",
    19,
    [(0, 5), (1, 4), (2, 3), (6, 11), (7, 10), (8, 9), (12, 14), (15, 17)],
    outer_eye_corners=(6, 11),
    eye_centres=((7,), (10,)),  # AFLW's annotated eye centres
    parts={
        "brows": tuple(range(0, 6)),
        "eyes": tuple(range(6, 12)),
        "nose": (12, 13, 14),
        "mouth": (15, 16, 17),
        "chin": (18,),
    },
)

# WFLW's 98 points (Wu et al., "Look at Boundary", CVPR 2018; https://wywu.github.io/projects/LAB/WFLW.html).
# Mirror pairs: HRNet-Facial MATCHED_PARTS["WFLW"] (0-based there) and mmpose
# `configs/_base_/datasets/wflw.py`. Outer eye corners (60, 72): HRNet `compute_nme` (`L == 98`).
# Layout: 0-32 contour (16 chin), 33-41 / 42-50 brows, 51-54 nose bridge, 55-59 nose base,
# 60-67 / 68-75 eyes, 76-87 outer lips, 88-95 inner lips, 96/97 pupils.
WFLW98 = LandmarkScheme.from_mirror_pairs(
    "wflw98",
    98,
    [(i, 32 - i) for i in range(16)]  # contour
    + [(33, 46), (34, 45), (35, 44), (36, 43), (37, 42), (38, 50), (39, 49), (40, 48), (41, 47)]  # brows
    + [(55, 59), (56, 58)]  # nose base
    + [(60, 72), (61, 71), (62, 70), (63, 69), (64, 68), (65, 75), (66, 74), (67, 73)]  # eyes
    + [(76, 82), (77, 81), (78, 80), (87, 83), (86, 84)]  # outer lips
    + [(88, 92), (89, 91), (95, 93)]  # inner lips
    + [(96, 97)],  # pupils
    outer_eye_corners=(60, 72),
    eye_centres=((96,), (97,)),  # the pupils
    parts={
        "contour": tuple(range(0, 33)),
        "brows": tuple(range(33, 51)),
        "nose": tuple(range(51, 60)),
        "eyes": tuple(range(60, 76)) + (96, 97),
        "mouth": tuple(range(76, 96)),
    },
)

SCHEMES: Mapping[str, LandmarkScheme] = {s.name: s for s in (IBUG68, COFW29, AFLW19, WFLW98)}

# What `get_scheme` takes: a name (built-in or conf/scheme/<name>.yaml), a .yaml path, a declaration
# (a mapping, OmegaConf's DictConfig included) or a scheme.
SchemeSpec = str | Mapping | LandmarkScheme
# The keys of a declaration; flip_pairs (default: none) and parts (default: none) may be left out, and
# name too in a file (default: the file's name).
SCHEME_KEYS = ("name", "num_landmarks", "flip_pairs", "outer_eye_corners", "eye_centres", "parts")
REQUIRED_KEYS = ("num_landmarks", "outer_eye_corners", "eye_centres")
YAML_SUFFIXES = (".yaml", ".yml")


class SchemeError(ValueError):
    """A declared scheme that cannot be used; the message is one line naming where it was declared."""


def scheme_dir() -> Path:
    """`conf/scheme/`: the declarations a scheme name finds."""
    return Path(CONFIG_DIR) / "scheme"


def scheme_names() -> list[str]:
    """Every scheme a name finds: the built-in ones and those of `conf/scheme/`."""
    declared = {p.stem for p in scheme_dir().glob("*.yaml") if not p.stem.startswith("_")}
    return sorted(set(SCHEMES) | declared)


def _is_index(value: Any) -> bool:
    # bool is an int subclass, but `true` is no point index.
    return isinstance(value, int) and not isinstance(value, bool)


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def _indices(value: Any, key: str, count: int, where: str, length: int | None = None) -> tuple[int, ...]:
    """`value` as point indices of a `count`-point scheme (exactly `length` of them where given)."""
    items = list(value) if _is_list(value) else [value]
    if not items or (length is not None and len(items) != length):
        wanted = f"{length} point indices" if length is not None else "one or more point indices"
        raise SchemeError(f"{where}: {key} must be {wanted}, not {_plain(value)}")
    for item in items:
        if not _is_index(item):
            raise SchemeError(f"{where}: {key} must be point indices (whole numbers), not {_plain(value)}")
        if not 0 <= item < count:
            raise SchemeError(
                f"{where}: {key} {_plain(value)}: point {item} is out of range; the scheme has {count} "
                f"points, 0 to {count - 1}"
            )
    return tuple(items)


def _plain(value: Any) -> str:
    """A declared value as YAML writes it inline, for messages ([0, 1] rather than ListConfig)."""
    if _is_list(value):
        return "[" + ", ".join(_plain(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_plain(v)}" for k, v in value.items()) + "}"
    return repr(value) if isinstance(value, str) else str(value)


def scheme_from_declaration(
    declaration: Any, where: str | None = None, name: str | None = None
) -> LandmarkScheme:
    """The scheme a declaration (a mapping of `SCHEME_KEYS`) describes; `where` names it in errors
    (its file), `name` is the name it takes when it gives none (its file's name)."""
    if not isinstance(declaration, Mapping):
        raise SchemeError(
            f"{where or 'landmark scheme'}: a scheme declaration is a mapping of {', '.join(SCHEME_KEYS)}, "
            f"not {_plain(declaration)}"
        )
    given = declaration.get("name", name)
    if not isinstance(given, str) or not given.strip():
        raise SchemeError(f"{where or 'landmark scheme'}: give the scheme a name (name: my_scheme)")
    where = where or f"landmark scheme '{given}'"
    unknown = [str(key) for key in declaration if key not in SCHEME_KEYS]
    if unknown:
        raise SchemeError(f"{where}: unknown key '{unknown[0]}'; the keys are {', '.join(SCHEME_KEYS)}")
    missing = [key for key in REQUIRED_KEYS if declaration.get(key) is None]
    if missing:
        raise SchemeError(f"{where}: {missing[0]} is missing; a scheme gives {', '.join(REQUIRED_KEYS)}")
    count = declaration["num_landmarks"]
    if not _is_index(count) or count < 1:
        raise SchemeError(f"{where}: num_landmarks must be a positive whole number, not {_plain(count)}")

    pairs = declaration.get("flip_pairs") or []
    if not _is_list(pairs):
        raise SchemeError(f"{where}: flip_pairs must be a list of [a, b] pairs, not {_plain(pairs)}")
    mirrored: dict[int, int] = {}
    for pair in pairs:
        a, b = _indices(pair, "flip_pairs", count, where, length=2)
        if a == b:
            raise SchemeError(f"{where}: flip_pairs {_plain(pair)} pairs a point with itself; leave it out")
        for point in (a, b):
            if point in mirrored:
                raise SchemeError(
                    f"{where}: flip_pairs: point {point} is in two pairs; it has one mirror image"
                )
        mirrored[a], mirrored[b] = b, a

    corners = _indices(declaration["outer_eye_corners"], "outer_eye_corners", count, where, length=2)
    centres = declaration["eye_centres"]
    if not _is_list(centres) or len(centres) != 2:
        raise SchemeError(
            f"{where}: eye_centres must be two lists of points, the image-left eye's then the "
            f"image-right eye's (e.g. [[0], [1]]), not {_plain(centres)}"
        )
    eyes = tuple(_indices(group, "eye_centres", count, where) for group in centres)
    parts_given = declaration.get("parts") or {}
    if not isinstance(parts_given, Mapping):
        raise SchemeError(
            f"{where}: parts must map part names to points ({{eyes: [0, 1]}}), not {_plain(parts_given)}"
        )
    parts = {
        str(part): _indices(points, f"parts.{part}", count, where) for part, points in parts_given.items()
    }

    if mirrored.get(corners[0]) != corners[1]:
        # A mirrored face's left eye is its right one: without this pair the flip augmentation
        # would teach the network to swap its eyes.
        raise SchemeError(
            f"{where}: flip_pairs must swap the outer eye corners {corners[0]} and {corners[1]} "
            f"(a mirrored face's left eye is its right); add [{corners[0]}, {corners[1]}] to flip_pairs"
        )
    if sorted(mirrored.get(i, i) for i in eyes[0]) != sorted(eyes[1]):
        raise SchemeError(
            f"{where}: flip_pairs must map the left eye_centres points {_plain(list(eyes[0]))} onto the "
            f"right ones {_plain(list(eyes[1]))}; pair them in flip_pairs"
        )
    try:
        scheme = LandmarkScheme.from_mirror_pairs(
            given.strip(),
            count,
            list(mirrored.items()),
            outer_eye_corners=corners,
            eye_centres=eyes,
            parts=parts,
        )
    except ValueError as err:  # the permutation checks of LandmarkScheme
        raise SchemeError(f"{where}: {err}") from None
    builtin = SCHEMES.get(scheme.name)
    if builtin is not None and builtin != scheme:
        raise SchemeError(f"{where}: '{scheme.name}' is a built-in scheme's name; give yours another name")
    return scheme


def scheme_declaration(scheme: LandmarkScheme) -> dict[str, Any]:
    """A scheme as a plain declaration (`scheme_from_declaration` gives it back), for configs and
    checkpoints."""
    perm = scheme.flip_permutation
    return {
        "name": scheme.name,
        "num_landmarks": scheme.num_landmarks,
        "flip_pairs": [[i, perm[i]] for i in range(scheme.num_landmarks) if i < perm[i]],
        "outer_eye_corners": list(scheme.outer_eye_corners),
        "eye_centres": [list(group) for group in scheme.eye_centres],
        "parts": {part: list(points) for part, points in scheme.parts.items()},
    }


def read_scheme_file(path: str | Path) -> LandmarkScheme:
    """The scheme a YAML file declares (its name defaults to the file's name)."""
    path = Path(path)
    try:
        declaration = yaml.safe_load(path.read_text())
    except OSError as err:
        raise SchemeError(f"{path}: cannot read the scheme ({err.strerror or err})") from None
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        reason = " ".join(str(err).split())
        raise SchemeError(f"{path}: not a YAML scheme declaration ({reason})") from None
    return scheme_from_declaration(declaration, where=str(path), name=path.stem)


def declaration_file(name: str) -> Path | None:
    """The file a scheme name stands for: a `.yaml` path as given, else `conf/scheme/<name>.yaml`;
    None where there is none."""
    if name.endswith(YAML_SUFFIXES):
        return Path(name).expanduser()
    if "/" in name or "\\" in name or name.startswith("."):
        return None
    path = scheme_dir() / f"{name}.yaml"
    return path if path.is_file() else None


def is_builtin(spec: Any) -> bool:
    return isinstance(spec, str) and spec in SCHEMES


def get_scheme(spec: SchemeSpec) -> LandmarkScheme:
    """The scheme `spec` gives (see the module's docstring); an unknown name raises ValueError, a bad
    declaration SchemeError."""
    if isinstance(spec, LandmarkScheme):
        return spec
    if isinstance(spec, Mapping):
        return scheme_from_declaration(spec)
    if isinstance(spec, str):
        if spec in SCHEMES:
            return SCHEMES[spec]
        path = declaration_file(spec)
        if path is not None:
            scheme = read_scheme_file(path)
            if not spec.endswith(YAML_SUFFIXES) and scheme.name != spec:
                # The name finds the file: a different name inside would make the two disagree.
                raise SchemeError(f"{path}: declares name '{scheme.name}'; name it '{spec}' as its file is")
            return scheme
    raise ValueError(
        f"unknown landmark scheme {_plain(spec)}; choose one of {', '.join(scheme_names())}, or declare "
        f"your own in {scheme_dir()}/<name>.yaml (README: Bring your own dataset)"
    )
