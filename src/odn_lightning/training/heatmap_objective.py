"""The heatmap networks' objective (issue 28): mean squared error between each landmark's heatmap and a
Gaussian at its position, as HRNet-Facial trains (lib/core/function.py: `nn.MSELoss` over every
pixel of every map) and mmpose weights it (`KeypointMSELoss(use_target_weight=True)`: a point without
a position in the crop, or outside it, adds nothing). Targets are drawn by models/heatmaps.py at the
network's map size, sigma scaled from HRNet-Facial's 1.5 at 64 x 64. The visibility head, where the
network has one, is supervised by the flags as ODN's is (`occlusion_weight`)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from ..models.heatmaps import gaussian_heatmaps, sigma_for, target_weights
from .objective import add_visibility_supervision, with_loss

ENCODINGS = ("unbiased", "hrnet")


class HeatmapObjective(nn.Module):
    """`forward(outputs, target, net, batch)` -> {"loss", "heatmap_mse"[, "visibility_bce"]}.

    Args:
        sigma: the Gaussian's sigma, in heatmap pixels, at a `sigma_at` x `sigma_at` map (HRNet-Facial:
            1.5 at 64, i.e. 256 px crops; its 300W recipe uses 1.0); other map sizes scale it.
        sigma_at: the map side `sigma` is given for.
        encoding: "unbiased" (the Gaussian at the exact position, DARK's) or "hrnet" (at the position
            rounded to a pixel, HRNet-Facial's).
        occlusion_weight: weight of the visibility head's supervision (0: none).
    """

    def __init__(
        self,
        sigma: float = 1.5,
        sigma_at: int = 64,
        encoding: str = "unbiased",
        occlusion_weight: float = 0.0,
    ) -> None:
        super().__init__()
        if encoding not in ENCODINGS:
            raise ValueError(f"model.objective.encoding={encoding!r}; choose one of {', '.join(ENCODINGS)}")
        if not sigma > 0:
            raise ValueError(f"model.objective.sigma={sigma!r}; give a positive width in heatmap pixels")
        if not occlusion_weight >= 0:
            raise ValueError(f"model.objective.occlusion_weight={occlusion_weight!r}; give 0 or more")
        self.sigma, self.sigma_at, self.encoding, self.occlusion_weight = (
            sigma,
            sigma_at,
            encoding,
            occlusion_weight,
        )

    def forward(
        self, outputs: Mapping[str, Tensor], target: Tensor, net: nn.Module, batch: Mapping | None = None
    ) -> dict[str, Tensor]:
        heatmaps = outputs["heatmaps"].float()
        side = heatmaps.shape[-1]
        located = None if batch is None else batch.get("located")
        with torch.no_grad():
            wanted = gaussian_heatmaps(
                target.float(), side, sigma_for(side, self.sigma, self.sigma_at), encoding=self.encoding
            )
            weights = target_weights(target.float(), None if located is None else located.float())
        per_map = (heatmaps - wanted).square().mean(dim=(2, 3))  # (B, L)
        terms = {"heatmap_mse": (per_map * weights.to(per_map)).mean()}
        add_visibility_supervision(terms, outputs, batch, located, self.occlusion_weight)
        return with_loss(terms)

    def parameter_groups(self, net: nn.Module) -> None:
        """None: no weight penalty of its own, so the optimiser takes every parameter in one group (its
        own weight decay, if any), as for eq. 3's objective with weight_penalty=loss."""
        return None

    def extra_repr(self) -> str:
        return f"sigma={self.sigma} at {self.sigma_at}, encoding={self.encoding}"
