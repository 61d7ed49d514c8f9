"""Export entry point: `python -m odn_lightning.export ckpt_path=PATH format=onnx|torchscript` (or
`odn-export`).

The checkpoint is read weights-only and its network rebuilt from the suite's registry (as `eval`
does); the network is written as ONNX (dynamic batch) or TorchScript with its metadata beside it
(`odn_lightning.inference.exporting`), into the run directory unless `output_dir=` says otherwise. With
`verify=true` the exported model is run on random crops, batch 1 and 3, through what a consumer would
use (ONNX Runtime with the metadata; the TorchScript file), and compared with the PyTorch network.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from . import runs
from .config import CONFIG_DIR
from .config_checks import ConfigError
from .training.checkpoints import CheckpointError


def _checked(cfg: DictConfig) -> tuple[str, int, float]:
    from .inference.export_metadata import FORMATS

    if OmegaConf.is_missing(cfg, "ckpt_path") or cfg.ckpt_path in (None, ""):
        raise CheckpointError("no checkpoint given: pass ckpt_path=PATH/TO/run/checkpoints/last.ckpt")
    fmt = cfg.get("format")
    if fmt not in FORMATS:
        raise ConfigError(f"format={fmt}: expected one of {', '.join(FORMATS)} (e.g. format=onnx)")
    opset = cfg.get("opset")
    if not isinstance(opset, int) or isinstance(opset, bool) or not 7 <= opset <= 30:
        raise ConfigError(f"opset={opset}: expected an ONNX opset number (e.g. opset=18)")
    tolerance = cfg.get("verify_tolerance", 1e-4)
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not tolerance > 0:
        raise ConfigError(
            f"verify_tolerance={tolerance}: expected a positive number (e.g. verify_tolerance=1e-4)"
        )
    if not isinstance(cfg.get("verify"), bool):
        raise ConfigError(f"verify={cfg.get('verify')}: expected true or false")
    name = cfg.get("name")
    if name is not None and (
        not isinstance(name, str) or not name.strip() or "/" in name or name.startswith(".")
    ):
        raise ConfigError(f"name={name}: expected a file name without folder or extension (e.g. name=odn)")
    return fmt, opset, float(tolerance)


def export(cfg: DictConfig) -> dict[str, object]:
    from .inference.exporting import ExportableNetwork, export_model
    from .inference.model import load_trained_model
    from .inference.verification import verify_export

    fmt, opset, tolerance = _checked(cfg)
    runs.apply_extras(cfg)
    model = load_trained_model(cfg.ckpt_path)
    output_dir = Path(cfg.output_dir)
    path, metadata = export_model(model, output_dir, fmt, name=cfg.get("name"), opset=opset)
    diff = verify_export(model, path, fmt) if cfg.verify else None
    if diff is not None and not diff <= tolerance:
        for written in (path, metadata):
            written.unlink(missing_ok=True)
        raise runs.RunError(
            f"the exported {fmt} model differs from the PyTorch network by up to {diff:.3g} "
            f"(> verify_tolerance={tolerance:g}) on random crops; it was removed"
        )
    notes = {
        "network": f"{model.variant} ({model.image_size} px crops)",
        "model": str(path),
        "outputs": ", ".join(ExportableNetwork(model.net).output_names),
        "metadata": str(metadata),
        "checkpoint": str(cfg.ckpt_path),
        "verified": "no (verify=false)"
        if diff is None
        else f"max abs diff {diff:.3g} vs eager (batch 1 and 3)",
    }
    runs.print_summary("odn-export", {}, notes)
    return {"model": path, "metadata": metadata, "max_abs_diff": diff}


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="export")
def main(cfg: DictConfig) -> None:
    runs.run_reporting_user_errors(export, cfg)


if __name__ == "__main__":
    main()
