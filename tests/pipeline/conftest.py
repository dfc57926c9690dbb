"""Tiny contract-obeying dataset and backbone for the pipeline unit tests."""

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils.data import Dataset


class TinyDataset(Dataset):
    """Deterministic random RGB images following the dataset contract."""

    name = "tiny"
    classes = ("a", "b", "c")

    def __init__(self, n: int = 10, size: int = 8):
        rng = np.random.default_rng(0)
        self.images = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return {
            "image": Image.fromarray(self.images[i]),
            "id": f"img{i:03d}",
            "label": i % 3,
            "objects": (i % 3, 5),
            "meta": {"index": i, "box": [0, 1, 2, 3]},
        }


class TinyPreprocess:
    def transform(self):
        return lambda image: torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)


class TinyBackbone(nn.Module):
    """A conv map layer (NCHW), a token layer (NTD) and a head; counts forward calls and samples."""

    def __init__(self, has_head: bool = True):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.proj = nn.Linear(4, 6)
        self.head = nn.Linear(4, 3)
        self.preprocess = TinyPreprocess()
        self.layers = ("conv", "tokens")
        self.layouts = {"conv": "NCHW", "tokens": "NTD"}
        self.has_head = has_head
        self.num_classes = 3 if has_head else None
        self.calls = 0
        self.samples_seen = 0
        self.fail_after_calls = None

    def forward(self, images):
        if self.fail_after_calls is not None and self.calls >= self.fail_after_calls:
            raise RuntimeError("simulated kill")
        self.calls += 1
        self.samples_seen += len(images)
        conv = torch.relu(self.conv(images))
        tokens = self.proj(conv.flatten(2).transpose(1, 2))
        out = {"conv": conv, "tokens": tokens}
        if self.has_head:
            out["logits"] = self.head(conv.mean((2, 3)))
        return out


@pytest.fixture
def tiny_dataset():
    return TinyDataset()


@pytest.fixture
def tiny_backbone():
    return TinyBackbone()


@pytest.fixture
def make_backbone():
    return TinyBackbone


@pytest.fixture
def make_dataset():
    return TinyDataset


@pytest.fixture
def compose(tmp_path):
    """Compose the project's config with ``overrides``, every path under tmp_path, wandb disabled."""
    from pathlib import Path

    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    conf = str(Path(__file__).resolve().parents[2] / "conf")

    def make(*overrides):
        with initialize_config_dir(config_dir=conf, version_base="1.3"):
            return hydra_compose(
                "config", overrides=[f"paths.root_dir={tmp_path}", "logger=none", *overrides]
            )

    return make
