"""Synthetic feature maps shaped like a ResNet18's stages, for benchmarks, the matchers stage and tests: smooth
post-ReLU-like maps (spatially correlated, hard assignment problems) and i.i.d. ReLU maps (easier ones)."""

import math

import torch

# ResNet18-like (spatial size, channels) per stage: S = H * W.
RESNET_STAGES = {49: 512, 196: 256, 784: 128, 3136: 64}


def smooth_relu_features(n: int, channels: int, side: int, seed: int = 0, rank: int = 32) -> torch.Tensor:
    """Post-ReLU-like feature maps (n, channels, side, side): ReLU of a low-rank channel mix of smooth random
    fields plus noise, about half of the values zero, float32."""
    generator = torch.Generator().manual_seed(seed)
    fields = torch.randn(n, rank, side, side, generator=generator)
    width = max(1.0, side / 8)
    taps = torch.arange(-3 * math.ceil(width), 3 * math.ceil(width) + 1, dtype=torch.float32)
    blur = torch.exp(-(taps**2) / (2 * width**2))
    blur = (blur / blur.sum()).repeat(rank, 1, 1)
    pad = len(taps) // 2
    fields = torch.nn.functional.conv2d(fields, blur[:, :, None, :], padding=(0, pad), groups=rank)
    fields = torch.nn.functional.conv2d(fields, blur[:, :, :, None], padding=(pad, 0), groups=rank)
    fields = fields / fields.std()
    mix = torch.randn(channels, rank, generator=generator) / math.sqrt(rank)
    features = torch.einsum("cr,nrhw->nchw", mix, fields) + 0.5 * torch.randn(
        n, channels, side, side, generator=generator
    )
    return torch.relu(features).contiguous()


def iid_relu_features(n: int, channels: int, side: int, seed: int = 0) -> torch.Tensor:
    """ReLU of i.i.d. standard normal maps (n, channels, side, side): no spatial structure, easier LAPs."""
    generator = torch.Generator().manual_seed(seed)
    return torch.relu(torch.randn(n, channels, side, side, generator=generator))


FEATURES = {"smooth": smooth_relu_features, "iid": iid_relu_features}
