"""Size and cost of a network, for logging at the start of training."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def describe_network(net: nn.Module, image_size: int, in_channels: int = 3) -> dict[str, int]:
    """Parameter counts and the cost of one forward pass on one image of image_size x image_size.

    Returns params, trainable_params, flops and macs (both per image) and image_size. FLOPs follow
    torch.utils.flop_counter.FlopCounterMode: 2 per multiply-accumulate, counting convolutions and
    matrix products only (not batch norm, activations or pooling); macs is half of it. The network
    is measured in eval mode, without gradients, and left in the mode it was in.
    """
    params = sum(p.numel() for p in net.parameters())
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    reference = next(net.parameters(), None)
    device = reference.device if reference is not None else torch.device("cpu")
    dtype = reference.dtype if reference is not None else torch.float32
    images = torch.zeros(1, in_channels, image_size, image_size, device=device, dtype=dtype)
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            net(images)
    finally:
        net.train(was_training)
    flops = int(counter.get_total_flops())
    return {
        "params": params,
        "trainable_params": trainable,
        "flops": flops,
        "macs": flops // 2,
        "image_size": image_size,
    }
