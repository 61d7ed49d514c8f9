"""What a checkpoint may ask to be built: the suite's own networks, objectives and data module.

A checkpoint stores its run's config; `eval` rebuilds the model and, by default, the data pipeline
from it. A `_target_` in that config is a string from a file that anybody may have edited, so it is
looked up here, never imported: a name outside these tables, or an argument that is not a plain value,
refuses the checkpoint in one line (a crafted `net: {_target_: builtins.open, ...}` never runs).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..data.datamodule import LandmarkDataModule
from ..models import ODN, HeatmapNet
from .checkpoints import CheckpointError
from .heatmap_objective import HeatmapObjective
from .module import LandmarkModule
from .objective import LandmarkObjective

NETWORKS: dict[str, Callable[..., Any]] = {
    "odn_lightning.models.ODN": ODN,
    "odn_lightning.models.HeatmapNet": HeatmapNet,
}
# The second names are those checkpoints written before training/ was a room (the modules were
# odn_lightning.losses and odn_lightning.module): their runs evaluate as they did.
OBJECTIVES: dict[str, Callable[..., Any]] = {
    "odn_lightning.training.objective.LandmarkObjective": LandmarkObjective,
    "odn_lightning.losses.LandmarkObjective": LandmarkObjective,
    "odn_lightning.training.heatmap_objective.HeatmapObjective": HeatmapObjective,
}
MODULES: dict[str, Callable[..., Any]] = {
    "odn_lightning.training.module.LandmarkModule": LandmarkModule,
    "odn_lightning.module.LandmarkModule": LandmarkModule,
}
DATA_MODULES: dict[str, Callable[..., Any]] = {
    "odn_lightning.data.datamodule.LandmarkDataModule": LandmarkDataModule
}
# The module's own settings an evaluation needs (the optimiser and schedule are training's).
MODULE_SETTINGS = ("scheme", "nme_normalisation", "nme_thresholds", "channels_last", "image_size")


def _plain(value: Any, key: str, where: str, nested: bool) -> Any:
    """`value` if it is plain data (numbers, strings, lists, and mappings where `nested`)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(item, key, where, nested) for item in value]
    if nested and isinstance(value, Mapping):
        if "_target_" in value:
            raise CheckpointError(f"{where}: {key} asks to build {value['_target_']!r}; refused")
        return {str(k): _plain(v, f"{key}.{k}", where, nested) for k, v in value.items()}
    raise CheckpointError(f"{where}: {key} holds a {type(value).__name__}, not a plain value; refused")


def build(node: Mapping, table: Mapping[str, Callable[..., Any]], key: str, where: str, **given: Any) -> Any:
    """Build `node` ({_target_: name, arguments...}) with the callable `table` has for its name."""
    if not isinstance(node, Mapping):
        raise CheckpointError(f"{where}: {key} is not a config section; refused")
    target = node.get("_target_")
    if target not in table:
        raise CheckpointError(
            f"{where}: {key} names {target!r}, which is not one of the suite's ({', '.join(table)}); refused"
        )
    arguments = {
        # Mappings: the data module's settings, and the module's per-split nme_normalisation.
        name: _plain(value, f"{key}.{name}", where, nested=table in (DATA_MODULES, MODULES))
        for name, value in node.items()
        if not str(name).startswith("_") and name not in given
    }
    return table[target](**arguments, **given)


def build_model(model: Mapping, where: str) -> LandmarkModule:
    """The LandmarkModule a run config describes, for evaluation: network and objective from the
    registry, no optimiser, no pretrained-weight download (the weights come from the checkpoint)."""
    if not isinstance(model, Mapping) or "net" not in model:
        raise CheckpointError(f"{where}: the stored run config has no model.net; refused")
    net = build(model["net"], NETWORKS, "model.net", where, pretrained=False, backbone_checkpoint=None)
    objective = (
        build(model["objective"], OBJECTIVES, "model.objective", where) if "objective" in model else None
    )
    settings = {name: model[name] for name in MODULE_SETTINGS if name in model}
    node = {"_target_": model.get("_target_"), **settings}
    return build(node, MODULES, "model", where, net=net, objective=objective)


def build_trained_model(model: Mapping, state_dict: Mapping, where: str) -> LandmarkModule:
    """`build_model` with a checkpoint's weights loaded; weights that do not fit refuse it in one line."""
    module = build_model(model, where)
    try:
        module.load_state_dict(state_dict)
    except RuntimeError as err:
        raise CheckpointError(
            f"{where}: its weights do not fit the network its config describes ({err})"
        ) from err
    return module


def build_datamodule(data: Mapping, where: str) -> LandmarkDataModule:
    """The data module a run config describes (plain settings only)."""
    return build(data, DATA_MODULES, "data", where)
