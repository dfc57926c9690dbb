"""segment-anything ViT-B image encoder ("sam_vit_b").

Built with segment-anything's ImageEncoderViT and exactly the hyperparameters of
`sam_model_registry["vit_b"]` (overridable for tests). Taps: "blocks.{i}" (i = 0..11, channels-last
maps permuted to NCHW, 768x64x64 at 1024x1024) and "neck" (the 256x64x64 image embedding);
default blocks.2, .5, .8, .11 (the global-attention blocks) and neck. No classification head.
Preprocessing: SAM's ImageNet mean/std; shorter side resized to 1024 and centre-cropped (SAM itself
resizes the longer side and pads). Weights: only a local file (sam_vit_b_01ec64.pth, the full SAM
state dict; its "image_encoder." entries are used).
"""

from __future__ import annotations

from functools import partial

from segment_anything.modeling import ImageEncoderViT
from torch import Tensor, nn

from semrsm.models.backbone import Backbone, Tap
from semrsm.models.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess
from semrsm.models.weights import MissingWeightsError, load_checkpoint

CHECKPOINT_URL = "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth"
VIT_B = dict(img_size=1024, depth=12, embed_dim=768, num_heads=12, global_attn_indexes=(2, 5, 8, 11))


def build_sam_vit_b(
    name: str = "sam_vit_b",
    pretrained: bool | str = False,
    layers: list[str] | None = None,
    tokens: str = "sequence",
    img_size: int = VIT_B["img_size"],
    depth: int = VIT_B["depth"],
    embed_dim: int = VIT_B["embed_dim"],
    num_heads: int = VIT_B["num_heads"],
    global_attn_indexes: tuple[int, ...] = VIT_B["global_attn_indexes"],
) -> Backbone:
    """SAM ViT-B image encoder; `pretrained` must be a checkpoint path (there is no hub copy)."""
    if pretrained is True:
        raise MissingWeightsError(
            f"Backbone '{name}' has no hub weights: download {CHECKPOINT_URL} where there is internet "
            f"and pass the file: backbone.pretrained=/path/to/sam_vit_b_01ec64.pth"
        )
    encoder = ImageEncoderViT(
        img_size=img_size,
        depth=depth,
        embed_dim=embed_dim,
        num_heads=num_heads,
        global_attn_indexes=tuple(global_attn_indexes),
        patch_size=16,
        mlp_ratio=4,
        norm_layer=partial(nn.LayerNorm, eps=1e-6),
        qkv_bias=True,
        use_rel_pos=True,
        window_size=14,
        out_chans=256,
    )
    if pretrained:
        load_checkpoint(encoder, pretrained, name)
    taps = {f"blocks.{i}": Tap(f"blocks.{i}", "NHWC") for i in range(depth)}
    taps["neck"] = Tap("neck", "NCHW")
    default_layers = [f"blocks.{i}" for i in global_attn_indexes] + ["neck"]
    preprocess = Preprocess(img_size, img_size, IMAGENET_MEAN, IMAGENET_STD, "bilinear")
    return Backbone(
        name, encoder.eval(), preprocess, taps, default_layers, run=run_encoder, layers=layers, tokens=tokens
    )


def run_encoder(model: nn.Module, images: Tensor) -> None:
    """Run the image encoder for its taps."""
    model(images)
