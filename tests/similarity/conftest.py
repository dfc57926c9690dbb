"""Small post-ReLU-like feature maps shared by the similarity tests."""

import pytest
import torch


def relu_maps(n: int, channels: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """(n, channels, height, width) float64 ReLU features with a shared component, so samples are alike."""
    generator = torch.Generator().manual_seed(seed)
    shared = torch.randn(1, channels, height, width, generator=generator, dtype=torch.float64)
    noise = torch.randn(n, channels, height, width, generator=generator, dtype=torch.float64)
    return torch.relu(shared + noise)


@pytest.fixture
def make_maps():
    """Factory of ReLU feature maps: make_maps(n, channels, height, width, seed=0)."""
    return relu_maps


@pytest.fixture
def maps() -> torch.Tensor:
    return relu_maps(6, 8, 3, 4)
