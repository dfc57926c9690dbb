"""`Backbone`: a wrapped model whose forward returns the activations of named layers.

Layers are tapped with forward hooks registered for the duration of one forward call, so any
library's model (timm, open_clip, segment-anything, transformers, torchvision) is tapped the same way.
Every tap converts its module's raw output to one of two layouts:

- "NCHW": conv feature maps (B, C, H, W); SAM's channels-last blocks are permuted to this layout.
- "NTD": ViT patch tokens (B, T, D) in row-major patch order. CLS and register tokens (the first
  `prefix_tokens` of the sequence) are split off and dropped, so T = number of patches. With
  `tokens="grid"` patch tokens are returned as an "NCHW" grid (B, D, H/patch, W/patch) instead.

When the backbone has no classification head, the forward pass stops right after the deepest tapped
layer has run (later layers are not computed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import Tensor, nn

from semrsm.models.preprocess import Preprocess

TOKEN_MODES = ("sequence", "grid")


@dataclass(frozen=True)
class Tap:
    """Where a layer lives (`module`, a path in the wrapped model) and how its output is laid out.

    kind: "NCHW" (conv maps), "NHWC" (channels-last maps) or "tokens" ((B, T, D), the first
    `prefix_tokens` being CLS/register tokens, patches of `patch_size` pixels after them)."""

    module: str
    kind: str
    prefix_tokens: int = 0
    patch_size: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("NCHW", "NHWC", "tokens"):
            raise ValueError(f"unknown tap kind {self.kind!r}")
        if self.kind == "tokens" and self.patch_size < 1:
            raise ValueError(f"token tap {self.module!r} needs a patch_size")


class _AllTapsCaptured(Exception):
    """Raised from a hook to end a forward pass whose remaining layers are not needed."""


def _first_tensor(output) -> Tensor:
    if isinstance(output, Tensor):
        return output
    if isinstance(output, Sequence) and output and isinstance(output[0], Tensor):
        return output[0]
    raise TypeError(f"tapped module returned {type(output).__name__}, not a tensor")


class Backbone(nn.Module):
    """A model with named layer taps, its preprocessing and (optionally) its classification head.
    Built in eval mode (deterministic forward); call .train() to fine-tune or train it.

    Attributes: name, preprocess, layers (tapped layer names in depth order), layouts (layer -> "NCHW"
    or "NTD"), has_head, num_classes, class_names (ImageNet names when the head is ImageNet's, else
    None), available_layers (every tappable layer name in depth order), model (the wrapped module).
    """

    def __init__(
        self,
        name: str,
        model: nn.Module,
        preprocess: Preprocess,
        taps: dict[str, Tap],
        default_layers: Sequence[str],
        run: Callable[[nn.Module, Tensor], Tensor | None],
        layers: Sequence[str] | None = None,
        tokens: str = "sequence",
        num_classes: int | None = None,
        class_names: list[str] | None = None,
    ) -> None:
        super().__init__()
        if tokens not in TOKEN_MODES:
            raise ValueError(f"tokens={tokens!r} is not one of {TOKEN_MODES}")
        self.name = name
        self.model = model
        self.preprocess = preprocess
        self.available_layers = list(taps)
        self._taps = taps
        self._run = run
        self.tokens = tokens
        self.layers = self._select_layers(default_layers if layers is None else layers)
        self.layouts = {layer: self._layout(taps[layer]) for layer in self.layers}
        self.num_classes = num_classes
        self.has_head = num_classes is not None
        self.class_names = class_names
        for layer in self.available_layers:
            model.get_submodule(taps[layer].module)  # fail at build time on a wrong module path
        self.eval()

    def _select_layers(self, layers: Sequence[str]) -> list[str]:
        if isinstance(layers, str) or not layers:
            raise ValueError(f"layers must be a non-empty list of layer names, got {layers!r}")
        unknown = [layer for layer in layers if layer not in self._taps]
        if unknown:
            raise ValueError(
                f"unknown layer(s) {unknown} for backbone '{self.name}'; valid: {self.available_layers}"
            )
        chosen = set(layers)
        return [layer for layer in self.available_layers if layer in chosen]

    def _layout(self, tap: Tap) -> str:
        return "NTD" if tap.kind == "tokens" and self.tokens == "sequence" else "NCHW"

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """Activations of every tapped layer (in its layout) and "logits" when the backbone has a head."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(images.shape)}")
        captured: dict[str, Tensor] = {}
        handles = [
            self.model.get_submodule(self._taps[layer].module).register_forward_hook(
                self._hook(layer, captured)
            )
            for layer in self.layers
        ]
        logits = None
        try:
            logits = self._run(self.model, images)
        except _AllTapsCaptured:
            pass
        finally:
            for handle in handles:
                handle.remove()
        outputs = {layer: self._convert(self._taps[layer], captured[layer], images) for layer in self.layers}
        if self.has_head:
            outputs["logits"] = logits
        return outputs

    def _hook(self, layer: str, captured: dict[str, Tensor]):
        def hook(module: nn.Module, inputs, output) -> None:
            # A module may run more than once per forward (e.g. CLIPSeg's conditional pass): keep the first.
            captured.setdefault(layer, _first_tensor(output))
            if not self.has_head and len(captured) == len(self.layers):
                raise _AllTapsCaptured

        return hook

    def _convert(self, tap: Tap, raw: Tensor, images: Tensor) -> Tensor:
        if tap.kind == "NCHW":
            if raw.ndim != 4:
                raise ValueError(f"layer {tap.module!r} gave shape {tuple(raw.shape)}, expected (B, C, H, W)")
            return raw
        if tap.kind == "NHWC":
            return raw.permute(0, 3, 1, 2).contiguous()
        patches = raw[:, tap.prefix_tokens :, :]
        if self.tokens == "sequence":
            return patches
        height, width = images.shape[2] // tap.patch_size, images.shape[3] // tap.patch_size
        if height * width != patches.shape[1]:
            raise ValueError(
                f"layer {tap.module!r}: {patches.shape[1]} patch tokens do not form a {height}x{width} grid"
            )
        return patches.transpose(1, 2).reshape(patches.shape[0], patches.shape[2], height, width)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, layers={self.layers}, has_head={self.has_head}"


def evenly_spaced(names: Sequence[str], count: int = 4) -> list[str]:
    """`count` names spread evenly over `names`, always ending with the last one."""
    total = len(names)
    if total <= count:
        return list(names)
    return [names[round((i + 1) * total / count) - 1] for i in range(count)]
