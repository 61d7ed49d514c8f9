"""The objective of eq. 3 and the nuclear norm's value and subgradient (eq. 8)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from odn_lightning.training.objective import LandmarkObjective, coordinate_l2, nuclear_norm

METHODS = ("svd", "newton_schulz")


def _orthonormal(rows: int, cols: int, generator: torch.Generator) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(rows, cols, dtype=torch.float64, generator=generator))
    return q


def _with_singular_values(rows: int, cols: int, singular_values: torch.Tensor, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    k = len(singular_values)
    return _orthonormal(rows, k, generator) @ torch.diag(singular_values) @ _orthonormal(cols, k, generator).T


def _reference(
    matrix64: torch.Tensor, rank: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """float64 SVD: value, U sign(Sigma) V^T with the singular values past `rank` counted as exact zeros,
    and the bases of the row/column spaces (range) and of their complements (null)."""
    u, s, vh = torch.linalg.svd(matrix64)
    sign = torch.zeros_like(s)
    sign[:rank] = 1.0
    polar = u[:, : len(s)] @ torch.diag(sign) @ vh[: len(s)]
    return s[:rank].sum(), polar, u, vh.T


def _matrices() -> dict[str, tuple[torch.Tensor, int]]:
    """name -> (float64 matrix, its exact rank)."""
    generator = torch.Generator().manual_seed(0)
    repeated = torch.tensor([3.0] * 5 + [1.0] * 20 + [0.25] * 7, dtype=torch.float64)
    return {
        "square_full_rank": (torch.randn(48, 48, dtype=torch.float64, generator=generator), 48),
        "square_rank_deficient": (
            torch.randn(48, 12, dtype=torch.float64, generator=generator)
            @ torch.randn(12, 48, dtype=torch.float64, generator=generator),
            12,
        ),
        "repeated_singular_values": (_with_singular_values(32, 32, repeated, seed=1), 32),
        "repeated_and_rank_deficient": (
            _with_singular_values(40, 40, torch.tensor([2.0] * 10 + [0.5] * 10, dtype=torch.float64), seed=2),
            20,
        ),
        "ill_conditioned": (
            _with_singular_values(32, 32, torch.logspace(0, -3, 32, dtype=torch.float64), seed=3),
            32,
        ),
        "identity": (torch.eye(64, dtype=torch.float64), 64),
        "tall_full_rank": (torch.randn(64, 24, dtype=torch.float64, generator=generator), 24),
        "wide_rank_deficient": (
            torch.randn(20, 6, dtype=torch.float64, generator=generator)
            @ torch.randn(6, 56, dtype=torch.float64, generator=generator),
            6,
        ),
    }


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", list(_matrices()))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_nuclear_norm_matches_float64_svd_reference(name: str, method: str, dtype: torch.dtype) -> None:
    matrix64, rank = _matrices()[name]
    value_ref, polar_ref, u, v = _reference(matrix64, rank)
    matrix = matrix64.to(dtype).requires_grad_(True)
    value = nuclear_norm(matrix, method)
    value.backward()
    grad = matrix.grad.double()

    value_tol = 1e-5 if dtype == torch.float32 else 1e-9
    assert value.item() == pytest.approx(value_ref.item(), rel=value_tol)
    # Newton-Schulz is approximate for the float32 rounding noise that stands in for the zero singular
    # values (it maps ~1e-7 relative values to ~1e-4, not to 0): a looser bound there.
    grad_tol = {
        torch.float64: 1e-6,
        torch.float32: 1e-4 if method == "svd" or rank == min(matrix.shape) else 2e-3,
    }
    assert torch.linalg.matrix_norm(grad - polar_ref) <= grad_tol[dtype] * torch.linalg.matrix_norm(polar_ref)

    # Wherever it differs from U sign(Sigma) V^T, the gradient must still be a subgradient of ||.||_*:
    # U_r^T G V_r = I, zero off-diagonal blocks, and spectral norm <= 1 on the null spaces.
    u_range, v_range, u_null, v_null = u[:, :rank], v[:, :rank], u[:, rank:], v[:, rank:]
    block_tol = 1e-4 if dtype == torch.float32 else 1e-8
    torch.testing.assert_close(
        u_range.T @ grad @ v_range, torch.eye(rank, dtype=torch.float64), atol=block_tol, rtol=0
    )
    for off_diagonal in (u_null.T @ grad @ v_range, u_range.T @ grad @ v_null):
        assert off_diagonal.numel() == 0 or off_diagonal.abs().max() <= block_tol
    null_block = u_null.T @ grad @ v_null
    assert null_block.numel() == 0 or torch.linalg.matrix_norm(null_block, 2) <= 1.0 + 1e-6


@pytest.mark.parametrize("method", METHODS)
def test_nuclear_norm_gradcheck_full_rank(method: str) -> None:
    matrix = torch.randn(12, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    assert torch.autograd.gradcheck(lambda m: nuclear_norm(m, method), (matrix.requires_grad_(True),))


def test_nuclear_norm_of_zero_matrix_is_zero_with_zero_subgradient() -> None:
    for method in METHODS:
        matrix = torch.zeros(8, 8, requires_grad=True)
        value = nuclear_norm(matrix, method)
        value.backward()
        assert value.item() == 0.0 and torch.all(matrix.grad == 0)


def test_nuclear_norm_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="2-D"):
        nuclear_norm(torch.zeros(2, 3, 3))
    with pytest.raises(ValueError, match="method"):
        nuclear_norm(torch.zeros(3, 3), "eig")


class _TinyNet(nn.Module):
    """Exposes the regularised-network protocol with known tensors."""

    def __init__(self, with_structure: bool = True) -> None:
        super().__init__()
        self.conv_a = nn.Conv2d(1, 2, 3, bias=False)
        self.conv_b = nn.Conv2d(2, 2, 1)
        self.fc = nn.Linear(4, 6)
        self.structure = (
            nn.Parameter(torch.diag(torch.tensor([3.0, -2.0, 0.0, 1.0]))) if with_structure else None
        )

    def conv_weights(self):
        return [self.conv_a.weight, self.conv_b.weight]

    def fc_weight(self):
        return self.fc.weight

    def structural_matrix(self):
        return self.structure


def _outputs(batch: int = 2, points: int = 3) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    generator = torch.Generator().manual_seed(4)
    landmarks = torch.rand(batch, points, 2, generator=generator) * 2 - 1
    occlusion = torch.rand(batch, 1, 4, 4, generator=generator)
    target = torch.rand(batch, points, 2, generator=generator) * 2 - 1
    return {"landmarks": landmarks, "occlusion_map": occlusion}, target


WEIGHTS = {"alpha": 0.1, "beta": 0.2, "gamma": 0.3, "lam": 0.4, "eta": 0.5}


@torch.no_grad()
def _expected_unweighted(net: _TinyNet, outputs: dict[str, torch.Tensor]) -> dict[str, float]:
    return {
        "nuclear_M": 6.0,  # |3| + |-2| + |0| + |1|
        "frobenius_M": 14.0,
        "frobenius_conv": float(net.conv_a.weight.pow(2).sum() + net.conv_b.weight.pow(2).sum()),
        "frobenius_fc": float(net.fc.weight.pow(2).sum()),
        "l1_P": float(outputs["occlusion_map"].flatten(1).sum(1).mean()),
    }


TERM_WEIGHT = {
    "nuclear_M": "beta",
    "frobenius_M": "gamma",
    "frobenius_conv": "alpha",
    "frobenius_fc": "lam",
    "l1_P": "eta",
}


def test_objective_returns_every_term_weighted_and_the_total() -> None:
    net, (outputs, target) = _TinyNet(), _outputs()
    terms = LandmarkObjective(**WEIGHTS)(outputs, target, net)
    assert set(terms) == {"loss", "coord_l2", *TERM_WEIGHT}
    expected = {
        name: WEIGHTS[TERM_WEIGHT[name]] * value for name, value in _expected_unweighted(net, outputs).items()
    }
    expected["coord_l2"] = float((outputs["landmarks"] - target).pow(2).sum((1, 2)).mean())
    for name, value in expected.items():
        assert terms[name].item() == pytest.approx(value, rel=1e-5), name
    assert terms["loss"].item() == pytest.approx(sum(expected.values()), rel=1e-5)


def test_coordinate_term_in_crop_pixels_is_the_normalised_one_times_half_the_crop_squared() -> None:
    net, (outputs, target) = _TinyNet(), _outputs()
    normalised = LandmarkObjective(**WEIGHTS)(outputs, target, net)
    pixels = LandmarkObjective(**WEIGHTS, coordinate_unit="pixels", crop_size=128)(outputs, target, net)
    # A crop pixel is 2 / 128 of the normalised frame: squared errors grow by 64^2.
    assert pixels["coord_l2"].item() == pytest.approx(64**2 * normalised["coord_l2"].item(), rel=1e-5)
    assert pixels["frobenius_conv"].item() == pytest.approx(normalised["frobenius_conv"].item(), rel=1e-6)
    with pytest.raises(ValueError, match="coordinate_unit=pixels needs model.objective.crop_size"):
        LandmarkObjective(coordinate_unit="pixels")
    with pytest.raises(ValueError, match="choose one of"):
        LandmarkObjective(coordinate_unit="inches")


@pytest.mark.parametrize("zeroed", list(TERM_WEIGHT))
def test_objective_term_is_zero_when_its_weight_is_zero(zeroed: str) -> None:
    net, (outputs, target) = _TinyNet(), _outputs()
    weights = dict(WEIGHTS, **{TERM_WEIGHT[zeroed]: 0.0})
    terms = LandmarkObjective(**weights)(outputs, target, net)
    assert terms[zeroed].item() == 0.0
    others = [name for name in TERM_WEIGHT if name != zeroed]
    assert all(terms[name].item() > 0 for name in others)
    total = terms["coord_l2"] + sum(terms[name] for name in others)
    assert terms["loss"].item() == pytest.approx(total.item(), rel=1e-6)


def test_objective_gradient_of_each_regulariser() -> None:
    net, (outputs, target) = _TinyNet(), _outputs()
    occlusion = outputs["occlusion_map"].requires_grad_(True)
    LandmarkObjective(**WEIGHTS)(outputs, target, net)["loss"].backward()
    # d/dM [beta ||M||_* + gamma ||M||_F^2] = beta U sign(Sigma) V^T + 2 gamma M; here M is diagonal.
    expected_m = (
        WEIGHTS["beta"] * torch.diag(torch.tensor([1.0, -1.0, 0.0, 1.0]))
        + 2 * WEIGHTS["gamma"] * net.structure
    )
    torch.testing.assert_close(net.structure.grad, expected_m)
    torch.testing.assert_close(net.conv_a.weight.grad, 2 * WEIGHTS["alpha"] * net.conv_a.weight)
    assert net.conv_b.bias.grad is None  # biases are not regularised
    torch.testing.assert_close(occlusion.grad, torch.full_like(occlusion, WEIGHTS["eta"] / len(occlusion)))


def test_objective_leaves_out_terms_the_network_does_not_have() -> None:
    net, (outputs, target) = _TinyNet(with_structure=False), _outputs()
    del outputs["occlusion_map"]
    terms = LandmarkObjective()(outputs, target, net)
    assert set(terms) == {"loss", "coord_l2", "frobenius_conv", "frobenius_fc"}


def test_objective_falls_back_to_conv_modules_and_timm_classifier() -> None:
    import timm

    class Wrapper(nn.Module):  # like TimmRegressor: a timm model one level down, no protocol methods
        def __init__(self) -> None:
            super().__init__()
            self.model = timm.create_model("resnet18", num_classes=6)

    net, (outputs, target) = Wrapper(), _outputs()
    del outputs["occlusion_map"]
    terms = LandmarkObjective(alpha=1.0, lam=1.0)(outputs, target, net)
    convs = [m.weight for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 20
    assert terms["frobenius_conv"].item() == pytest.approx(
        sum(w.pow(2).sum().item() for w in convs), rel=1e-5
    )
    assert terms["frobenius_fc"].item() == pytest.approx(net.model.fc.weight.pow(2).sum().item(), rel=1e-5)
    assert "nuclear_M" not in terms


def test_decoupled_weight_penalty_moves_the_frobenius_terms_into_parameter_groups() -> None:
    net, (outputs, target) = _TinyNet(), _outputs()
    decoupled = LandmarkObjective(**WEIGHTS, weight_penalty="decoupled")
    terms = decoupled(outputs, target, net)
    assert set(terms) == {"loss", "coord_l2", "nuclear_M", "l1_P"}
    assert LandmarkObjective(**WEIGHTS).parameter_groups(net) is None
    decay = {
        id(p): group["weight_decay"] for group in decoupled.parameter_groups(net) for p in group["params"]
    }
    assert len(decay) == len(list(net.parameters()))
    assert decay[id(net.conv_a.weight)] == decay[id(net.conv_b.weight)] == 2 * WEIGHTS["alpha"]
    assert decay[id(net.fc.weight)] == 2 * WEIGHTS["lam"]
    assert decay[id(net.structure)] == 2 * WEIGHTS["gamma"]
    assert decay[id(net.conv_b.bias)] == decay[id(net.fc.bias)] == 0.0
    with pytest.raises(ValueError, match="weight_penalty='sometimes'; choose one of"):
        LandmarkObjective(weight_penalty="sometimes")


def _one_step(weight_penalty: str, optimizer: type, grouped: bool = True, **options) -> _TinyNet:
    torch.manual_seed(0)
    net, (outputs, target) = _TinyNet(), _outputs()
    objective = LandmarkObjective(**WEIGHTS, weight_penalty=weight_penalty)
    groups = objective.parameter_groups(net) if grouped else None
    step = optimizer(groups if groups is not None else net.parameters(), lr=0.01, **options)
    # The tiny net's outputs are fixed tensors: give every weight a (zero) data gradient, as a real
    # network's would have, since optimisers skip parameters without one, decay included.
    touch = sum(parameter.sum() for parameter in net.parameters()) * 0.0
    (objective(outputs, target, net)["loss"] + touch).backward()
    step.step()
    return net


def test_under_sgd_the_penalty_in_the_loss_and_as_group_decay_take_the_same_step() -> None:
    # SGD's weight_decay adds wd * W to the gradient: with wd = 2 * weight that is d/dW of the term.
    in_loss = _one_step("loss", torch.optim.SGD, momentum=0.9)
    as_decay = _one_step("decoupled", torch.optim.SGD, momentum=0.9)
    for a, b in zip(in_loss.parameters(), as_decay.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_under_adamw_decoupled_decay_shrinks_each_weight_by_lr_times_its_decay() -> None:
    decayed = _one_step("decoupled", torch.optim.AdamW, weight_decay=0.0)  # groups override the default
    undecayed = _one_step("decoupled", torch.optim.AdamW, grouped=False, weight_decay=0.0)
    torch.manual_seed(0)
    start = _TinyNet()
    # AdamW: W <- W - lr * wd * W - lr * adam_step, where the Adam step does not depend on wd.
    for name, rate in (("conv_a", 2 * WEIGHTS["alpha"]), ("fc", 2 * WEIGHTS["lam"])):
        shrink = 0.01 * rate * getattr(start, name).weight
        torch.testing.assert_close(getattr(decayed, name).weight, getattr(undecayed, name).weight - shrink)
    torch.testing.assert_close(decayed.fc.bias, undecayed.fc.bias)


def test_coordinate_l2_is_batch_mean_of_squared_error_norm() -> None:
    pred = torch.zeros(2, 2, 2)
    target = torch.tensor([[[1.0, 0.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, 1.0]]])
    assert coordinate_l2(pred, target).item() == pytest.approx((1.0 + 4.0) / 2)


# ------------------------------------------------------------------ occlusion supervision (beyond the paper)


def _flagged_points() -> tuple[torch.Tensor, torch.Tensor]:
    """Two points of one face at the centres of the left and right halves of a 1 x 2 map: the left
    point visible, the right one occluded."""
    landmarks = torch.tensor([[[-0.5, 0.0], [0.5, 0.0]]])
    visible = torch.tensor([[True, False]])
    return landmarks, visible


def test_occlusion_supervision_is_the_cross_entropy_of_p_at_the_points_against_their_flags():
    from odn_lightning.training.objective import occlusion_supervision

    landmarks, visible = _flagged_points()
    has = torch.tensor([True])
    right = torch.tensor([[[[0.9, 0.2]]]])  # P high where visible, low where occluded
    inverted = torch.tensor([[[[0.2, 0.9]]]])
    # By hand: -(log 0.9 + log(1 - 0.2)) / 2 and -(log 0.2 + log(1 - 0.9)) / 2.
    expected_right = -(math.log(0.9) + math.log(0.8)) / 2
    expected_inverted = -(math.log(0.2) + math.log(0.1)) / 2
    assert occlusion_supervision(right, landmarks, visible, has).item() == pytest.approx(
        expected_right, rel=1e-5
    )
    assert occlusion_supervision(inverted, landmarks, visible, has).item() == pytest.approx(
        expected_inverted, rel=1e-5
    )
    # A face without flags is not supervised: nothing to supervise at all here.
    assert occlusion_supervision(right, landmarks, visible, torch.tensor([False])) is None


def test_occlusion_supervision_adds_the_occluder_mask_at_the_maps_resolution():
    from odn_lightning.training.objective import occlusion_supervision

    landmarks, visible = _flagged_points()
    mask = torch.zeros(1, 4, 4)
    mask[:, :, 2:] = 255  # the right half of the crop is covered: target 1 left, 0 right
    p = torch.tensor([[[[0.9, 0.2]]]])
    points = -(math.log(0.9) + math.log(0.8)) / 2
    cells = -(math.log(0.9) + math.log(0.8)) / 2  # the same two cells against 1 - coverage (1, 0)
    value = occlusion_supervision(p, landmarks, visible, torch.tensor([True]), mask)
    assert value.item() == pytest.approx((points + cells) / 2, rel=1e-5)


def test_the_objective_supervises_p_only_when_asked_and_the_gradient_reaches_p():
    landmarks, visible = _flagged_points()
    batch = {"visible": visible, "has_visibility": torch.tensor([True])}
    p = torch.full((1, 1, 1, 2), 0.5, requires_grad=True)
    outputs = {"landmarks": landmarks.clone(), "occlusion_map": p}
    net = nn.Linear(2, 2)
    assert "occlusion_bce" not in LandmarkObjective()(outputs, landmarks, net, batch)  # the paper: off
    assert "occlusion_bce" not in LandmarkObjective(occlusion_weight=1.0)(outputs, landmarks, net)  # no batch
    terms = LandmarkObjective(occlusion_weight=2.0, eta=0.0)(outputs, landmarks, net, batch)
    assert terms["occlusion_bce"].item() == pytest.approx(2.0 * math.log(2.0), rel=1e-5)
    terms["loss"].backward()
    # d/dP of BCE: raise P at the visible point, lower it at the occluded one.
    assert p.grad[0, 0, 0, 0] < 0 < p.grad[0, 0, 0, 1]
    with pytest.raises(ValueError, match="occlusion_weight=-1"):
        LandmarkObjective(occlusion_weight=-1)
