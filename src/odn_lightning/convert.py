"""Re-export a dataset: `python -m odn_lightning.convert data=NAME [data.root=PATH] out=DIR format=pts|csv`.

Any dataset the suite reads (every `data=` option, or a config of your own) is written, split by
split, in one of two layouts the suite reads back:

- `format=pts`: the 300W layout, a folder per split holding an image and a `.pts` per face (1-based,
  as iBUG's tools write them), plus `.occ` occlusion flags and `masks/` occluder masks where the
  dataset has them. A face of an image with several faces gets an image of its own (a link to the
  same file), as the layout has one `.pts` per image; images in other formats than .jpg, .jpeg, .png
  and .bmp (which the layout's reader lists) are re-encoded as PNG. Face boxes are not kept (the
  layout has none).
- `format=csv`: the plain CSV (`reader: landmarks_csv`), `<split>.csv` per split in 0-based pixels
  with `visible<i>` and box columns where every face of the split has them, and the images under
  `images/` (by their path under data.root), each once however many faces or splits name it.

Neither keeps WFLW's attribute flags or HRNet's crop parameters (scale, centre, box_size). A scheme
that is not built in is written beside the data as `scheme.yaml` (`data.scheme=DIR/scheme.yaml`).

Images are hard-linked by default (`images=link`: no second copy on disk, and unlike a symbolic link
the file stays when the source moves), falling back to a copy where the file system refuses a link
(another disk); `images=copy` always copies. Faces are read as training reads them (`checked_records`):
bad faces stop the conversion with their report, or are left out with `data.on_bad_sample=skip`.
Everything is written into a temporary folder beside `out`, which is renamed onto `out` once every
split is complete: a failure or a kill leaves no half-written output. An existing, non-empty `out` is
refused unless `overwrite=true` (then replaced whole, once the new one is complete).
"""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from .config import CONFIG_DIR
from .config_checks import ConfigError, check_config
from .data.conversion import FORMATS, IMAGE_MODES, write_dataset
from .data.datamodule import LandmarkDataModule
from .runs import run_reporting_user_errors


def _check_options(cfg: DictConfig) -> None:
    if OmegaConf.is_missing(cfg, "out") or cfg.out in (None, ""):
        raise ConfigError("out=???: not set; give the folder to write, e.g. out=/data/converted")
    for key, allowed in (("format", FORMATS), ("images", IMAGE_MODES)):
        if cfg[key] not in allowed:
            raise ConfigError(
                f"{key}={cfg[key]}: expected one of {', '.join(allowed)} (e.g. {key}={allowed[0]})"
            )
    if not isinstance(cfg.overwrite, bool):
        raise ConfigError(f"overwrite={cfg.overwrite}: expected true or false")
    splits = cfg.splits
    if splits is None:
        return
    if not isinstance(splits, ListConfig) or not splits or any(s not in cfg.data.splits for s in splits):
        shown_splits = OmegaConf.to_container(splits) if isinstance(splits, ListConfig) else splits
        raise ConfigError(
            f"splits={shown_splits}: expected a list of data.splits ({', '.join(cfg.data.splits)}), or null "
            "for all of them"
        )


def convert(cfg: DictConfig) -> dict[str, int]:
    """Write the dataset's splits to `out` (see the module's docstring); returns the faces per split."""
    check_config(cfg)
    _check_options(cfg)
    datamodule: LandmarkDataModule = instantiate(cfg.data)
    datamodule.prepare_data()
    splits = list(cfg.splits) if cfg.splits is not None else list(cfg.data.splits)
    out = Path(str(cfg.out)).expanduser().absolute()
    counts, lines, read_back = write_dataset(datamodule, splits, out, cfg.format, cfg.images, cfg.overwrite)
    for line in lines:
        print(line)
    print(read_back)
    return counts


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="convert")
def main(cfg: DictConfig) -> None:
    run_reporting_user_errors(convert, cfg)


if __name__ == "__main__":
    main()
