"""Landmark schemes: how many points, how they mirror, and which points normalise the error."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class LandmarkScheme:
    name: str
    num_points: int
    # flip_permutation[i] is the index that point i becomes after a horizontal flip.
    flip_permutation: tuple[int, ...]
    # Outer eye corners (image-left eye first): the inter-ocular distance of 300W / COFW.
    outer_eye_corners: tuple[int, int]
    # Points whose mean is each eye centre (image-left eye first): the inter-pupil distance.
    eye_centres: tuple[tuple[int, ...], tuple[int, ...]]
    parts: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        perm = self.flip_permutation
        if sorted(perm) != list(range(self.num_points)):
            raise ValueError(
                f"{self.name}: flip_permutation is not a permutation of 0..{self.num_points - 1}"
            )
        if any(perm[perm[i]] != i for i in range(self.num_points)):
            raise ValueError(f"{self.name}: flipping twice must be the identity")


def _mirror_pairs(num_points: int, pairs: list[tuple[int, int]]) -> tuple[int, ...]:
    perm = list(range(num_points))
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return tuple(perm)


def _ibug68() -> LandmarkScheme:
    pairs = [(i, 16 - i) for i in range(8)]  # jaw
    pairs += [(17 + i, 26 - i) for i in range(5)]  # brows
    pairs += [(31, 35), (32, 34)]  # nostrils
    pairs += [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]  # eyes
    pairs += [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58)]  # outer lips
    pairs += [(60, 64), (61, 63), (65, 67)]  # inner lips
    return LandmarkScheme(
        name="ibug68",
        num_points=68,
        flip_permutation=_mirror_pairs(68, pairs),
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


SCHEMES: dict[str, LandmarkScheme] = {s.name: s for s in (_ibug68(),)}


def get_scheme(name: str) -> LandmarkScheme:
    try:
        return SCHEMES[name]
    except KeyError:
        raise ValueError(f"unknown landmark scheme '{name}'; choose one of {sorted(SCHEMES)}") from None
