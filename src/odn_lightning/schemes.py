"""Landmark schemes: how many points a dataset annotates, how they mirror, and which points normalise
the error. The one source of every point count in the suite: readers, configs, networks and metrics
take it from here, never type it again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


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


def get_scheme(name: str) -> LandmarkScheme:
    try:
        return SCHEMES[name]
    except KeyError:
        raise ValueError(f"unknown landmark scheme '{name}'; choose one of {sorted(SCHEMES)}") from None
