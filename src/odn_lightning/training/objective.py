"""The training objective of ODN (paper §3.5, eq. 3) and the nuclear norm with its subgradient (eq. 8).

Coordinates are in the crop's normalised frame: x = -1 at the crop's left edge and +1 at its right
edge, y likewise from top to bottom. The coordinate term is therefore in those units: a 1-pixel error
on every coordinate of a 128-px crop costs (2/128)^2 per coordinate, about 0.033 in total for 68 points.
The regulariser weights below (the paper's defaults) are relative to that scale, so they act more
strongly here than on a pixel-unit loss; rescale them if the coordinate convention changes.

Eq. (3), with each term returned by `LandmarkObjective` under the name in brackets:

    mean_b ||S_b - S*_b||_2^2                    [coord_l2]       weight 1
    + beta   * ||M||_*                           [nuclear_M]      structural matrix of the LM
    + gamma  * ||M||_F^2                         [frobenius_M]
    + alpha  * sum_conv ||W_conv||_F^2           [frobenius_conv] every conv weight of the network
    + lambda * ||W_fc||_F^2                      [frobenius_fc]   the final (landmark) FC weight
    + eta    * mean_b ||P_b||_1                  [l1_P]           occlusion probability map of the DM

How the objective finds those tensors (the "regularised network" protocol; every method is optional):

* ``net.structural_matrix() -> Tensor | None``: M. Absent or None: no nuclear_M / frobenius_M terms.
* ``net.conv_weights() -> Iterable[Tensor]``: the W_conv. Absent: the weights of every ``nn.ConvNd``
  sub-module, so the alpha term works for any network.
* ``net.fc_weight() -> Tensor | None``: W_fc. Absent: the weight of ``get_classifier()`` of the
  network or of its first sub-module that has one (timm models), if that is an ``nn.Linear``; else no
  frobenius_fc term.
* P is ``outputs["occlusion_map"]`` (B, 1, h, w); absent: no l1_P term.

Beyond the paper, off by default (`occlusion_weight`): supervision of P where labels exist, the term
[occlusion_bce] `occlusion_supervision` between P and what the batch says is visible (each annotated
point's flag; on the embedded faces also the occluder masks at P's resolution). The paper trains P
without labels; its sign is then free (experiments/mechanism), which this term fixes. A network with
the visibility head (`models.visibility`) has its occlusion logits trained by the same weight, the term
[visibility_bce] `visibility_supervision`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable
from torch.nn import functional as F

# What the coordinate term measures: the crop's normalised frame ([-1, 1] across the crop) or crop
# pixels. It sets the scale of the L2 term against the regularisers, whose weights are the paper's.
COORDINATE_UNITS = ("normalised", "pixels")
# Where the squared-Frobenius terms act: in the loss (their gradient 2 * weight * W joins the data
# gradient; under SGD that is exactly weight decay, under Adam it is normalised with it) or as the
# optimiser's decoupled weight decay (AdamW, Loshchilov & Hutter 2019), per parameter group.
WEIGHT_PENALTIES = ("loss", "decoupled")

# Newton-Schulz schedule for the polar factor (see `polar_factor_newton_schulz`). The quintic steps
# grow small singular values ~3.4x per step; the cubic steps then converge every singular value that
# reached [0.68, 1.2] to 1 quadratically. With 6 + 6 steps, singular values above ~2e-4 of the scale
# bound converge to float32 precision; much smaller ones (float32 rounding noise is ~1e-7) are mapped
# to nearly 0, i.e. treated as zero, as U sign(Sigma) V^T does for a rank-deficient M.
_QUINTIC_STEPS = 6
_CUBIC_STEPS = 6
_QUINTIC_COEFFICIENTS = (3.4445, -4.7750, 2.0315)  # from Muon (Jordan et al., 2024): fast, not convergent


def coordinate_l2(pred: Tensor, target: Tensor, located: Tensor | None = None) -> Tensor:
    """Mean over the batch of the squared L2 norm of the (L*2)-vector of coordinate errors; points
    without a position (located (B, L) False: MERL-RAV's self-occluded) add nothing."""
    squared = (pred - target).pow(2)
    if located is not None:
        squared = squared * located.to(squared.device, squared.dtype)[..., None]
    return squared.flatten(1).sum(dim=1).mean()


def _binary_cross_entropy(probability: Tensor, target: Tensor, counted: Tensor | None = None) -> Tensor:
    """Mean BCE of probabilities against targets in [0, 1], in float32 (safe under autocast), over the
    entries `counted` (bool, as target; None: all)."""
    p = probability.float().clamp(1e-6, 1.0 - 1e-6)
    target = target.float()
    loss = -(target * p.log() + (1.0 - target) * (1.0 - p).log())
    return loss.mean() if counted is None else loss[counted].mean()


def occlusion_supervision(
    occlusion_map: Tensor,
    landmarks: Tensor,
    visible: Tensor,
    has_visibility: Tensor,
    occluder_mask: Tensor | None = None,
    located: Tensor | None = None,
) -> Tensor | None:
    """Binary cross-entropy of P (B, 1, h, w; 1 keeps a cell's features, 0 suppresses them) against
    visibility: at the annotated points of the faces with flags (has_visibility (B,)), P read
    bilinearly at each point (landmarks (B, L, 2) in the crop frame, as `occlusion_metrics.landmark_occlusion_scores`
    reads it) against its flag (visible (B, L): 1); and, where occluder masks exist ((B, S, S), non-zero
    on occluders), every cell of P against the share of it no occluder covers. Points without a position
    (located (B, L) False) are not read. The mean of the parts present; None when there is nothing to
    supervise."""
    parts = []
    keep = torch.as_tensor(has_visibility, device=occlusion_map.device).bool()
    if bool(keep.any()):
        grid = landmarks[keep].to(occlusion_map.dtype)[:, :, None, :]
        at_points = F.grid_sample(
            occlusion_map[keep], grid, mode="bilinear", padding_mode="border", align_corners=False
        )[:, 0, :, 0]
        counted = None if located is None else located[keep].to(at_points.device, torch.bool)
        parts.append(_binary_cross_entropy(at_points, visible[keep], counted))
    if occluder_mask is not None:
        covered = F.adaptive_avg_pool2d((occluder_mask > 0).float()[:, None], occlusion_map.shape[-2:])
        parts.append(_binary_cross_entropy(occlusion_map, 1.0 - covered))
    return torch.stack(parts).mean() if parts else None


def visibility_supervision(
    occlusion_logit: Tensor, visible: Tensor, has_visibility: Tensor, located: Tensor | None = None
) -> Tensor | None:
    """Binary cross-entropy (on logits, float32) of the visibility head's occlusion logits (B, L) against
    the flags (visible (B, L): 1; occluded is the positive class) of the faces with flags
    (has_visibility (B,)), at the points with a position (located (B, L), None: all; the head reads the
    features at the points); None when no such point is in the batch."""
    keep = torch.as_tensor(has_visibility, device=occlusion_logit.device).bool()  # per face
    if located is not None:
        keep = keep[:, None] & located.to(keep.device, torch.bool)  # per point
    if not bool(keep.any()):
        return None
    occluded = 1.0 - visible[keep].float()
    return F.binary_cross_entropy_with_logits(occlusion_logit[keep].float(), occluded)


def add_visibility_supervision(
    terms: dict[str, Tensor], outputs: Mapping[str, Tensor], batch: Mapping | None, located, weight: float
) -> None:
    """terms["visibility_bce"]: `weight` x `visibility_supervision` of the network's occlusion logits,
    where it has a visibility head, the weight is not 0 and the batch has points with flags."""
    logit = outputs.get("occlusion_logit")
    if logit is not None and weight and batch is not None:
        supervision = visibility_supervision(logit, batch["visible"], batch["has_visibility"], located)
        if supervision is not None:
            terms["visibility_bce"] = weight * supervision


def with_loss(terms: dict[str, Tensor]) -> dict[str, Tensor]:
    """The objective's result: `loss`, the sum of the terms (with gradient), and each term detached."""
    loss = torch.stack(list(terms.values())).sum()
    return {"loss": loss, **{name: value.detach() for name, value in terms.items()}}


def _spectral_norm_upper_bound(matrix: Tensor) -> Tensor:
    """min(||M||_F, sqrt(||M||_1 ||M||_inf)): both bound ||M||_2 from above; only cheap reductions."""
    frobenius = torch.linalg.matrix_norm(matrix)
    holder = (torch.linalg.matrix_norm(matrix, 1) * torch.linalg.matrix_norm(matrix, float("inf"))).sqrt()
    return torch.minimum(frobenius, holder)


def polar_factor_newton_schulz(matrix: Tensor) -> Tensor:
    """The orthogonal polar factor U V^T of M (M = U Sigma V^T), by matrix products only.

    Singular values far below the convergence threshold (see `_QUINTIC_STEPS`) map to about 0, so on a
    numerically rank-deficient M this is U sign(Sigma) V^T. No data-dependent control flow: no host
    synchronisation on GPUs. (Where float32 matmuls run as TF32, Q is accurate to ~1e-3 only: plenty
    for a regulariser's gradient.)
    """
    wide = matrix.shape[-2] < matrix.shape[-1]
    x = matrix.mT if wide else matrix  # tall: the Gram matrix X^T X is the smaller square
    x = x / _spectral_norm_upper_bound(x).clamp_min(torch.finfo(x.dtype).tiny)
    a, b, c = _QUINTIC_COEFFICIENTS
    for _ in range(_QUINTIC_STEPS):
        gram = x.mT @ x
        x = a * x + x @ (b * gram + c * (gram @ gram))
    for _ in range(_CUBIC_STEPS):
        x = 1.5 * x - 0.5 * x @ (x.mT @ x)
    return x.mT if wide else x


def polar_factor_svd(matrix: Tensor) -> Tensor:
    """U sign(Sigma) V^T by an SVD; singular values below the rank tolerance count as zero.

    The tolerance is that of `torch.linalg.matrix_rank`: sigma_max * max(m, n) * eps(dtype).
    """
    u, singular_values, vh = torch.linalg.svd(matrix, full_matrices=False)
    tolerance = singular_values[..., :1] * max(matrix.shape[-2:]) * torch.finfo(matrix.dtype).eps
    return (u * (singular_values > tolerance).to(matrix.dtype).unsqueeze(-2)) @ vh


class _NuclearNorm(torch.autograd.Function):
    """||M||_* = tr(Q^T M) with Q = U sign(Sigma) V^T; its (sub)gradient is Q (eq. 8).

    Only Q is needed for the gradient, which is well defined for repeated singular values (unlike
    autograd through U and V of an SVD, which divides by sigma_i^2 - sigma_j^2).
    """

    @staticmethod
    def forward(ctx, matrix: Tensor, method: str) -> Tensor:
        # Half precision cannot resolve the polar factor: compute in float32 (float64 stays float64).
        work = matrix if matrix.dtype in (torch.float32, torch.float64) else matrix.float()
        with torch.autocast(device_type=matrix.device.type, enabled=False):
            polar = polar_factor_svd(work) if method == "svd" else polar_factor_newton_schulz(work)
            value = (polar * work).sum()
        ctx.save_for_backward(polar)
        ctx.input_dtype = matrix.dtype
        return value.to(matrix.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor, None]:
        (polar,) = ctx.saved_tensors
        return (grad_output * polar).to(ctx.input_dtype), None


def nuclear_norm(matrix: Tensor, method: str = "auto") -> Tensor:
    """||M||_* (sum of singular values) of a 2-D matrix; its gradient is the subgradient U sign(Sigma) V^T.

    method: "svd" (LAPACK/cuSOLVER SVD: exact; the fastest on CPUs, slow and synchronising on GPUs),
    "newton_schulz" (polar factor by 30 small matrix products: cheap on GPUs; singular values below
    ~2e-4 of the spectral-norm bound count as zero) or "auto" (svd on CPU, newton_schulz elsewhere).
    """
    if matrix.ndim != 2:
        raise ValueError(f"nuclear_norm expects a 2-D matrix, got shape {tuple(matrix.shape)}")
    if method == "auto":
        method = "svd" if matrix.device.type == "cpu" else "newton_schulz"
    if method not in ("svd", "newton_schulz"):
        raise ValueError(f"nuclear_norm method must be 'auto', 'svd' or 'newton_schulz', got {method!r}")
    return _NuclearNorm.apply(matrix, method)


def _structural_matrix(net: nn.Module) -> Tensor | None:
    return net.structural_matrix() if hasattr(net, "structural_matrix") else None


def _conv_weights(net: nn.Module) -> list[Tensor]:
    if hasattr(net, "conv_weights"):
        return list(net.conv_weights())
    return [module.weight for module in net.modules() if isinstance(module, nn.modules.conv._ConvNd)]


def _fc_weight(net: nn.Module) -> Tensor | None:
    if hasattr(net, "fc_weight"):
        return net.fc_weight()
    for module in net.modules():  # the network itself first, then e.g. a wrapped timm model
        if hasattr(module, "get_classifier"):
            classifier = module.get_classifier()
            return classifier.weight if isinstance(classifier, nn.Linear) else None
    return None


def _squared_frobenius(tensors: Iterable[Tensor]) -> Tensor:
    return torch.stack([t.float().pow(2).sum() for t in tensors]).sum()


class LandmarkObjective(nn.Module):
    """Eq. (3): the coordinate term plus weighted regularisers; returns every term by name.

    `forward(outputs, target, net)` returns a dict with `loss` (the total to minimise, with gradient)
    and, detached for logging, each term's weighted contribution: coord_l2, nuclear_M, frobenius_M,
    frobenius_conv, frobenius_fc, l1_P (see the module docstring). A term whose tensor the network
    does not have (M without the LM, P without the DM) is absent; a term whose weight is 0 is present
    as 0 and not computed. `target` is (B, L, 2) in the crop's normalised [-1, 1] frame.

    Args (the paper's symbols; defaults from §4.1):
        alpha: weight of sum ||W_conv||_F^2 over all conv weights.
        beta: weight of the nuclear norm ||M||_* of the structural matrix.
        gamma: weight of ||M||_F^2.
        lam: lambda, weight of ||W_fc||_F^2 of the final FC layer.
        eta: weight of the L1 norm of the occlusion map P (summed over h x w, averaged over the batch).
        nuclear_norm_method: "auto", "svd" or "newton_schulz" (see `nuclear_norm`).
        coordinate_unit: "normalised" (the crop spans [-1, 1]) or "pixels" (of a crop_size crop).
        weight_penalty: "loss" (eq. 3 as written) or "decoupled": frobenius_M, frobenius_conv and
            frobenius_fc leave the loss and become the optimiser's weight decay through
            `parameter_groups`, each with decay 2 * its weight (the shrink per step that SGD applies to
            the term in the loss at the same learning rate).
        occlusion_weight: weight of the occlusion supervision of P (`occlusion_supervision`) and of the
            visibility head's logits (`visibility_supervision`), beyond the paper; 0 (default): P learns without labels, as in the paper. Needs the batch
            (`forward`'s `batch`) for its flags and masks.
    """

    def __init__(
        self,
        alpha: float = 1e-5,
        beta: float = 1e-6,
        gamma: float = 1e-5,
        lam: float = 1e-5,
        eta: float = 1e-6,
        nuclear_norm_method: str = "auto",
        coordinate_unit: str = "normalised",
        crop_size: int | None = None,
        weight_penalty: str = "loss",
        occlusion_weight: float = 0.0,
    ) -> None:
        super().__init__()
        if not occlusion_weight >= 0:
            raise ValueError(f"model.objective.occlusion_weight={occlusion_weight!r}; give 0 or more")
        self.occlusion_weight = occlusion_weight
        if weight_penalty not in WEIGHT_PENALTIES:
            raise ValueError(
                f"model.objective.weight_penalty={weight_penalty!r}; choose one of {WEIGHT_PENALTIES}"
            )
        self.weight_penalty = weight_penalty
        if coordinate_unit not in COORDINATE_UNITS:
            raise ValueError(
                f"model.objective.coordinate_unit={coordinate_unit!r}; choose one of {COORDINATE_UNITS}"
            )
        if coordinate_unit == "pixels" and not crop_size:
            raise ValueError(
                "model.objective.coordinate_unit=pixels needs model.objective.crop_size (the crop side)"
            )
        self.coordinate_unit, self.crop_size = coordinate_unit, crop_size
        # Normalised coordinates span 2 over the crop: a crop pixel is crop_size / 2 of them.
        self.coordinate_scale = crop_size / 2 if coordinate_unit == "pixels" else 1.0
        self.alpha, self.beta, self.gamma, self.lam, self.eta = alpha, beta, gamma, lam, eta
        self.nuclear_norm_method = nuclear_norm_method

    def forward(
        self, outputs: Mapping[str, Tensor], target: Tensor, net: nn.Module, batch: Mapping | None = None
    ) -> dict[str, Tensor]:
        """`batch` (the training batch: `visible`, `has_visibility`, optionally `occluder_mask`) feeds the
        occlusion supervision; without it, or with occlusion_weight 0, there is none."""
        scale = self.coordinate_scale
        located = None if batch is None else batch.get("located")
        coord = coordinate_l2(outputs["landmarks"].float() * scale, target.float() * scale, located)
        terms: dict[str, Tensor] = {"coord_l2": coord}

        def add(name: str, weight: float, compute) -> None:
            # A zero weight skips the computation (the nuclear norm costs an SVD or 30 matmuls).
            terms[name] = weight * compute() if weight else coord.new_zeros(())

        structural = _structural_matrix(net)
        if structural is not None:
            add("nuclear_M", self.beta, lambda: nuclear_norm(structural.float(), self.nuclear_norm_method))
        if self.weight_penalty == "loss":
            for name, weight, tensors in self._frobenius_terms(net):
                add(name, weight, lambda tensors=tensors: _squared_frobenius(tensors))
        occlusion = outputs.get("occlusion_map")
        if occlusion is not None:
            add("l1_P", self.eta, lambda: occlusion.float().abs().flatten(1).sum(dim=1).mean())
            if self.occlusion_weight and batch is not None:
                supervision = occlusion_supervision(
                    occlusion,
                    target,
                    batch["visible"],
                    batch["has_visibility"],
                    batch.get("occluder_mask"),
                    located,
                )
                if supervision is not None:
                    terms["occlusion_bce"] = self.occlusion_weight * supervision
        add_visibility_supervision(terms, outputs, batch, located, self.occlusion_weight)
        return with_loss(terms)

    def _frobenius_terms(self, net: nn.Module) -> list[tuple[str, float, list[Tensor]]]:
        """The squared-Frobenius terms the network has: (name, eq.-3 weight, the tensors it penalises),
        whether they act in the loss or as decoupled decay."""
        terms = []
        structural = _structural_matrix(net)
        if structural is not None:
            terms.append(("frobenius_M", self.gamma, [structural]))
        conv_weights = _conv_weights(net)
        if conv_weights:
            terms.append(("frobenius_conv", self.alpha, conv_weights))
        fc_weight = _fc_weight(net)
        if fc_weight is not None:
            terms.append(("frobenius_fc", self.lam, [fc_weight]))
        return terms

    def parameter_groups(self, net: nn.Module) -> list[dict] | None:
        """The optimiser's parameter groups for weight_penalty="decoupled", else None (one group).

        Each penalised tensor gets weight_decay = 2 * its eq.-3 weight (d/dW of weight * ||W||_F^2);
        every other parameter (biases, norms, the GM/DM/LM's non-conv tensors) none.
        """
        if self.weight_penalty == "loss":
            return None
        decay = {
            id(tensor): 2 * weight for _, weight, tensors in self._frobenius_terms(net) for tensor in tensors
        }
        groups: dict[float, list[Tensor]] = {}
        for parameter in net.parameters():
            groups.setdefault(decay.get(id(parameter), 0.0), []).append(parameter)
        return [{"params": params, "weight_decay": rate} for rate, params in groups.items()]

    def extra_repr(self) -> str:
        return (
            f"alpha={self.alpha}, beta={self.beta}, gamma={self.gamma}, lam={self.lam}, eta={self.eta}, "
            f"nuclear_norm_method={self.nuclear_norm_method!r}, coordinate_unit={self.coordinate_unit!r}, "
            f"weight_penalty={self.weight_penalty!r}"
        )
