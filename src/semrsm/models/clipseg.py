"""CLIPSeg (transformers CLIPSegForImageSegmentation, "CIDAS/clipseg-rd64-refined").

Taps: "encoder.{i}" (CLIP ViT-B/16 vision encoder layers, i = 0..11, 768-d tokens, 22x22 patches at
352x352) and "decoder.{k}" (the decoder's transformer layers, 64-d tokens over the same patches);
CLS tokens dropped. Default: encoder.2, .5, .8, .11. The decoder is prompt-conditioned; with no text
tokenizer offline it is conditioned on each image's own CLIP image embedding (CLIPSeg's visual-prompt
mode), which costs a second pass of the vision encoder and runs only when a decoder layer is tapped.
No classification head. Preprocessing: 352x352, ImageNet mean/std (CLIPSeg's processor values).
"""

from __future__ import annotations

from torch import Tensor, nn
from transformers import CLIPSegConfig, CLIPSegForImageSegmentation

from semrsm.models.backbone import Backbone, Tap, evenly_spaced
from semrsm.models.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess
from semrsm.models.weights import hub_file, load_checkpoint

HUB_ID = "CIDAS/clipseg-rd64-refined"
IMAGE_SIZE = 352
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def rd64_refined_config(depth: int = 12, hidden_size: int = 768, num_heads: int = 12) -> CLIPSegConfig:
    """The architecture of CIDAS/clipseg-rd64-refined (vision tower size overridable for tests)."""
    return CLIPSegConfig(
        vision_config=dict(
            hidden_size=hidden_size,
            intermediate_size=4 * hidden_size,
            num_hidden_layers=depth,
            num_attention_heads=num_heads,
            patch_size=16,
            image_size=224,
        ),
        projection_dim=512,
        extract_layers=[depth // 4, depth // 2, 3 * depth // 4],
        reduce_dim=64,
        decoder_num_attention_heads=4,
        conditional_layer=0,
        use_complex_transposed_convolution=True,
    )


def build_clipseg(
    name: str = "clipseg",
    pretrained: bool | str = False,
    layers: list[str] | None = None,
    tokens: str = "sequence",
    img_size: int = IMAGE_SIZE,
    depth: int = 12,
    hidden_size: int = 768,
    num_heads: int = 12,
) -> Backbone:
    """CLIPSeg rd64-refined; depth/hidden_size/num_heads shrink the vision tower (not with hub weights)."""
    if pretrained is True:
        if (depth, hidden_size, num_heads) != (12, 768, 12):
            raise ValueError(
                f"depth/hidden_size/num_heads change backbone '{name}' and need pretrained=false"
            )
        weights = hub_file(name, HUB_ID, WEIGHT_FILES)
        hub_file(name, HUB_ID, ("config.json",))
        model = CLIPSegForImageSegmentation.from_pretrained(str(weights.parent))
    else:
        model = CLIPSegForImageSegmentation(rd64_refined_config(depth, hidden_size, num_heads))
        if pretrained:
            load_checkpoint(model, pretrained, name)
    patch = model.config.vision_config.patch_size
    encoder = [f"encoder.{i}" for i in range(model.config.vision_config.num_hidden_layers)]
    taps = {
        layer: Tap(f"clip.vision_model.encoder.layers.{i}", "tokens", prefix_tokens=1, patch_size=patch)
        for i, layer in enumerate(encoder)
    }
    for k in range(len(model.decoder.layers)):
        taps[f"decoder.{k}"] = Tap(f"decoder.layers.{k}", "tokens", prefix_tokens=1, patch_size=patch)
    preprocess = Preprocess(img_size, img_size, IMAGENET_MEAN, IMAGENET_STD, "bilinear")
    return Backbone(
        name,
        model.eval(),
        preprocess,
        taps,
        evenly_spaced(encoder),
        run=run_self_conditioned,
        layers=layers,
        tokens=tokens,
    )


def run_self_conditioned(model: nn.Module, images: Tensor) -> None:
    """Run CLIPSeg on `images`, each conditioned on its own CLIP image embedding."""
    model(pixel_values=images, conditional_pixel_values=images, interpolate_pos_encoding=True)
