"""Feature store: keys, round trip, resumable shards, atomic publication."""

import errno
import json
import logging
import os

import numpy as np
import pytest

from semrsm.pipeline.feature_store import FeatureSet, ShardedFeatureWriter, feature_key, open_feature_set
from semrsm.storage import CorruptFileError, NoSpaceError, file_checksum

LAYOUTS = {"conv": "NCHW", "tok": "NTD"}
N = 7


def _rows(n=N):
    rng = np.random.default_rng(1)
    features = {"conv": rng.normal(size=(n, 3, 2, 2)), "tok": rng.normal(size=(n, 5, 4))}
    logits = rng.normal(size=(n, 3))
    samples = [{"id": f"s{i}", "label": i - 1, "objects": (i, 2), "meta": {"i": i}} for i in range(n)]
    return features, logits, samples


def _add(writer, idx, features, logits, samples):
    writer.add(idx, {k: v[idx] for k, v in features.items()}, [samples[i] for i in idx], logits[idx])


def _assert_manifest_checksums_match_the_files(entry):
    """The manifest's checksums are combined from the shards' (finalize does not read the files again)."""
    recorded = json.loads((entry / "manifest.json").read_text())["checksums"]
    assert len(recorded) == 4  # samples.json, two layers, logits
    for name, record in recorded.items():
        assert record == {"bytes": (entry / name).stat().st_size, "checksum": file_checksum(entry / name)}


def test_feature_key_is_stable_and_order_independent():
    assert feature_key({"a": 1, "b": [1, 2]}) == feature_key({"b": [1, 2], "a": 1})
    assert feature_key({"a": 1}) != feature_key({"a": 2})
    assert len(feature_key({})) == 16
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        feature_key({"a": object()})


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_round_trip_both_layouts(tmp_path, dtype):
    features, logits, samples = _rows()
    writer = ShardedFeatureWriter(tmp_path, {"x": 1}, N, LAYOUTS, dtype=dtype, shard_size=3, has_logits=True)
    for idx in ([0, 1], [2, 3, 4], [5, 6]):  # batches straddle shard boundaries
        _add(writer, idx, features, logits, samples)
    fs = writer.finalize()
    assert open_feature_set(tmp_path, writer.key).path == fs.path
    assert fs.layers == ("conv", "tok") and fs.layouts == LAYOUTS and len(fs) == N
    for layer, array in features.items():
        stored = fs.layer(layer)
        assert isinstance(stored, np.memmap) and stored.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(stored, array.astype(dtype))
    np.testing.assert_array_equal(fs.logits, logits.astype(np.float32))
    assert fs.ids == tuple(f"s{i}" for i in range(N))
    np.testing.assert_array_equal(fs.labels, np.arange(N) - 1)
    assert fs.objects[3] == (3, 2) and fs.meta[4] == {"i": 4}
    manifest = json.loads((fs.path / "manifest.json").read_text())
    assert manifest["shapes"] == {"conv": [N, 3, 2, 2], "tok": [N, 5, 4]} and manifest["key_config"] == {
        "x": 1
    }
    assert not writer.partial_dir.exists()
    _assert_manifest_checksums_match_the_files(fs.path)
    with pytest.raises(ValueError, match="unknown layer 'nope'"):
        fs.layer("nope")


def test_shards_survive_a_kill_and_only_the_rest_is_pending(tmp_path):
    features, logits, samples = _rows()
    first = ShardedFeatureWriter(tmp_path, {"x": 1}, N, LAYOUTS, shard_size=3, has_logits=True)
    _add(first, [0, 1, 2, 3], features, logits, samples)  # shard 0 complete, shard 1 half done: "killed"
    assert open_feature_set(tmp_path, first.key) is None
    resumed = ShardedFeatureWriter(tmp_path, {"x": 1}, N, LAYOUTS, shard_size=3, has_logits=True)
    assert resumed.pending_indices() == [3, 4, 5, 6]
    _add(resumed, [3, 4, 5, 6], features, logits, samples)
    finished = resumed.finalize()
    np.testing.assert_array_equal(finished.layer("tok"), features["tok"].astype(np.float32))
    _assert_manifest_checksums_match_the_files(finished.path)


def test_changed_shard_plan_discards_old_shards(tmp_path):
    features, logits, samples = _rows()
    first = ShardedFeatureWriter(tmp_path, {"x": 1}, N, LAYOUTS, shard_size=3, has_logits=True)
    _add(first, [0, 1, 2], features, logits, samples)
    other = ShardedFeatureWriter(tmp_path, {"x": 1}, N, LAYOUTS, shard_size=2, has_logits=True)
    assert other.pending_indices() == list(range(N))


def test_finalize_refuses_missing_shards(tmp_path):
    features, logits, samples = _rows()
    writer = ShardedFeatureWriter(tmp_path, {"x": 1}, N, LAYOUTS, shard_size=3, has_logits=True)
    _add(writer, [0, 1, 2], features, logits, samples)
    with pytest.raises(RuntimeError, match=r"shards \[1, 2\] not written"):
        writer.finalize()
    assert open_feature_set(tmp_path, writer.key) is None


