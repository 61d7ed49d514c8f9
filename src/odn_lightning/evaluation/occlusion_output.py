"""The occlusion map P and the per-landmark occlusion output, as the module evaluates them per split:
how well P finds occluders, the face and occluded landmarks (`metrics`' AUROCs, `LandmarkOcclusionScores`);
the raw scores (1 - P at the annotated points) collected; at the end of each validation the
calibration (`calibration.calibrate`) refitted on the validation split's flags and kept in the
`calibration` buffer, so that every checkpoint holds the calibration of its own weights; on each test
split, the figures of the calibrated probability.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from ..datatypes import Batch
from .calibration import OcclusionCalibration, calibrate, exact_scores, uncalibrated
from .metrics import first_of_each_index
from .occlusion_metrics import FaceAUROC, FaceOccluderAUROC, OccluderAUROC, landmark_occlusion_scores
from .occlusion_scores import LandmarkOcclusionScores

# The keys of the calibrated probability's figures (`val/...` the calibration's own, `test/<split>/...`).
PREFIX = "occlusion_probability_"


class PointScores(Metric):
    """Every point's raw occlusion score and flag, per face with its dataset index; gathered across
    processes, each face once (DistributedSampler pads with repeats)."""

    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        for name in ("scores", "occluded", "indices"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(self, scores: Tensor, occluded: Tensor, index: Tensor) -> None:
        """scores, occluded (B, L); index (B,) the faces' dataset indices."""
        self.scores.append(scores.detach().float())
        self.occluded.append(occluded.bool())
        self.indices.append(index.to(device=scores.device, dtype=torch.int64))

    def compute(self) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        if isinstance(self.scores, list) and not self.scores:
            return torch.zeros(0), torch.zeros(0, dtype=torch.bool)
        keep = first_of_each_index(dim_zero_cat(self.indices))
        return dim_zero_cat(self.scores)[keep], dim_zero_cat(self.occluded)[keep]


