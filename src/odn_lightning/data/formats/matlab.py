"""MATLAB `.mat` files, as COFW, COFW-68 and AFLW publish them.

MATLAB v5/v7 files go through scipy.io.loadmat. v7.3 files (HDF5; COFW's `COFW_*_color.mat` are
published so) go through h5py: HDF5 stores MATLAB arrays column-major, so every array is transposed
back, cell arrays (object references) become object arrays of their transposed elements, and char
arrays become str.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io

from ..records import AnnotationError


def load_mat(path: Path) -> dict:
    """A .mat file as {name: array}, in MATLAB's shapes, with AnnotationErrors naming the file."""
    try:
        with path.open("rb") as f:
            header = f.read(128)
    except OSError as err:
        raise AnnotationError(f"{path}: cannot read ({err})") from err
    try:
        if header.startswith(b"MATLAB 7.3 MAT-file"):
            return _load_mat_v73(path)
        return scipy.io.loadmat(str(path))
    except AnnotationError:
        raise
    except Exception as err:  # scipy and h5py raise ValueError, OSError, KeyError... on corrupt files
        raise AnnotationError(f"{path}: not a readable .mat file ({err})") from err


def _load_mat_v73(path: Path) -> dict:
    import h5py

    def value(node):
        if isinstance(node, h5py.Group):
            raise AnnotationError(f"{path}: '{node.name}' is a MATLAB struct; a matrix or cell was expected")
        data = node[()]
        matlab_class = node.attrs.get("MATLAB_class", b"")
        matlab_class = matlab_class.decode() if isinstance(matlab_class, bytes) else str(matlab_class)
        if data.dtype == h5py.ref_dtype:
            cell = np.empty(data.T.shape, dtype=object)
            for index, ref in np.ndenumerate(data.T):
                cell[index] = value(node.file[ref])
            return cell
        if matlab_class == "char":
            return "".join(map(chr, np.asarray(data).T.reshape(-1)))
        return np.asarray(data).T

    with h5py.File(path, "r") as f:
        return {name: value(node) for name, node in f.items() if not name.startswith("#")}