def test_bad_input_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="dtype must be one of"):
        ShardedFeatureWriter(tmp_path, {}, N, LAYOUTS, dtype="float64")
    with pytest.raises(ValueError, match="layouts must be one of"):
        ShardedFeatureWriter(tmp_path, {}, N, {"a": "NHWC"})
    writer = ShardedFeatureWriter(tmp_path, {}, N, LAYOUTS)
    samples = [{"id": "a", "label": 0, "objects": (), "meta": {}}]
    with pytest.raises(ValueError, match="layer 'conv': expected a NCHW array"):
        writer.add([0], {"conv": np.zeros((1, 3, 2)), "tok": np.zeros((1, 2, 2))}, samples)
    with pytest.raises(ValueError, match="expected"):
        writer.add([0], {"conv": np.zeros((1, 3, 2, 2))}, samples)
    with pytest.raises(ValueError, match="invalid for 7 samples"):
        writer.add([9], {"conv": np.zeros((1, 3, 2, 2)), "tok": np.zeros((1, 2, 2))}, samples)
    half = ShardedFeatureWriter(tmp_path, {"h": 1}, N, LAYOUTS, dtype="float16")
    with pytest.raises(ValueError, match="overflows float16"):
        half.add([0], {"conv": np.full((1, 3, 2, 2), 1e6), "tok": np.zeros((1, 2, 2))}, samples)


def test_missing_feature_set_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="no complete feature set"):
        FeatureSet(tmp_path / "nothing")


def _flip_byte(path, offset_from_end=8):
    data = bytearray(path.read_bytes())
    data[-offset_from_end] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_corrupt_or_truncated_entry_is_refused_naming_the_file(tmp_path):
    features, logits, samples = _rows()
    writer = ShardedFeatureWriter(tmp_path, {"x": 1}, N, LAYOUTS, shard_size=3, has_logits=True)
    _add(writer, list(range(N)), features, logits, samples)
    entry = writer.finalize().path
    layer_file = entry / "layers" / "01_tok.npy"
    _flip_byte(layer_file)
    with pytest.raises(CorruptFileError, match=r"01_tok\.npy: checksum"):
        open_feature_set(tmp_path, writer.key)
    _flip_byte(layer_file)  # flipped back: valid again
    assert open_feature_set(tmp_path, writer.key).layer("tok").shape == (N, 5, 4)
    layer_file.write_bytes(layer_file.read_bytes()[:-4])
    with pytest.raises(CorruptFileError, match=r"01_tok\.npy: \d+ bytes, expected"):
        open_feature_set(tmp_path, writer.key)
    (entry / "manifest.json").write_text((entry / "manifest.json").read_text()[:40])
    with pytest.raises(CorruptFileError, match=r"manifest\.json: not valid JSON"):
        open_feature_set(tmp_path, writer.key)


def test_a_resume_redoes_finished_shards_whose_rows_changed(tmp_path, caplog):
    features, logits, samples = _rows()
    first = ShardedFeatureWriter(tmp_path, {"x": 1}, N, LAYOUTS, shard_size=3, has_logits=True)
    _add(first, [0, 1, 2, 3, 4, 5], features, logits, samples)  # shards 0 and 1 finished, then "killed"
    conv = np.load(first.entry_dir / "layers" / "00_conv.npy", mmap_mode="r+")
    conv[4, 0, 0, 0] += 1.0  # a flipped value in shard 1
    conv.flush()
    del conv, first
    with caplog.at_level(logging.WARNING):
        resumed = ShardedFeatureWriter(tmp_path, {"x": 1}, N, LAYOUTS, shard_size=3, has_logits=True)
    assert "shard 1" in caplog.text and "fails its checksum" in caplog.text
    assert resumed.pending_indices() == [3, 4, 5, 6]
    _add(resumed, [3, 4, 5, 6], features, logits, samples)
    np.testing.assert_array_equal(resumed.finalize().layer("conv"), features["conv"].astype(np.float32))


def test_finalize_refuses_an_array_file_longer_than_its_rows(tmp_path):
    features, logits, samples = _rows()
    writer = ShardedFeatureWriter(tmp_path, {"x": 1}, N, LAYOUTS, shard_size=3, has_logits=True)
    _add(writer, list(range(N)), features, logits, samples)
    with open(writer.entry_dir / "layers" / "01_tok.npy", "ab") as handle:
        handle.write(b"stray")
    with pytest.raises(CorruptFileError, match=r"01_tok\.npy: \d+ bytes, expected \d+ \(header and 7 rows\)"):
        writer.finalize()
    assert open_feature_set(tmp_path, writer.key) is None


def test_a_truncated_shard_marker_counts_as_unfinished(tmp_path):
    features, logits, samples = _rows()
    first = ShardedFeatureWriter(tmp_path, {"x": 1}, N, LAYOUTS, shard_size=3, has_logits=True)
    _add(first, [0, 1, 2], features, logits, samples)
    marker = first.shard_dir / "000000.json"
    marker.write_text(marker.read_text()[:10])
    resumed = ShardedFeatureWriter(tmp_path, {"x": 1}, N, LAYOUTS, shard_size=3, has_logits=True)
    assert resumed.pending_indices() == list(range(N))


def test_disk_full_at_allocation_is_an_error_and_leaves_no_array(tmp_path, monkeypatch):
    features, logits, samples = _rows()
    writer = ShardedFeatureWriter(tmp_path, {"x": 1}, N, LAYOUTS, shard_size=3, has_logits=True)

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(NoSpaceError, match=f"cannot write to {writer.partial_dir}"):
        _add(writer, [0, 1], features, logits, samples)
    assert not list(writer.partial_dir.glob("*.tmp")) and not list((writer.entry_dir / "layers").iterdir())
