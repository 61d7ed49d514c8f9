"""Readers of the benchmarks' published layouts, one module per layout; each returns `FaceRecord`s
with 0-based pixel landmarks (see `..records`) and says in its docstring which reference project's
convention it follows.

- `w300`: 300W folders (an image and a `.pts` per face; also the synthetic faces' layout)
- `wflw`: WFLW list files
- `cofw`: COFW `.mat` files (images inside)
- `cofw68`: COFW-68 `{i}_points.mat` paired with the COFW test images
- `aflw`: AFLW's 19-point `AFLWinfo_release.mat`
- `hrnet_csv`: HRNet-Facial's CSV files (300W, AFLW, WFLW)
- `merl_rav`: MERL-RAV's `.pts` folders, each point's visibility in its signs
- `landmarks_csv`: the suite's plain CSV for datasets of your own (image, x0, y0, ..., [visible], [box])
- `matlab`: the `.mat` loader (v5/v7 and v7.3) the MATLAB layouts share

A data config names a reader in a split source, `{reader: NAME, ...arguments}`; `READERS` maps those
names to readers, and the arguments named in `PATH_ARGUMENTS` are paths relative to `data.root`.
A source given as a plain string is a 300W folder.
"""

from __future__ import annotations

from .aflw import read_aflw_info
from .cofw import read_cofw_mat
from .cofw68 import read_cofw68
from .hrnet_csv import read_hrnet_csv
from .landmarks_csv import read_landmarks_csv
from .merl_rav import read_merl_rav
from .w300 import read_pts_folder
from .wflw import read_wflw

READERS = {
    "wflw": read_wflw,
    "cofw_mat": read_cofw_mat,
    "cofw68": read_cofw68,
    "hrnet_csv": read_hrnet_csv,
    "aflw_info": read_aflw_info,
    "landmarks_csv": read_landmarks_csv,
    "merl_rav": read_merl_rav,
}
PATH_ARGUMENTS = (
    "annotation_file",
    "image_root",
    "mat_file",
    "image_dir",
    "csv_file",
    "points_dir",
    "full_list",
    "folder",
)

__all__ = [
    "PATH_ARGUMENTS",
    "READERS",
    "read_aflw_info",
    "read_cofw68",
    "read_cofw_mat",
    "read_hrnet_csv",
    "read_landmarks_csv",
    "read_merl_rav",
    "read_pts_folder",
    "read_wflw",
]
