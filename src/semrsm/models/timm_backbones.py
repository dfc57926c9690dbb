"""Backbones built with timm: ResNet18/50/101, ConvNeXtV2-Base, ViT-B/16, ViT-L/32, DINOv2-giant,
BiT-50 and a small ViT.

Taps (module paths in the timm model, depth order; a stage's output equals its last block's):
- resnet*: "layer{i}.{j}" (blocks) and "layer{i}" (stages), i = 1..4; default layer1..layer4.
- bit50 (timm resnetv2, pre-activation): "stages.{i}.blocks.{j}", "stages.{i}", i = 0..3, and "norm"
  (the final BN+ReLU); default stages.0..stages.3.
- convnextv2_base: "stages.{i}.blocks.{j}", "stages.{i}", i = 0..3; default stages.0..stages.3.
- vit_b16 / vit_l32 / dinov2_giant / vit_tiny: "blocks.{i}" (block outputs before the final norm), tokens
  with CLS (and DINOv2's 4 registers with registers=true) dropped; default 4 evenly spaced blocks
  ending with the last (ViT-B: 2, 5, 8, 11; ViT-L: 5, 11, 17, 23; DINOv2-g: 9, 19, 29, 39).
Preprocessing follows the timm weights' config (mean/std, interpolation, crop_pct), at `img_size`.
dinov2_giant has no classifier in its weights; `linear_head=<file>` adds DINOv2's published ImageNet linear head
(dinov2_vitg14_linear_head.pth, or ..._reg4_... with registers), applied as DINOv2's hub classifiers do: to the
final-normed CLS token concatenated with the mean of the final-normed patch tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import timm
import torch
from torch import Tensor, nn

from semrsm.models.backbone import Backbone, Tap, evenly_spaced
from semrsm.models.preprocess import preprocess_from_crop_pct
from semrsm.models.weights import MissingWeightsError, hub_file, load_checkpoint

ARCH_OPTIONS = {
    "resnet": (),
    "resnetv2": (),
    "convnext": ("depths", "dims"),
    "vit": ("depth", "embed_dim", "num_heads", "patch_size"),
}
TIMM_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
DINOV2_HEADS = (
    "https://dl.fbaipublicfiles.com/dinov2/dinov2_vitg14/"  # + dinov2_vitg14[_reg4]_linear_head.pth
)


@dataclass(frozen=True)
class TimmSpec:
    """A timm architecture, its default pretrained tag, its tap family and preprocessing defaults."""

    architecture: str
    tag: str
    family: str
    img_size: int | None = None
    crop_pct: float | None = None
    model_kwargs: dict = field(default_factory=dict)


TIMM_SPECS = {
    "resnet18": TimmSpec("resnet18", "tv_in1k", "resnet"),
    "resnet50": TimmSpec("resnet50", "tv_in1k", "resnet"),
    "resnet101": TimmSpec("resnet101", "tv_in1k", "resnet"),
    "convnextv2_base": TimmSpec("convnextv2_base", "fcmae_ft_in22k_in1k", "convnext"),
    "vit_b16": TimmSpec("vit_base_patch16_224", "augreg2_in21k_ft_in1k", "vit"),
    "vit_l32": TimmSpec("vit_large_patch32_384", "orig_in21k_ft_in1k", "vit"),
    "dinov2_giant": TimmSpec("vit_giant_patch14_dinov2", "lvd142m", "vit", img_size=224, crop_pct=0.875),
    "bit50": TimmSpec("resnetv2_50x1_bit", "goog_in21k_ft_in1k", "resnetv2", img_size=224),
    "vit_tiny": TimmSpec("vit_tiny_patch16_224", "augreg_in21k_ft_in1k", "vit"),
}


def build_timm_backbone(
    name: str,
    pretrained: bool | str = False,
    layers: list[str] | None = None,
    tokens: str = "sequence",
    tag: str | None = None,
    img_size: int | None = None,
    crop_pct: float | None = None,
    num_classes: int | None = None,
    registers: bool = False,
    linear_head: str | None = None,
    **arch_options,
) -> Backbone:
    """Build timm backbone `name` (a key of TIMM_SPECS).

    tag: timm pretrained tag (weights and preprocessing); img_size: input resolution (ViTs are built
    for it, pretrained position embeddings are resampled); crop_pct: image_size / resize_size;
    num_classes: classifier size (0 = no head); registers: DINOv2 with 4 register tokens; linear_head
    (dinov2_giant): a local file of DINOv2's ImageNet linear head; arch_options (not with hub weights): ViT
    depth / embed_dim / num_heads / patch_size, ConvNeXt depths / dims."""
    spec = TIMM_SPECS[name]
    unknown = sorted(set(arch_options) - set(arch_option_names(name)))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for backbone '{name}'")
    if arch_options and pretrained is True:
        raise ValueError(
            f"architecture options {sorted(arch_options)} change backbone '{name}': its hub weights do not fit, "
            "use pretrained=false or a checkpoint of the changed architecture"
        )
    if registers and name != "dinov2_giant":
        raise ValueError(f"registers=true only applies to dinov2_giant, not '{name}'")
    if linear_head is not None and name != "dinov2_giant":
        raise ValueError(f"linear_head only applies to dinov2_giant, not '{name}'")
    if linear_head is not None:
        require_dinov2_head(linear_head, registers)  # fail fast, before a 1.1B-parameter model is built
    architecture = "vit_giant_patch14_reg4_dinov2" if registers else spec.architecture
    model_name = f"{architecture}.{tag or spec.tag}"
    try:
        pretrained_cfg = timm.models.get_pretrained_cfg(model_name)
    except RuntimeError:
        pretrained_cfg = None
    if pretrained_cfg is None:
        raise ValueError(
            f"unknown timm tag {tag!r} for backbone '{name}'; valid: {timm.list_pretrained(architecture + '.*')}"
        )
    kwargs = dict(arch_options)
    img_size = img_size or spec.img_size
    if spec.family == "vit" and img_size:
        kwargs["img_size"] = img_size
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    model = _create(name, model_name, pretrained, pretrained_cfg.hf_hub_id, kwargs)

    cfg = model.pretrained_cfg
    preprocess = preprocess_from_crop_pct(
        img_size or cfg["input_size"][-1],
        crop_pct or spec.crop_pct or cfg["crop_pct"],
        cfg["mean"],
        cfg["std"],
        cfg["interpolation"],
    )
    taps, default_layers = _taps(spec.family, model)
    head = model.num_classes or None
    run, class_names = (run_timm_classifier if head else run_timm_features), _imagenet_class_names(model)
    if linear_head is not None:
        model.dinov2_linear_head = load_dinov2_linear_head(linear_head, model.embed_dim, registers)
        run, head = run_dinov2_linear, model.dinov2_linear_head.out_features
        class_names = timm.data.ImageNetInfo("imagenet-1k").label_descriptions()
    return Backbone(
        name,
        model,
        preprocess,
        taps,
        default_layers,
        run=run,
        layers=layers,
        tokens=tokens,
        num_classes=head,
        class_names=class_names,
    )


def require_dinov2_head(path: str, registers: bool = False) -> str:
    """The file name DINOv2 publishes its linear head under; MissingWeightsError naming it and where to get it
    when ``path`` is not a file."""
    file = f"dinov2_vitg14{'_reg4' if registers else ''}_linear_head.pth"
    if not Path(path).is_file():
        raise MissingWeightsError(
            f"No DINOv2 linear head at {path}: download {DINOV2_HEADS}{file} (the head of DINOv2's hub "
            "classifier dinov2_vitg14_lc) and set backbone.linear_head to its path"
        )
    return file


def load_dinov2_linear_head(path: str, embed_dim: int, registers: bool = False) -> nn.Linear:
    """DINOv2's published ImageNet linear head (1000 classes on [CLS, mean patch token], 2 * embed_dim inputs)
    from a local file; MissingWeightsError naming the file and where to get it when absent."""
    file = require_dinov2_head(path, registers)
    state = torch.load(path, map_location="cpu", weights_only=True)
    head = nn.Linear(2 * embed_dim, 1000)
    try:
        head.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ValueError(
            f"{path} is not a DINOv2 linear head for {2 * embed_dim} inputs ({file}): {error}"
        ) from error
    return head.eval()


def run_dinov2_linear(model: nn.Module, images: Tensor) -> Tensor:
    """Logits of DINOv2's linear classifier: its head on [normed CLS token, mean of normed patch tokens]."""
    tokens = model.forward_features(images)
    patches = tokens[:, model.num_prefix_tokens :].mean(dim=1)
    return model.dinov2_linear_head(torch.cat([tokens[:, 0], patches], dim=1))


