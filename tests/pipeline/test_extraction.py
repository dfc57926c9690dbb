"""Lightning feature extraction into the store: values, cache hits, resume after a kill, force, atomicity."""

import numpy as np
import pytest
import torch

from semrsm.pipeline.extraction import extract_features, make_dataloader
from semrsm.pipeline.feature_store import feature_key

SOURCE = {"dataset": {"name": "tiny", "n": 10}, "backbone": "tiny", "weights": "random-seed-0"}


def _extract(dataset, backbone, root, **options):
    options = {"batch_size": 2, "shard_size": 4, "progress_bar": False, **options}
    return extract_features(dataset, backbone, root, SOURCE, **options)


def _reference(dataset, backbone):
    batches = list(make_dataloader(dataset, backbone.preprocess.transform(), batch_size=4))
    with torch.no_grad():
        outs = [backbone(b["image"]) for b in batches]
    return {k: torch.cat([o[k] for o in outs]).numpy() for k in outs[0]}


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_extracted_features_match_a_plain_forward(
    tmp_path, tiny_dataset, tiny_backbone, make_backbone, dtype
):
    fs = _extract(tiny_dataset, tiny_backbone, tmp_path, dtype=dtype)
    reference = _reference(tiny_dataset, make_backbone())
    assert fs.layer("conv").shape == (10, 4, 8, 8) and fs.layer("tokens").shape == (10, 64, 6)
    tol = 1e-6 if dtype == "float32" else 2e-3
    for layer in ("conv", "tokens"):
        np.testing.assert_allclose(fs.layer(layer), reference[layer], rtol=tol, atol=tol)
    np.testing.assert_allclose(fs.logits, reference["logits"], rtol=1e-6, atol=1e-6)
    assert fs.ids == tuple(f"img{i:03d}" for i in range(10))
    assert fs.labels.tolist() == [i % 3 for i in range(10)] and fs.objects[4] == (1, 5)
    assert fs.meta[2] == {"index": 2, "box": [0, 1, 2, 3]}
    assert fs.manifest["key_config"]["source"] == SOURCE


def test_headless_backbone_stores_no_logits(tmp_path, tiny_dataset, make_backbone):
    assert _extract(tiny_dataset, make_backbone(has_head=False), tmp_path).logits is None


def test_complete_store_is_a_cache_hit_and_force_recomputes(tmp_path, tiny_dataset, tiny_backbone):
    first = _extract(tiny_dataset, tiny_backbone, tmp_path)
    assert tiny_backbone.calls == 5
    again = _extract(tiny_dataset, tiny_backbone, tmp_path)
    assert tiny_backbone.calls == 5 and again.path == first.path
    assert (first.computed_samples, again.computed_samples) == (10, 0)
    forced = _extract(tiny_dataset, tiny_backbone, tmp_path, force=True)
    assert tiny_backbone.calls == 10
    np.testing.assert_array_equal(forced.layer("conv"), first.layer("conv"))
    assert sorted(p.name for p in tmp_path.iterdir()) == [first.key, f"{first.key}.lock"]


def test_key_depends_on_dtype_and_source(tmp_path, tiny_dataset, make_backbone):
    a = _extract(tiny_dataset, make_backbone(), tmp_path, dtype="float32")
    b = _extract(tiny_dataset, make_backbone(), tmp_path, dtype="float16")
    conv_only = make_backbone()
    conv_only.layers = ("conv",)
    c = extract_features(
        tiny_dataset, conv_only, tmp_path, {**SOURCE, "layers": ["conv"]}, progress_bar=False
    )
    assert len({a.key, b.key, c.key}) == 3 and c.layers == ("conv",)
    assert a.key == feature_key(a.manifest["key_config"]) and a.manifest["key_config"]["dtype"] == "float32"
    assert "preprocess" in a.manifest["details"]


def test_factories_are_not_called_on_a_cache_hit(tmp_path, tiny_dataset, make_backbone):
    built = []

    def build_backbone():
        built.append(1)
        return make_backbone()

    _extract(lambda: tiny_dataset, build_backbone, tmp_path)
    _extract(lambda: pytest.fail("dataset built on a cache hit"), build_backbone, tmp_path)
    assert built == [1]


def test_missing_weights_fail_before_the_dataset_is_built(tmp_path):
    def missing_weights():
        raise FileNotFoundError("no checkpoint")

    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        _extract(lambda: pytest.fail("dataset built before the backbone"), missing_weights, tmp_path)


def test_resume_after_a_kill_computes_only_the_rest(tmp_path, tiny_dataset, make_backbone):
    killed = make_backbone()
    killed.fail_after_calls = 5 - 1  # 4 batches of 2 = 2 shards of 4 written, then the 5th batch "dies"
    with pytest.raises(RuntimeError, match="simulated kill"):
        _extract(tiny_dataset, killed, tmp_path / "store")
    assert [
        p.name for p in (tmp_path / "store").iterdir() if not p.name.endswith((".lock", ".partial"))
    ] == []
    resumed_backbone = make_backbone()
    resumed = _extract(tiny_dataset, resumed_backbone, tmp_path / "store")
    assert (
        resumed_backbone.samples_seen == resumed.computed_samples == 2
    )  # only the last shard (samples 8, 9)
    uninterrupted = _extract(tiny_dataset, make_backbone(), tmp_path / "fresh")
    for layer in ("conv", "tokens"):
        np.testing.assert_array_equal(resumed.layer(layer), uninterrupted.layer(layer))
    np.testing.assert_array_equal(resumed.logits, uninterrupted.logits)
    assert resumed.ids == uninterrupted.ids and resumed.meta == uninterrupted.meta


def test_failed_forced_recompute_keeps_the_old_store(tmp_path, tiny_dataset, make_backbone):
    first = _extract(tiny_dataset, make_backbone(), tmp_path)
    broken = make_backbone()
    broken.fail_after_calls = 1
    with pytest.raises(RuntimeError, match="simulated kill"):
        _extract(tiny_dataset, broken, tmp_path, force=True)
    assert len(type(first)(first.path)) == 10


def test_empty_dataset_is_rejected(tmp_path, tiny_backbone, make_dataset):
    with pytest.raises(ValueError, match="is empty"):
        _extract(make_dataset(n=0), tiny_backbone, tmp_path)
