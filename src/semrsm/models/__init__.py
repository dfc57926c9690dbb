"""Backbone registry and layer taps: `build_backbone(name, pretrained, layers, **options) -> Backbone`."""

from semrsm.models.backbone import Backbone, Tap
from semrsm.models.preprocess import Preprocess
from semrsm.models.registry import available_backbones, build_backbone, option_names
from semrsm.models.weights import MissingWeightsError

__all__ = [
    "Backbone",
    "MissingWeightsError",
    "Preprocess",
    "Tap",
    "available_backbones",
    "build_backbone",
    "option_names",
]