def arch_option_names(name: str) -> tuple[str, ...]:
    """Architecture options (random init only) of timm backbone `name`."""
    return ARCH_OPTIONS[TIMM_SPECS[name].family]


def _create(
    name: str, model_name: str, pretrained: bool | str, hub_id: str | None, kwargs: dict
) -> nn.Module:
    if pretrained is True:
        if not hub_id:
            raise ValueError(f"timm weights {model_name} for backbone '{name}' are not on the hub")
        weights = hub_file(name, hub_id, TIMM_WEIGHT_FILES)
        model = timm.create_model(
            model_name, pretrained=True, pretrained_cfg_overlay={"file": str(weights)}, **kwargs
        )
    else:
        model = timm.create_model(model_name, pretrained=False, **kwargs)
        if pretrained:
            load_checkpoint(model, pretrained, name)
    return model.eval()


def run_timm_classifier(model: nn.Module, images: Tensor) -> Tensor:
    """Logits of a timm classifier."""
    return model(images)


def run_timm_features(model: nn.Module, images: Tensor) -> None:
    """Run a headless timm model for its taps only."""
    model.forward_features(images)


def _taps(family: str, model: nn.Module) -> tuple[dict[str, Tap], list[str]]:
    taps: dict[str, Tap] = {}
    if family == "vit":
        patch = model.patch_embed.patch_size[0]
        names = [f"blocks.{i}" for i in range(len(model.blocks))]
        for block in names:
            taps[block] = Tap(block, "tokens", prefix_tokens=model.num_prefix_tokens, patch_size=patch)
        return taps, evenly_spaced(names)
    if family == "resnet":
        stages = [(f"layer{i}", getattr(model, f"layer{i}")) for i in range(1, 5)]
    else:
        stages = [(f"stages.{i}", stage) for i, stage in enumerate(model.stages)]
    for stage_name, stage in stages:
        blocks = stage if family == "resnet" else stage.blocks
        prefix = stage_name if family == "resnet" else f"{stage_name}.blocks"
        for j in range(len(blocks)):
            taps[f"{prefix}.{j}"] = Tap(f"{prefix}.{j}", "NCHW")
        taps[stage_name] = Tap(stage_name, "NCHW")
    if family == "resnetv2":
        taps["norm"] = Tap("norm", "NCHW")
    return taps, [stage_name for stage_name, _ in stages]


def _imagenet_class_names(model: nn.Module) -> list[str] | None:
    subset = timm.data.infer_imagenet_subset(model)
    if subset is None:
        return None
    names = timm.data.ImageNetInfo(subset).label_descriptions()
    return names if len(names) == model.num_classes else None
