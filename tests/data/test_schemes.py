from __future__ import annotations

import numpy as np
import pytest

from odn_lightning.data.schemes import LandmarkScheme, get_scheme


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
