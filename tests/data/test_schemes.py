from __future__ import annotations

import numpy as np
import pytest

from odn_lightning.schemes import LandmarkScheme, get_scheme


def test_ibug68_flip_twice_is_identity_and_mirrors_pairs():
    scheme = get_scheme("ibug68")
    perm = np.asarray(scheme.flip_permutation)
    assert (perm[perm] == np.arange(68)).all()
    assert perm[36] == 45 and perm[0] == 16 and perm[48] == 54
    assert perm[8] == 8 and perm[30] == 30 and perm[62] == 62  # points on the symmetry axis


def test_bad_permutation_is_refused():
    with pytest.raises(ValueError, match="identity"):
        LandmarkScheme("bad", 3, (1, 2, 0), (0, 1), ((0,), (1,)))


def test_unknown_scheme_lists_the_known_ones():
    with pytest.raises(ValueError, match="ibug68"):
        get_scheme("nope")


ALL_SCHEMES = ["ibug68", "cofw29", "aflw19", "wflw98"]


@pytest.mark.parametrize("name", ALL_SCHEMES)
def test_flip_twice_is_identity_and_indices_in_range(name):
    scheme = get_scheme(name)
    n = scheme.num_landmarks
    perm = np.asarray(scheme.flip_permutation)
    assert len(perm) == n and (perm[perm] == np.arange(n)).all()
    indices = list(scheme.outer_eye_corners) + [i for group in scheme.eye_centres for i in group]
    indices += [i for part in scheme.parts.values() for i in part]
    assert all(0 <= i < n for i in indices)
    # Every point belongs to exactly one part.
    assert sorted(i for part in scheme.parts.values() for i in part) == list(range(n))


@pytest.mark.parametrize("name", ALL_SCHEMES)
def test_flip_swaps_the_eyes(name):
    scheme = get_scheme(name)
    perm = scheme.flip_permutation
    left, right = scheme.outer_eye_corners
    assert perm[left] == right and perm[right] == left
    left_eye, right_eye = scheme.eye_centres
    assert sorted(perm[i] for i in left_eye) == sorted(right_eye)


@pytest.mark.parametrize("name", ALL_SCHEMES)
def test_symmetric_shape_is_unchanged_by_flip_and_permutation(name):
    scheme = get_scheme(name)
    perm = np.asarray(scheme.flip_permutation)
    rng = np.random.default_rng(0)
    # Mirror a random half-shape about x = 0: pair members get (x, y) and (-x, y); axis points x = 0.
    shape = np.zeros((scheme.num_landmarks, 2))
    for i in range(scheme.num_landmarks):
        j = perm[i]
        if i < j:
            x, y = rng.uniform(1, 10), rng.uniform(-10, 10)
            shape[i], shape[j] = (-x, y), (x, y)
        elif i == j:
            shape[i] = (0.0, rng.uniform(-10, 10))
    flipped = shape * np.array([-1.0, 1.0])
    np.testing.assert_allclose(flipped[perm], shape)
    # A non-symmetric shape is not (the test has teeth).
    skewed = shape + np.array([[rng.uniform(1, 2), 0.0]] * scheme.num_landmarks) * (
        np.arange(scheme.num_landmarks)[:, None] % 2
    )
    assert not np.allclose((skewed * np.array([-1.0, 1.0]))[perm], skewed)


def test_known_pairs_of_the_benchmark_schemes():
    wflw = get_scheme("wflw98").flip_permutation
    assert wflw[0] == 32 and wflw[16] == 16 and wflw[96] == 97 and wflw[54] == 54 and wflw[79] == 79
    cofw = get_scheme("cofw29").flip_permutation
    assert cofw[4] == 6 and cofw[12] == 14 and cofw[20] == 20 and cofw[28] == 28
    aflw = get_scheme("aflw19").flip_permutation
    assert aflw[0] == 5 and aflw[13] == 13 and aflw[18] == 18 and aflw[15] == 17
