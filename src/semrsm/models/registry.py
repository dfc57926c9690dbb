"""Backbones by name: `build_backbone("resnet18", pretrained=False, layers=None, **options)`.

Each backbone's library (timm, open_clip, segment-anything, transformers) is imported only when a
backbone that needs it is built, so importing this package stays cheap.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Sequence

from semrsm.models.backbone import Backbone

TIMM_BACKBONES = (
    "resnet18",
    "resnet50",
    "resnet101",
    "convnextv2_base",
    "vit_b16",
    "vit_l32",
    "dinov2_giant",
    "bit50",
    "vit_tiny",
)
# name -> (module, builder function)
BUILDERS = {
    **{name: ("semrsm.models.timm_backbones", "build_timm_backbone") for name in TIMM_BACKBONES},
    "clip": ("semrsm.models.clip", "build_clip"),
    "sam_vit_b": ("semrsm.models.sam", "build_sam_vit_b"),
    "clipseg": ("semrsm.models.clipseg", "build_clipseg"),
    "mobilenet_v2": ("semrsm.models.mobilenet", "build_mobilenet_v2"),
    "efficientnet_lite0": ("semrsm.models.efficientnet", "build_efficientnet_lite0"),
}


def available_backbones() -> list[str]:
    """Names accepted by `build_backbone`."""
    return sorted(BUILDERS)


def build_backbone(
    name: str, pretrained: bool | str = False, layers: Sequence[str] | None = None, **options
) -> Backbone:
    """Build backbone `name` in eval mode.

    pretrained: False (random init), True (the model's hub weights; MissingWeightsError at once when
    they are neither cached nor downloadable) or a local checkpoint path. layers: layer names to tap
    (None = the model's documented default set). options: model-specific, e.g. tokens="grid" for ViTs,
    img_size, num_classes, tag; an unknown option raises ValueError listing the valid ones."""
    if name not in BUILDERS:
        raise ValueError(f"unknown backbone {name!r}; valid: {available_backbones()}")
    if not isinstance(pretrained, (bool, str)) or pretrained == "":
        raise ValueError(f"pretrained must be true, false or a checkpoint path, got {pretrained!r}")
    valid = option_names(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for backbone '{name}'; valid: {valid}")
    options = {key: tuple(value) if _is_list(value) else value for key, value in options.items()}
    layers = None if layers is None else list(layers)
    return _builder(name)(name=name, pretrained=pretrained, layers=layers, **options)


def option_names(name: str) -> list[str]:
    """The options backbone `name` accepts (keyword arguments besides name, pretrained, layers)."""
    builder = _builder(name)
    fixed = {"name", "pretrained", "layers"}
    params = inspect.signature(builder).parameters.values()
    names = [p.name for p in params if p.name not in fixed and p.kind is not p.VAR_KEYWORD]
    if name in TIMM_BACKBONES:
        names += importlib.import_module(BUILDERS[name][0]).arch_option_names(name)
    return names


def _builder(name: str) -> Callable[..., Backbone]:
    module, function = BUILDERS[name]
    return getattr(importlib.import_module(module), function)


def _is_list(value) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str)
