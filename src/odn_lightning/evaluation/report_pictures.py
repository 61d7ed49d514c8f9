"""The pictures of a report and of validation: the faces of a batch as pictures show them, the worst
faces, prediction grids, Figure 6 of P and the calibrated occlusion panels, each titled with the
network as Table 4 names it; `log_image` sends them to the loggers that take pictures.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import lightning as L
import numpy as np
import torch
import torch.distributed as dist
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

from ..crop import from_normalised
from ..datatypes import Batch, EvalStepOutput
from ..imagenet import denormalise_image
from .occlusion_panels import figure6_figure, occlusion_probability_picture
from .plots import prediction_figure, render_rgb


def log_image(trainer: L.Trainer, key: str, image: np.ndarray, step: int | None = None) -> None:
    """An RGB picture to every logger that takes pictures (W&B, TensorBoard)."""
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[image], step=step)
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(key, image, global_step=step or 0, dataformats="HWC")


def batch_faces(batch: Batch, outputs: EvalStepOutput, chosen: Sequence[int]) -> list[dict]:
    """The faces at positions `chosen` of a batch, as the pictures show them: each a dict of `image`
    (H, W, 3) uint8, the crop; `predicted` and `target` (L, 2) in the crop's pixels; `nme` and `index`;
    and, where the batch or the network has them, `occlusion_map` P (h, w), `occluder_mask` (H, W) and
    `visible` (L,) bool (only where every face of the batch has visibility flags)."""
    chosen = [int(i) for i in chosen]
    if not chosen:
        return []
    size = batch["image"].shape[-1]
    images = [denormalise_image(batch["image"][i].float().cpu().numpy()) for i in chosen]
    predicted = from_normalised(outputs["landmarks"][chosen].detach().float().cpu().numpy(), size)
    target = from_normalised(batch["landmarks"][chosen].float().cpu().numpy(), size)
    nme = outputs["nme"][chosen].detach().cpu().numpy()
    faces = [
        {
            "image": images[k],
            "predicted": predicted[k],
            "target": target[k],
            "nme": float(nme[k]),
            "index": int(batch["index"][i]),
        }
        for k, i in enumerate(chosen)
    ]
    if "occlusion_map" in outputs:
        maps = outputs["occlusion_map"][chosen, 0].detach().float().cpu().numpy()
        for face, occlusion in zip(faces, maps, strict=True):
            face["occlusion_map"] = occlusion
    if "occlusion_probability" in outputs:
        probabilities = outputs["occlusion_probability"][chosen].detach().float().cpu().numpy()
        for face, probability in zip(faces, probabilities, strict=True):
            face["occlusion_probability"] = probability
    if "occluder_mask" in batch:
        for face, mask in zip(faces, batch["occluder_mask"][chosen].cpu().numpy(), strict=True):
            face["occluder_mask"] = mask
    if bool(torch.as_tensor(batch["has_visibility"]).all()):
        for face, flags in zip(faces, batch["visible"][chosen].cpu().numpy().astype(bool), strict=True):
            face["visible"] = flags
    return faces


def worst_rank(face: Mapping) -> tuple[float, int]:
    """A face's place among the worst (lower: worse): highest NME first, a face without a finite NME
    (a failure) before any, ties by face index."""
    nme = face["nme"]
    return (-nme if math.isfinite(nme) else -math.inf, face["index"])


def worst_first(faces: Sequence[Mapping], count: int) -> list[Mapping]:
    """The `count` faces with the highest NME, in `worst_rank` order; a face seen twice (DDP pads its
    last batch with faces already seen) is kept once."""
    unique = {face["index"]: face for face in faces}.values()
    return sorted(unique, key=worst_rank)[:count]


def face_captions(faces: Sequence[Mapping]) -> list[str]:
    """Each face's index in its split (predictions.csv's `index`) and NME."""
    return [
        f"face {face['index']}: NME {face['nme']:.3f}"
        if math.isfinite(face["nme"])
        else f"face {face['index']}: NME not finite"
        for face in faces
    ]


def prediction_picture(faces: Sequence[Mapping], title: str) -> np.ndarray:
    """The faces' crops with ground truth and prediction, each under its index and NME."""
    flags = [face.get("visible") for face in faces]
    visible = None
    if any(f is not None for f in flags):
        # A face without flags shows all its points as visible, as the pixels metrics count them.
        visible = np.stack(
            [
                f if f is not None else np.ones(len(face["target"]), bool)
                for f, face in zip(flags, faces, strict=True)
            ]
        )
    figure = prediction_figure(
        np.stack([face["image"] for face in faces]),
        np.stack([face["predicted"] for face in faces]),
        np.stack([face["target"] for face in faces]),
        captions=face_captions(faces),
        visible=visible,
        title=title,
    )
    return render_rgb(figure)


def figure6_picture(faces: Sequence[Mapping], title: str) -> np.ndarray:
    """The paper's Figure 6 of the faces (which must carry an `occlusion_map`), one a row."""
    figure = figure6_figure(
        np.stack([face["image"] for face in faces]),
        np.stack([face["occlusion_map"] for face in faces]),
        [face.get("occluder_mask") for face in faces],
        [face["target"] for face in faces],
        [face.get("visible") for face in faces],
        title=title,
        row_labels=[f"face {face['index']}" for face in faces],
    )
    return render_rgb(figure)


def network_name(pl_module: L.LightningModule) -> str:
    """The network as the paper's Table 4 names it (`ODN.variant`: BRNet, +GM+DM, ODN (GM+LM+DM), ...),
    "w/o L1" added where the objective leaves P unpenalised (eta = 0); else its class name."""
    net = getattr(pl_module, "net", pl_module)
    name = getattr(net, "variant", type(net).__name__)
    objective = getattr(pl_module, "objective", None)
    if getattr(net, "use_dm", False) and getattr(objective, "eta", None) == 0:
        name += " w/o L1"
    return name


def network_fact(pl_module: L.LightningModule) -> str:
    """report.md's network line: its name and the class and switches that built it."""
    net = getattr(pl_module, "net", pl_module)
    return f"{network_name(pl_module)} (class {type(net).__name__}: {net.extra_repr()})"


def face_pictures(
    faces: Sequence[Mapping], heading: str, what: str, normalisation: str
) -> dict[str, np.ndarray]:
    """A prediction grid of the faces and, where the network gives an occlusion map, their Figure-6
    panels, and where it has a calibrated occlusion output, its panels: kind -> RGB picture, titled `heading` (network, split) and `what` the faces are."""
    pictures = {
        "predictions": prediction_picture(faces, f"{heading}: {what}\nNME normalised by {normalisation}")
    }
    if all("occlusion_map" in face for face in faces):
        pictures["figure6"] = figure6_picture(faces, f"{heading}: occlusion map P\nof {what}")
    if all("occlusion_probability" in face for face in faces):
        pictures["occlusion"] = occlusion_probability_picture(
            faces, f"{heading}: calibrated occlusion\nof {what}"
        )
    return pictures


def gather(objects: list) -> list:
    """Every process's objects, on every process (a no-op without torch.distributed)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return objects
    gathered: list[list] = [[] for _ in range(dist.get_world_size())]
    dist.all_gather_object(gathered, objects)
    return [item for part in gathered for item in part]
