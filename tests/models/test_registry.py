"""Registry errors, per-model preprocessing values and the conf/backbone/*.yaml configs."""

import os
import pickle
from pathlib import Path

import hydra
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from semrsm.models import Preprocess, available_backbones, build_backbone, option_names

CONF = Path(__file__).resolve().parents[2] / "conf" / "backbone"
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
OPENAI = ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))
# name -> (options that only shrink the architecture, image_size, resize_size, (mean, std), interpolation)
PREPROCESSING = {
    "resnet18": ({}, 224, 256, IMAGENET, "bilinear"),
    "resnet50": ({}, 224, 256, IMAGENET, "bilinear"),
    "resnet101": ({}, 224, 256, IMAGENET, "bilinear"),
    "convnextv2_base": ({"depths": [1, 1, 1, 1], "dims": [8, 16, 32, 64]}, 224, 256, IMAGENET, "bicubic"),
    "vit_b16": ({"depth": 1, "embed_dim": 32, "num_heads": 2}, 224, 248, HALF, "bicubic"),
    "vit_l32": ({"depth": 1, "embed_dim": 32, "num_heads": 2}, 384, 384, HALF, "bicubic"),
    "dinov2_giant": ({"depth": 1, "embed_dim": 96, "num_heads": 4}, 224, 256, IMAGENET, "bicubic"),
    "bit50": ({}, 224, 224, HALF, "bilinear"),
    "vit_tiny": ({"depth": 1}, 224, 248, HALF, "bicubic"),
    "clip": ({}, 224, 224, OPENAI, "bicubic"),
    "sam_vit_b": (
        {"depth": 1, "embed_dim": 32, "num_heads": 2, "global_attn_indexes": [0]},
        1024,
        1024,
        IMAGENET,
        "bilinear",
    ),
    "clipseg": ({"depth": 4, "hidden_size": 32, "num_heads": 2}, 352, 352, IMAGENET, "bilinear"),
    "mobilenet_v2": ({}, 224, 256, IMAGENET, "bilinear"),
    "efficientnet_lite0": ({}, 224, 256, HALF, "bilinear"),
}


def test_unknown_backbone_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown backbone 'resnet19'.*'dinov2_giant'.*'resnet18'"):
        build_backbone("resnet19")


def test_unknown_option_lists_valid_options():
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['imgsize'\].*'img_size'"):
        build_backbone("resnet18", imgsize=64)
    assert "depth" in option_names("vit_b16") and "depth" not in option_names("resnet18")


def test_invalid_pretrained_and_option_combinations():
    with pytest.raises(ValueError, match="pretrained must be"):
        build_backbone("resnet18", pretrained=1.0)
    with pytest.raises(ValueError, match="hub weights do not fit"):
        build_backbone("vit_b16", pretrained=True, depth=2)
    with pytest.raises(ValueError, match="unknown timm tag 'nope'.*tv_in1k"):
        build_backbone("resnet18", tag="nope")
    with pytest.raises(ValueError, match="unknown open_clip tag 'nope'.*openai"):
        build_backbone("clip", tag="nope")


@pytest.mark.parametrize("name", sorted(PREPROCESSING))
def test_preprocessing_values(name):
    options, image_size, resize_size, (mean, std), interpolation = PREPROCESSING[name]
    preprocess = build_backbone(name, **options).preprocess
    assert preprocess == Preprocess(image_size, resize_size, mean, std, interpolation)


def test_transform_converts_and_normalises():
    preprocess = Preprocess(image_size=8, resize_size=10, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    grey = Image.fromarray(np.full((20, 30), 255, dtype=np.uint8))
    tensor = pickle.loads(pickle.dumps(preprocess.transform()))(grey)  # picklable for DataLoader workers
    assert tuple(tensor.shape) == (3, 8, 8) and tensor.dtype == torch.float32
    assert torch.allclose(tensor, torch.full_like(tensor, 2.0))
    with pytest.raises(ValueError, match="interpolation 'lanczos'"):
        Preprocess(8, 10, (0.5,) * 3, (0.5,) * 3, "lanczos")
    with pytest.raises(ValueError, match="image_size=12, resize_size=10"):
        Preprocess(12, 10, (0.5,) * 3, (0.5,) * 3)


def test_every_backbone_has_a_config_with_valid_keys():
    configs = {path.stem: OmegaConf.load(path) for path in CONF.glob("*.yaml")}
    assert set(available_backbones()) <= set(configs)
    for stem, cfg in configs.items():
        if stem in available_backbones():
            assert cfg._target_ == "semrsm.models.build_backbone" and cfg.name == stem, stem
        assert cfg.name in available_backbones(), stem
        options = set(cfg) - {"_target_", "name", "pretrained", "layers"}
        assert options <= set(option_names(cfg.name)), (stem, options - set(option_names(cfg.name)))


@pytest.mark.parametrize(
    ("config", "layer", "shape"),
    [
        ("resnet18_tinyimagenet", "layer4", (2, 512, 2, 2)),
        ("vit_tiny", "blocks.11", (2, 64, 192)),
    ],
)
def test_trainable_configs_instantiate_with_hydra(config, layer, shape):
    cfg = OmegaConf.load(CONF / f"{config}.yaml")
    cfg.layers = [layer]
    backbone = hydra.utils.instantiate(cfg)
    assert backbone.preprocess.image_size == backbone.preprocess.resize_size == 64
    with torch.no_grad():
        out = backbone(torch.randn(2, 3, 64, 64))
    assert tuple(out[layer].shape) == shape and tuple(out["logits"].shape) == (2, 200)


# name -> (deepest default layer, its shape for one full-size image)
FULL_SIZE = {
    "resnet18": ("layer4", (512, 7, 7)),
    "resnet50": ("layer4", (2048, 7, 7)),
    "resnet101": ("layer4", (2048, 7, 7)),
    "convnextv2_base": ("stages.3", (1024, 7, 7)),
    "vit_b16": ("blocks.11", (196, 768)),
    "vit_l32": ("blocks.23", (144, 1024)),
    "dinov2_giant": ("blocks.39", (256, 1536)),
    "bit50": ("stages.3", (2048, 7, 7)),
    "vit_tiny": ("blocks.11", (196, 192)),
    "clip": ("resblocks.11", (49, 768)),
    "sam_vit_b": ("neck", (256, 64, 64)),
    "clipseg": ("encoder.11", (484, 768)),
    "mobilenet_v2": ("features.18", (1280, 7, 7)),
    "efficientnet_lite0": ("blocks.6", (320, 7, 7)),
}


@pytest.mark.skipif(
    os.environ.get("SEMRSM_FULL_BACKBONES") != "1",
    reason="full-size models (minutes on CPU): SEMRSM_FULL_BACKBONES=1",
)
@pytest.mark.parametrize("name", sorted(FULL_SIZE))
def test_full_size_default_forward(name):
    layer, shape = FULL_SIZE[name]
    backbone = build_backbone(name)
    size = backbone.preprocess.image_size
    with torch.no_grad():
        out = backbone(torch.randn(1, 3, size, size))
    assert backbone.layers[-1] == layer
    assert tuple(out[layer].shape) == (1, *shape)
