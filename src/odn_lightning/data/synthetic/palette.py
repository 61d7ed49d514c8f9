"""Colours (RGB): skin, hair and iris tables and the random colour set of one face."""

from __future__ import annotations

import numpy as np

_SKIN_TONES = np.array(
    [
        (255, 224, 200),
        (241, 194, 167),
        (224, 172, 138),
        (198, 134, 100),
        (161, 102, 74),
        (120, 75, 52),
        (84, 54, 40),
    ],
    dtype=np.float64,
)
_HAIR_COLOURS = np.array(
    [(22, 18, 16), (45, 32, 25), (80, 55, 35), (120, 85, 50), (190, 155, 95), (140, 60, 30), (150, 148, 145),
     (215, 210, 205)], dtype=np.float64,
)  # fmt: skip
_IRIS_COLOURS = np.array(
    [(85, 52, 30), (45, 32, 25), (70, 110, 160), (80, 115, 75), (125, 95, 50), (115, 125, 135)],
    dtype=np.float64,
)


def sample_colours(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The colours of one face (RGB floats): skin, hair, lips, brows, iris, sclera and clothes."""
    t = rng.uniform(0, len(_SKIN_TONES) - 1)
    i = int(t)
    skin = _SKIN_TONES[i] + (_SKIN_TONES[min(i + 1, len(_SKIN_TONES) - 1)] - _SKIN_TONES[i]) * (t - i)
    skin = np.clip(skin * rng.uniform(0.9, 1.08) + rng.normal(0, 6, 3), 20, 255)
    if rng.random() < 0.08:  # bald or shaved: the scalp shows
        hair = skin * 0.9
    elif rng.random() < 0.05:  # dyed
        hair = rng.uniform(30, 230, 3)
    else:
        hair = _HAIR_COLOURS[rng.integers(len(_HAIR_COLOURS))] * rng.uniform(0.8, 1.15)
    lip = skin * np.array([0.86, 0.58, 0.58]) + np.array([18, 0, 6])
    if rng.random() < 0.15:  # lipstick
        lip = np.array([(170, 30, 50), (200, 80, 110), (110, 20, 35), (190, 90, 80)][rng.integers(4)], float)
    brow = np.minimum(hair, skin * 0.45) if rng.random() < 0.7 else hair * 0.8
    return {
        "skin": skin,
        "hair": np.clip(hair, 0, 255),
        "lip": np.clip(lip * rng.uniform(0.9, 1.1), 0, 255),
        "brow": np.clip(brow, 0, 255),
        "iris": _IRIS_COLOURS[rng.integers(len(_IRIS_COLOURS))] * rng.uniform(0.8, 1.2),
        "sclera": np.array([235.0, 230, 225]) * rng.uniform(0.85, 1.0),
        "clothes": rng.uniform(0, 255, 3),
    }
