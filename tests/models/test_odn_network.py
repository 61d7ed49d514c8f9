"""ODN's shapes, the GM's non-locality, BRNet = timm's ResNet-18, and describe_network."""

from __future__ import annotations

import pytest
import timm
import torch

from odn_lightning.models import ODN, GeometryAwareModule, describe_network


@pytest.mark.parametrize("num_landmarks", [68, 29, 19, 98])
def test_output_shapes_for_each_landmark_scheme(num_landmarks: int) -> None:
    net = ODN(num_landmarks).eval()
    with torch.no_grad():
        outputs = net(torch.randn(2, 3, 64, 64))
    assert outputs["landmarks"].shape == (2, num_landmarks, 2)
    occlusion = outputs["occlusion_map"]
    assert occlusion.shape == (2, 1, 2, 2)
    assert occlusion.min() >= 0.0 and occlusion.max() <= 1.0


@pytest.mark.parametrize("image_size", [64, 96, 128, 160, 224, 256])
def test_every_supported_image_size(image_size: int) -> None:
    net = ODN(68).eval()
    with torch.no_grad():
        outputs = net(torch.randn(1, 3, image_size, image_size))
    assert outputs["landmarks"].shape == (1, 68, 2)
    side = image_size // 32
    assert outputs["occlusion_map"].shape == (1, 1, side, side)
    assert torch.isfinite(outputs["landmarks"]).all()


def test_output_stride_16_doubles_the_map_with_the_same_weights() -> None:
    coarse, fine = ODN(68).eval(), ODN(68, output_stride=16).eval()
    assert [(k, v.shape) for k, v in coarse.state_dict().items()] == [
        (k, v.shape) for k, v in fine.state_dict().items()
    ]  # dilation, not new weights: ImageNet and stride-32 checkpoints load unchanged
    with torch.no_grad():
        outputs = fine(torch.randn(1, 3, 128, 128))
    assert outputs["occlusion_map"].shape == (1, 1, 8, 8)
    assert outputs["landmarks"].shape == (1, 68, 2)
    with pytest.raises(ValueError, match="model.net.output_stride=8; choose 32"):
        ODN(68, output_stride=8)


def test_dm_initial_p_sets_the_untrained_occlusion_map_everywhere() -> None:
    with torch.no_grad():
        occlusion = ODN(68, dm_initial_p=0.95).eval()(torch.randn(2, 3, 64, 64))["occlusion_map"]
    torch.testing.assert_close(occlusion, torch.full_like(occlusion, 0.95))
    with pytest.raises(ValueError, match="model.net.dm_initial_p=1.0; choose a value in"):
        ODN(68, dm_initial_p=1.0)


def test_occlusion_map_only_with_the_distillation_module() -> None:
    with torch.no_grad():
        outputs = ODN(19, use_dm=False).eval()(torch.randn(1, 3, 64, 64))
    assert set(outputs) == {"landmarks"}


def test_geometry_module_is_non_local_along_row_and_column() -> None:
    torch.manual_seed(0)
    gm = GeometryAwareModule(in_channels=8, channels=8, out_channels=16).eval()
    z = torch.rand(1, 8, 9, 9)
    row, col = 4, 4
    perturbed = z.clone()
    perturbed[0, :, row, col] += 3.0
    with torch.no_grad():
        change = (gm(perturbed) - gm(z)).abs().amax(dim=(0, 1))  # (9, 9): largest change over channels
    changed = change > 1e-5
    # Pathway A's 3x3 conv changes rows 3-5 of A, pathway B's 5x5 conv columns 2-6 of B; A @ B spreads
    # them over whole rows and columns. A 3x3 (or 5x5) conv would reach only |di|, |dj| <= 1 (2).
    assert changed[row, :].all(), "every position of the perturbed row changes"
    assert changed[:, col].all(), "every position of the perturbed column changes"
    assert changed[row, 0] and changed[row, 8] and changed[0, col] and changed[8, col]
    # ...but not positions off those rows and columns: the interaction is along rows and columns.
    assert not changed[0, 0] and not changed[8, 8] and not changed[0, 8] and not changed[8, 0]


def test_geometry_module_rejects_non_square_maps() -> None:
    gm = GeometryAwareModule(in_channels=4, channels=4, out_channels=4).eval()
    with pytest.raises(ValueError, match="square"):
        gm(torch.rand(1, 4, 4, 6))


def _brnet_and_timm(num_landmarks: int) -> tuple[ODN, torch.nn.Module]:
    brnet = ODN(num_landmarks, use_gm=False, use_dm=False, use_lm=False)
    reference = timm.create_model("resnet18", pretrained=False, num_classes=2 * num_landmarks)
    return brnet, reference


@pytest.mark.parametrize("num_landmarks", [68, 98])
def test_brnet_has_the_parameters_of_timm_resnet18(num_landmarks: int) -> None:
    brnet, reference = _brnet_and_timm(num_landmarks)
    assert brnet.readout.mode == "gap"
    count = sum(p.numel() for p in brnet.parameters())
    assert count == sum(p.numel() for p in reference.parameters())
    shapes = sorted(tuple(p.shape) for p in brnet.parameters())
    assert shapes == sorted(tuple(p.shape) for p in reference.parameters())


def test_brnet_with_copied_weights_computes_timm_resnet18() -> None:
    torch.manual_seed(0)
    brnet, reference = _brnet_and_timm(29)
    # timm zero-initialises each block's last BN scale; randomise BN so that every path carries signal.
    for module in reference.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.normal_(0, 0.1)
            module.running_mean.normal_(0, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    state = reference.state_dict()
    brnet.backbone.load_state_dict({k: v for k, v in state.items() if not k.startswith("fc.")})
    brnet.fc.load_state_dict({"weight": state["fc.weight"], "bias": state["fc.bias"]})
    brnet.eval()
    reference.eval()
    images = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        expected = reference(images).view(2, 29, 2)
        actual = brnet(images)["landmarks"]
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)
    assert expected.abs().max() > 0.1  # a non-trivial comparison


def test_modules_add_their_parameters() -> None:
    brnet = sum(p.numel() for p in ODN(68, False, False, False).parameters())
    full = ODN(68)
    assert {name.split(".")[0] for name, _ in full.named_parameters()} == {
        "backbone",
        "geometry",
        "distillation",
        "readout",
        "low_rank",
        "fc",
    }
    assert full.structural_matrix().shape == (256, 256)
    assert sum(p.numel() for p in full.parameters()) > brnet


def test_describe_network_counts_parameters_and_flops() -> None:
    brnet = ODN(68, use_gm=False, use_dm=False, use_lm=False).train()
    info = describe_network(brnet, 224)
    assert info["params"] == sum(p.numel() for p in brnet.parameters()) == info["trainable_params"]
    # ResNet-18 is 1.82 GMACs at 224 px (FlopCounterMode: FLOPs = 2 MACs); the 512 x 136 head adds 70k MACs.
    assert info["macs"] == pytest.approx(1.8137e9, rel=1e-3)
    assert info["flops"] == 2 * info["macs"]
    assert brnet.training, "describe_network leaves the mode as it was"
    odn = describe_network(ODN(68), 224)
    assert info["flops"] < odn["flops"] < 1.1 * info["flops"]
    assert describe_network(brnet, 128)["flops"] < info["flops"]