class OcclusionOutput(nn.Module):
    """Per split: the occlusion map's metrics and the points the calibration is fitted and measured
    on. `calibration` (float64, `FIELDS`) is a persistent buffer; a checkpoint written before it
    existed loads as uncalibrated."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("calibration", uncalibrated())
        self.map_metrics = nn.ModuleDict()
        self.points = nn.ModuleDict()
        self._register_load_state_dict_pre_hook(self._fill_missing)

    @staticmethod
    def _fill_missing(state_dict, prefix, *args, **kwargs) -> None:
        state_dict.setdefault(prefix + "calibration", uncalibrated())

    def add_split(self, split: str) -> None:
        if split not in self.points:
            self.points[split] = PointScores()
            self.map_metrics[split] = nn.ModuleDict(
                {
                    "occluder_auroc": OccluderAUROC(),
                    "occluder_auroc_face": FaceOccluderAUROC(),
                    "face_auroc": FaceAUROC(),
                    "landmark_occlusion": LandmarkOcclusionScores(),  # AUROC, precision, recall, AP
                }
            )

    def update(self, outputs: dict[str, Tensor], batch: Batch) -> dict[str, Tensor]:
        """Adds a batch to its split's metrics, each where its inputs exist (the map's need P; the face
        region only the landmarks; occluder masks and visibility flags not every dataset has). Returns
        what the step passes on: `landmark_occlusion`, each point's raw score (B, L) (`raw_scores`),
        and, with a calibration, `occlusion_probability`, its calibrated probability (B, L)."""
        split = batch["split"][0]
        metrics, landmarks, index = self.map_metrics[split], batch["landmarks"], batch["index"]
        occlusion_map = outputs.get("occlusion_map")
        if occlusion_map is not None:
            metrics["face_auroc"].update(occlusion_map, landmarks, batch["image"].shape[-1], index=index)
            if "occluder_mask" in batch:
                mask = batch["occluder_mask"]
                metrics["occluder_auroc"].update(occlusion_map, mask, index=index)
                metrics["occluder_auroc_face"].update(occlusion_map, mask, landmarks, index=index)
        scores = raw_scores(outputs, landmarks)
        has_visibility = torch.as_tensor(batch["has_visibility"], dtype=torch.bool)
        if bool(has_visibility.any()):
            visible, located = batch["visible"], batch.get("located")
            keep = has_visibility  # per face; per point where some points have no position
            if located is not None and not bool(located.all()):
                keep = has_visibility[:, None].to(located.device) & located.bool()
            metrics["landmark_occlusion"].update(scores, visible, keep, index=index)
            counted = scores if keep.dim() == 1 else scores.masked_fill(~keep.to(scores.device), float("nan"))
            self.collect(split, counted, visible, has_visibility, index)
        step = {"landmark_occlusion": scores}
        probability = self.probability(scores)
        if probability is not None:
            step["occlusion_probability"] = probability
        return step

    def compute(self, split: str, stage: str, epoch: int, fit: bool) -> dict[str, Tensor]:
        """The split's numbers to log (NaN ones, undefined, left out), its metrics reset: the map's, then
        at validation the refitted calibration's figures (`fit`), at test the calibrated probability's."""
        values: dict[str, Tensor] = {}
        for name, metric in self.map_metrics[split].items() if split in self.map_metrics else ():
            if metric.update_called:
                value = metric.compute()  # one number, or a dict of them (landmark_occlusion)
                measured = value if isinstance(value, dict) else {name: value}
                values.update({k: v for k, v in measured.items() if not torch.isnan(v)})
                metric.reset()
        if stage == "val":
            return values | self.end_validation(split, epoch, fit)
        return values | self.end_test(split)

    @property
    def fitted(self) -> OcclusionCalibration | None:
        return OcclusionCalibration.from_tensor(self.calibration)

    def probability(self, scores: Tensor) -> Tensor | None:
        """Calibrated probabilities of raw scores 1 - P (any shape), or None without a calibration."""
        fitted = self.fitted
        return None if fitted is None else fitted.probability(scores)

    def collect(
        self, split: str, scores: Tensor, visible: Tensor, has_visibility: Tensor, index: Tensor
    ) -> None:
        """Adds the faces with visibility flags (has_visibility (B,)) of a batch of `split`."""
        keep = has_visibility.to(scores.device).bool()
        if bool(keep.any()):
            self.points[split].update(scores[keep], ~visible[keep].bool(), index[keep])

    def _collected(self, split: str) -> tuple[Tensor, Tensor] | None:
        points = self.points[split] if split in self.points else None
        if points is None or not points.update_called:
            return None
        scores, occluded = points.compute()
        points.reset()
        counted = ~scores.isnan()  # a point without a position (NaN) is neither fitted nor measured
        return scores[counted], occluded[counted]

    def end_validation(self, split: str, epoch: int, fit: bool = True) -> dict[str, Tensor]:
        """Refit on `split`'s points (unless `fit` is False: Lightning's sanity check sees only a few
        batches) and return the calibration's figures to log; without flags, the buffer is left as it is."""
        collected = self._collected(split)
        if collected is None or not fit:
            return {}
        fitted = calibrate(*collected, epoch=epoch)
        self.calibration.copy_((fitted.to_tensor() if fitted else uncalibrated()).to(self.calibration))
        return (
            {}
            if fitted is None
            else figures(fitted.probability(collected[0]), collected[1], fitted.threshold)
        )

    def end_test(self, split: str) -> dict[str, Tensor]:
        """The figures of the calibrated probability on a test split (none without a calibration)."""
        collected, fitted = self._collected(split), self.fitted
        if collected is None or fitted is None:
            return {}
        return figures(fitted.probability(collected[0]), collected[1], fitted.threshold)


def raw_scores(outputs: dict[str, Tensor], landmarks: Tensor) -> Tensor:
    """Each point's raw occlusion score (B, L) in [0, 1], higher: more likely occluded: the visibility
    head's sigmoid where the network has the head (`occlusion_logit`), else 1 - P read at the points
    (`landmarks` (B, L, 2), crop frame; `occlusion_metrics.landmark_occlusion_scores`)."""
    if "occlusion_logit" in outputs:
        return torch.sigmoid(outputs["occlusion_logit"].detach().float())
    return landmark_occlusion_scores(outputs["occlusion_map"], landmarks)


def figures(probability: Tensor, occluded: Tensor, threshold: float) -> dict[str, Tensor]:
    """`occlusion_probability_<name>` of `exact_scores`, those defined (NaN left out, as undefined)."""
    if not bool(occluded.any()) or bool(occluded.all()):
        return {}
    numbers = exact_scores(probability, occluded, threshold)
    return {PREFIX + k: torch.tensor(v) for k, v in numbers.items() if v == v}
