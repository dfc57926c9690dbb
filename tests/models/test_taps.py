"""Layer taps return the right tensors: same values as the model's own computation, CLS/register
tokens split off, grid and sequence layouts consistent, early stop for headless models."""

import pytest
import torch

from semrsm.models import build_backbone

SMALL_VIT = dict(img_size=32, patch_size=8, depth=3, embed_dim=32, num_heads=2)


def test_resnet_last_stage_equals_forward_features():
    backbone = build_backbone("resnet18", img_size=64)
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out = backbone(images)
        assert torch.allclose(out["layer4"], backbone.model.forward_features(images))
        assert torch.allclose(out["logits"], backbone.model(images))


def test_vit_tokens_drop_cls_and_match_block_output():
    backbone = build_backbone("vit_tiny", layers=["blocks.2"], **SMALL_VIT)
    images = torch.randn(2, 3, 32, 32)
    model = backbone.model
    with torch.no_grad():
        x = model._pos_embed(model.patch_embed(images))
        for block in model.blocks:
            x = block(x)
        out = backbone(images)
    assert model.num_prefix_tokens == 1
    assert torch.allclose(out["blocks.2"], x[:, 1:, :])


def test_registers_are_split_off():
    backbone = build_backbone(
        "dinov2_giant", registers=True, img_size=56, depth=2, embed_dim=96, num_heads=4, layers=["blocks.1"]
    )
    assert backbone.model.num_prefix_tokens == 5
    with torch.no_grad():
        out = backbone(torch.randn(1, 3, 56, 56))
    assert tuple(out["blocks.1"].shape) == (1, 16, 96)


def test_grid_is_row_major_reshape_of_sequence():
    options = dict(layers=["blocks.0", "blocks.2"], **SMALL_VIT)
    sequence = build_backbone("vit_tiny", **options)
    grid = build_backbone("vit_tiny", tokens="grid", **options)
    grid.load_state_dict(sequence.state_dict())
    images = torch.randn(2, 3, 32, 32)  # 4 x 4 patches
    with torch.no_grad():
        seq_out, grid_out = sequence(images), grid(images)
    assert grid.layouts == {"blocks.0": "NCHW", "blocks.2": "NCHW"}
    assert tuple(grid_out["blocks.2"].shape) == (2, 32, 4, 4)
    token = seq_out["blocks.2"][:, 1 * 4 + 2, :]  # patch in row 1, column 2
    assert torch.equal(grid_out["blocks.2"][:, :, 1, 2], token)


def test_layers_are_returned_in_depth_order():
    backbone = build_backbone("resnet18", layers=["layer4", "layer1.0", "layer2"], img_size=32)
    assert backbone.layers == ["layer1.0", "layer2", "layer4"]
    assert list(backbone.layouts) == backbone.layers


def test_unknown_layer_lists_valid_layers():
    with pytest.raises(ValueError, match=r"unknown layer.*'layer5'.*valid:.*'layer4'"):
        build_backbone("resnet18", layers=["layer5"])
    with pytest.raises(ValueError, match="non-empty list"):
        build_backbone("resnet18", layers=[])


def test_headless_backbone_stops_after_deepest_tap():
    backbone = build_backbone(
        "dinov2_giant", img_size=28, depth=3, embed_dim=96, num_heads=4, layers=["blocks.1"]
    )
    calls = []
    backbone.model.blocks[2].register_forward_hook(lambda *args: calls.append(1))
    with torch.no_grad():
        out = backbone(torch.randn(1, 3, 28, 28))
    assert list(out) == ["blocks.1"] and calls == []


def test_sam_blocks_are_permuted_to_nchw():
    backbone = build_backbone(
        "sam_vit_b", img_size=64, depth=2, embed_dim=32, num_heads=2, global_attn_indexes=[1]
    )
    images = torch.randn(1, 3, 64, 64)
    raw = {}
    backbone.model.blocks[1].register_forward_hook(lambda m, i, o: raw.setdefault("x", o))
    with torch.no_grad():
        out = backbone(images)
    assert tuple(raw["x"].shape) == (1, 4, 4, 32)
    assert torch.equal(out["blocks.1"], raw["x"].permute(0, 3, 1, 2))
    assert tuple(out["neck"].shape) == (1, 256, 4, 4)


def test_clipseg_decoder_taps_are_self_conditioned_tokens():
    backbone = build_backbone(
        "clipseg",
        img_size=64,
        depth=4,
        hidden_size=32,
        num_heads=2,
        layers=["encoder.3", "decoder.0", "decoder.2"],
    )
    with torch.no_grad():
        out = backbone(torch.randn(2, 3, 64, 64))
    assert tuple(out["encoder.3"].shape) == (2, 16, 32)
    assert tuple(out["decoder.0"].shape) == (2, 16, 64)
    assert tuple(out["decoder.2"].shape) == (2, 16, 64)


def test_bad_inputs_raise():
    backbone = build_backbone("resnet18", img_size=32)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        backbone(torch.randn(3, 32, 32))
    with pytest.raises(ValueError, match="tokens='rows'"):
        build_backbone("vit_tiny", tokens="rows", **SMALL_VIT)
