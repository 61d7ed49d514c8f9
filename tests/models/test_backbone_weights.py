"""Backbone weights: local .pth / .safetensors checkpoints, and a clear error when the hub is unreachable.

Nothing here touches the network: the hub download is replaced by a failing stub.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file

from odn_lightning.models import ODN, PretrainedWeightsUnavailable


@pytest.fixture(scope="module")
def imagenet_like_resnet18() -> torch.nn.Module:
    """A timm resnet18 with recognisable (non-default) weights, standing in for ImageNet's."""
    torch.manual_seed(1)
    model = timm.create_model("resnet18", pretrained=False)  # 1000-class head, as published
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.01)
    return model


def _save(model: torch.nn.Module, path: Path) -> None:
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if path.suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, path)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_backbone_checkpoint_loads_a_local_file(tmp_path: Path, imagenet_like_resnet18, suffix: str) -> None:
    path = tmp_path / f"resnet18{suffix}"
    _save(imagenet_like_resnet18, path)
    # pretrained=true with a file: the file wins and the hub is not asked.
    net = ODN(68, pretrained=True, backbone_checkpoint=str(path))
    expected = {k: v for k, v in imagenet_like_resnet18.state_dict().items() if not k.startswith("fc.")}
    loaded = net.backbone.state_dict()
    assert loaded.keys() == expected.keys()
    for key, value in expected.items():
        torch.testing.assert_close(loaded[key], value, rtol=0, atol=0, msg=key)
    assert net.fc.out_features == 136  # the 1000-class head is not loaded


def test_backbone_checkpoint_accepts_nested_lightning_style_state_dict(
    tmp_path: Path, imagenet_like_resnet18
) -> None:
    path = tmp_path / "wrapped.pth"
    torch.save({"state_dict": imagenet_like_resnet18.state_dict(), "epoch": 3}, path)
    net = ODN(19, use_gm=False, backbone_checkpoint=path)
    torch.testing.assert_close(net.backbone.conv1.weight, imagenet_like_resnet18.conv1.weight)


def test_backbone_checkpoint_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="backbone_checkpoint"):
        ODN(68, backbone_checkpoint=tmp_path / "missing.pth")
    wrong = tmp_path / "resnet34.pth"
    torch.save(timm.create_model("resnet34", pretrained=False).state_dict(), wrong)
    with pytest.raises(RuntimeError, match="does not fit the backbone"):
        ODN(68, backbone_checkpoint=wrong)


def test_pretrained_without_hub_or_file_names_the_option_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    import timm.models._builder as builder

    calls = []

    def unreachable(*args, **kwargs):
        calls.append(args)
        raise ConnectionError("Failed to resolve 'huggingface.co'\n(details on a second line)")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # belt and braces: never reach out, whatever timm tries
    monkeypatch.setattr(builder, "load_state_dict_from_hf", unreachable)
    monkeypatch.setattr(builder, "load_state_dict_from_url", unreachable)
    with pytest.raises(PretrainedWeightsUnavailable) as info:
        ODN(68, pretrained=True)
    message = str(info.value)
    assert calls, "the (stubbed) download was attempted"
    assert "\n" not in message
    assert "model.net.backbone_checkpoint=PATH" in message
    assert "ConnectionError" in message
