"""open_clip ViT-B/32 image tower ("clip").

Taps: "resblocks.{i}" (i = 0..11, transformer block outputs, batch-first tokens), CLS token dropped;
default resblocks.2, .5, .8, .11 (7x7 patch grid at 224x224). No classification head.
Weights: pretrained tag via option `tag` ("openai" default, e.g. "laion2b_s34b_b79k"); a local
checkpoint is open_clip's full CLIP state dict (open_clip_pytorch_model.bin) or the visual tower's.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager

import open_clip
from torch import Tensor, nn

from semrsm.models.backbone import Backbone, Tap, evenly_spaced
from semrsm.models.preprocess import preprocess_from_crop_pct
from semrsm.models.weights import hub_file, load_checkpoint

ARCHITECTURE = "ViT-B-32"
DEFAULT_TAG = "openai"


def build_clip(
    name: str = "clip",
    pretrained: bool | str = False,
    layers: list[str] | None = None,
    tokens: str = "sequence",
    tag: str = DEFAULT_TAG,
) -> Backbone:
    """The image tower of open_clip's ViT-B-32 (QuickGELU as the `tag`'s weights require)."""
    cfg = open_clip.get_pretrained_cfg(ARCHITECTURE, tag)
    if not cfg:
        raise ValueError(
            f"unknown open_clip tag {tag!r} for backbone '{name}'; "
            f"valid: {open_clip.list_pretrained_tags_by_model(ARCHITECTURE)}"
        )
    weights = hub_file(name, *_split_hub(cfg["hf_hub"])) if pretrained is True else pretrained
    with _quiet_random_init_warning():
        model = open_clip.create_model(
            ARCHITECTURE, pretrained=None, force_quick_gelu=bool(cfg.get("quick_gelu", False))
        )
    if weights:
        load_checkpoint(model.visual, weights, name)
    visual = model.visual.eval()
    patch = visual.conv1.kernel_size[0]
    names = [f"resblocks.{i}" for i in range(len(visual.transformer.resblocks))]
    taps = {
        block: Tap(f"transformer.{block}", "tokens", prefix_tokens=1, patch_size=patch) for block in names
    }
    preprocess = preprocess_from_crop_pct(
        visual.image_size[0], 1.0, cfg["mean"], cfg["std"], cfg.get("interpolation", "bicubic")
    )
    return Backbone(
        name, visual, preprocess, taps, evenly_spaced(names), run=run_visual, layers=layers, tokens=tokens
    )


@contextmanager
def _quiet_random_init_warning():
    """Drop open_clip's "initialized randomly" warning: weights, if any, are loaded right after."""
    root = logging.getLogger()

    def drop(record: logging.LogRecord) -> bool:
        return "initialized randomly" not in record.getMessage()

    root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)


def _split_hub(hub: str) -> tuple[str, tuple[str, ...]]:
    """open_clip's "org/repo/" or "org/repo/file" hub entry -> repo id and candidate weight files."""
    org, repo, filename = (hub.split("/", 2) + [""])[:3]
    files = (filename,) if filename else ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
    return f"{org}/{repo}", files


def run_visual(model: nn.Module, images: Tensor) -> None:
    """Run the image tower for its taps."""
    model(images)
