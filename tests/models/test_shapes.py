"""Every backbone, randomly initialised through the real factory (large ones at reduced size),
yields its documented default taps with the documented shapes and layouts."""

import pytest
import torch

from semrsm.models import available_backbones, build_backbone

VIT = dict(depth=4, embed_dim=64, num_heads=2)
# name -> (options, {layer: shape for a batch of 2}, logits classes or None)
CASES = {
    "resnet18": (
        {},
        {"layer1": (64, 56, 56), "layer2": (128, 28, 28), "layer3": (256, 14, 14), "layer4": (512, 7, 7)},
        1000,
    ),
    "resnet50": (
        {"img_size": 64},
        {"layer1": (256, 16, 16), "layer2": (512, 8, 8), "layer3": (1024, 4, 4), "layer4": (2048, 2, 2)},
        1000,
    ),
    "resnet101": (
        {"img_size": 32, "num_classes": 7},
        {"layer1": (256, 8, 8), "layer2": (512, 4, 4), "layer3": (1024, 2, 2), "layer4": (2048, 1, 1)},
        7,
    ),
    "convnextv2_base": (
        {"img_size": 64, "depths": [1, 1, 2, 1], "dims": [16, 32, 64, 128]},
        {"stages.0": (16, 16, 16), "stages.1": (32, 8, 8), "stages.2": (64, 4, 4), "stages.3": (128, 2, 2)},
        1000,
    ),
    "bit50": (
        {"img_size": 64},
        {
            "stages.0": (256, 16, 16),
            "stages.1": (512, 8, 8),
            "stages.2": (1024, 4, 4),
            "stages.3": (2048, 2, 2),
        },
        1000,
    ),
    "vit_b16": ({"img_size": 64, **VIT}, {f"blocks.{i}": (16, 64) for i in range(4)}, 1000),
    "vit_l32": ({"img_size": 96, **VIT}, {f"blocks.{i}": (9, 64) for i in range(4)}, 1000),
    "dinov2_giant": (
        {"img_size": 56, "depth": 8, "embed_dim": 96, "num_heads": 4},
        {"blocks.1": (16, 96), "blocks.3": (16, 96), "blocks.5": (16, 96), "blocks.7": (16, 96)},
        None,
    ),
    "vit_tiny": (
        {"img_size": 64, "patch_size": 8, "num_classes": 10},
        {f"blocks.{i}": (64, 192) for i in (2, 5, 8, 11)},
        10,
    ),
    "clip": ({}, {f"resblocks.{i}": (49, 768) for i in (2, 5, 8, 11)}, None),
    "sam_vit_b": (
        {"img_size": 64, "depth": 4, "embed_dim": 32, "num_heads": 2, "global_attn_indexes": [1, 3]},
        {"blocks.1": (32, 4, 4), "blocks.3": (32, 4, 4), "neck": (256, 4, 4)},
        None,
    ),
    "clipseg": (
        {"img_size": 64, "depth": 8, "hidden_size": 32, "num_heads": 2},
        {"encoder.1": (16, 32), "encoder.3": (16, 32), "encoder.5": (16, 32), "encoder.7": (16, 32)},
        None,
    ),
    "mobilenet_v2": (
        {},
        {
            "features.3": (24, 56, 56),
            "features.6": (32, 28, 28),
            "features.13": (96, 14, 14),
            "features.18": (1280, 7, 7),
        },
        1000,
    ),
    "efficientnet_lite0": (
        {"image_size": 64},
        {"blocks.1": (24, 16, 16), "blocks.2": (40, 8, 8), "blocks.4": (112, 4, 4), "blocks.6": (320, 2, 2)},
        1000,
    ),
}


def test_every_backbone_has_a_case():
    assert sorted(CASES) == available_backbones()


@pytest.mark.parametrize("name", sorted(CASES))
def test_default_taps_shapes_and_layouts(name):
    options, shapes, classes = CASES[name]
    backbone = build_backbone(name, pretrained=False, **options)
    size = backbone.preprocess.image_size
    images = torch.randn(2, 3, size, size)
    with torch.no_grad():
        out = backbone(images)
        again = backbone(images)
    assert backbone.layers == list(shapes)
    expected_keys = list(shapes) + (["logits"] if classes else [])
    assert list(out) == expected_keys
    for layer, shape in shapes.items():
        assert tuple(out[layer].shape) == (2, *shape), layer
        assert backbone.layouts[layer] == ("NCHW" if len(shape) == 3 else "NTD")
        assert torch.equal(out[layer], again[layer]), "eval-mode forward must be deterministic"
    assert backbone.has_head == (classes is not None)
    assert backbone.num_classes == classes
    if classes:
        assert tuple(out["logits"].shape) == (2, classes)
        assert torch.equal(out["logits"], again["logits"])
    assert not backbone.training
