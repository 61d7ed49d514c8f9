"""Per-split sampling ranges: what poses, expressions, occluders and image conditions a split draws."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SplitProfile:
    """Sampling ranges of one split (angles in degrees)."""

    yaw_sd: float
    yaw_max: float
    extreme_yaw_prob: float  # probability of drawing |yaw| uniformly from `extreme_yaw` instead
    extreme_yaw: tuple[float, float]
    pitch_sd: float
    pitch_max: float
    roll_sd: float
    roll_max: float
    expression: float  # 0 neutral .. 1 strong expressions
    occluder_counts: tuple[float, ...]  # probabilities of 0, 1, 2, ... occluders
    occluder_kinds: tuple[tuple[str, float], ...]  # (kind, relative weight)
    occluder_size: float  # size multiplier of hands, shapes and hair locks
    sunglasses_prob: float
    face_width: tuple[float, float]  # frontal jaw width as a fraction of the image width
    cut: float  # how far the landmark box may leave the image, as a fraction of its size
    light: tuple[float, float]  # range of the lighting gradient strength across the head
    noise: tuple[float, float]  # range of the sensor noise standard deviation (grey levels)
    blur_prob: float


_TRAIN = SplitProfile(
    yaw_sd=25.0, yaw_max=70.0, extreme_yaw_prob=0.0, extreme_yaw=(40.0, 70.0),
    pitch_sd=8.0, pitch_max=20.0, roll_sd=10.0, roll_max=25.0, expression=0.7,
    occluder_counts=(0.4, 0.4, 0.2),
    occluder_kinds=(("glasses", 0.22), ("hand", 0.2), ("mask", 0.15), ("shape", 0.3), ("hair", 0.13)),
    occluder_size=1.0, sunglasses_prob=0.35, face_width=(0.4, 0.7), cut=0.0,
    light=(0.1, 0.6), noise=(1.0, 7.0), blur_prob=0.3,
)  # fmt: skip

SPLIT_PROFILES: dict[str, SplitProfile] = {
    "train": _TRAIN,
    "val": _TRAIN,
    "common": SplitProfile(
        yaw_sd=12.0, yaw_max=30.0, extreme_yaw_prob=0.0, extreme_yaw=(0.0, 30.0),
        pitch_sd=6.0, pitch_max=15.0, roll_sd=6.0, roll_max=15.0, expression=0.35,
        occluder_counts=(0.75, 0.25),
        occluder_kinds=(("glasses", 0.4), ("shape", 0.45), ("hair", 0.15)),
        occluder_size=0.55, sunglasses_prob=0.0, face_width=(0.45, 0.65), cut=0.0,
        light=(0.05, 0.4), noise=(1.0, 4.0), blur_prob=0.2,
    ),
    "challenging": SplitProfile(
        yaw_sd=25.0, yaw_max=70.0, extreme_yaw_prob=0.7, extreme_yaw=(40.0, 70.0),
        pitch_sd=12.0, pitch_max=30.0, roll_sd=18.0, roll_max=40.0, expression=1.0,
        occluder_counts=(0.0, 0.35, 0.4, 0.25),
        occluder_kinds=(("glasses", 0.15), ("hand", 0.3), ("mask", 0.25), ("shape", 0.2), ("hair", 0.1)),
        occluder_size=1.25, sunglasses_prob=0.7, face_width=(0.4, 0.72), cut=0.06,
        light=(0.4, 0.9), noise=(3.0, 12.0), blur_prob=0.5,
    ),
}  # fmt: skip


def resolve_profile(profile: str | SplitProfile) -> SplitProfile:
    """The profile itself, or the one of the split it names."""
    if isinstance(profile, SplitProfile):
        return profile
    try:
        return SPLIT_PROFILES[profile]
    except KeyError:
        raise ValueError(
            f"unknown synthetic profile/split '{profile}'; choose one of {sorted(SPLIT_PROFILES)}"
        ) from None


def split_profile(split: str) -> SplitProfile:
    """The profile of a split that can be generated (one of `SPLIT_PROFILES`)."""
    if split not in SPLIT_PROFILES:
        raise ValueError(f"unknown synthetic split '{split}'; valid splits are {sorted(SPLIT_PROFILES)}")
    return SPLIT_PROFILES[split]
