import errno
import json
import logging
import multiprocessing
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from semrsm.storage import (
    CorruptFileError,
    NoSpaceError,
    atomic_path,
    atomic_save_npz,
    atomic_write_json,
    checksum,
    concatenated_checksum,
    content_hash,
    file_checksum,
    file_lock,
    join_run_tables,
    publish_dir,
    read_json,
    read_npz,
    reserve_file,
    to_jsonable,
    verify_file,
)


def test_atomic_path_replaces_on_success_and_cleans_up_on_error(tmp_path):
    target = tmp_path / "sub" / "result.csv"
    with atomic_path(target) as temporary:
        assert temporary.suffix == ".csv" and temporary.parent == target.parent
        temporary.write_text("new")
    assert target.read_text() == "new"
    with pytest.raises(OSError):
        with atomic_path(target) as temporary:
            temporary.write_text("partial")
            raise OSError("disk full")
    assert target.read_text() == "new"
    assert sorted(path.name for path in target.parent.iterdir()) == ["result.csv"]


def test_to_jsonable_converts_array_types_and_non_finite_values(tmp_path):
    data = {
        "a": np.float32(0.5),
        "b": torch.tensor([1, 2]),
        "c": (Path("x"), float("inf")),
        3: np.bool_(True),
    }
    assert to_jsonable(data) == {"a": 0.5, "b": [1, 2], "c": ["x", None], "3": True}
    atomic_write_json(tmp_path / "d.json", data)
    assert json.loads((tmp_path / "d.json").read_text())["c"] == ["x", None]
    with pytest.raises(ValueError, match="object"):
        to_jsonable({"bad": object()})


def test_checksums_detect_a_flipped_byte_and_a_truncation(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(bytes(range(256)) * 64)
    expected, size = file_checksum(path), path.stat().st_size
    assert expected == checksum(np.frombuffer(path.read_bytes(), dtype=np.uint8))
    verify_file(path, size, expected)
    data = bytearray(path.read_bytes())
    data[1000] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match=r"a\.bin: checksum crc32:"):
        verify_file(path, size, expected)
    path.write_bytes(bytes(data[:500]))
    with pytest.raises(CorruptFileError, match="500 bytes, expected 16384"):
        verify_file(path, size, expected)


def test_the_checksum_of_a_concatenation_comes_from_its_parts_checksums():
    rng = np.random.default_rng(0)
    for _ in range(50):
        lengths = rng.choice([0, 1, 3, 8, 255, 4096, int(rng.integers(0, 70_000))], size=rng.integers(1, 5))
        parts = [rng.integers(0, 256, size=n, dtype=np.uint8).tobytes() for n in lengths]
        combined = concatenated_checksum((checksum(part), len(part)) for part in parts)
        assert combined == checksum(b"".join(parts)), lengths
    assert concatenated_checksum([]) == checksum(b"")
    with pytest.raises(ValueError, match="not a checksum of this module: 'md5:00'"):
        concatenated_checksum([("md5:00", 2)])


def test_truncated_json_and_npz_raise_errors_naming_the_file(tmp_path):
    good = atomic_write_json(tmp_path / "m.json", {"a": [1, 2]})
    assert read_json(good) == {"a": [1, 2]}
    good.write_text(good.read_text()[:5])
    with pytest.raises(CorruptFileError, match=r"m\.json: not valid JSON"):
        read_json(good)
    npz = atomic_save_npz(tmp_path / "s.npz", scores=np.arange(1000.0))
    np.testing.assert_array_equal(read_npz(npz, ("scores",))["scores"], np.arange(1000.0))
    with pytest.raises(CorruptFileError, match="lacks the array"):
        read_npz(npz, ("nope",))
    data = bytearray(npz.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the stored array: the zip CRC fails
    npz.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match=r"s\.npz"):
        read_npz(npz, ("scores",))
    npz.write_bytes(bytes(data[:300]))
    with pytest.raises(CorruptFileError, match=r"s\.npz"):
        read_npz(npz, ("scores",))


def test_content_hash_is_order_independent_and_sorts_sets():
    assert content_hash({"a": 1, "b": {2, 1}}) == content_hash({"b": {1, 2}, "a": 1})
    assert content_hash({"a": 1}) != content_hash({"a": 2}) and len(content_hash({})) == 16


def test_disk_full_while_reserving_is_an_error_naming_the_directory(tmp_path, monkeypatch):
    path = tmp_path / "big.npy"
    path.write_bytes(b"")

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(NoSpaceError, match=rf"cannot write to {tmp_path} \(no space left; 1\.0 MiB needed"):
        reserve_file(path, 2**20)
    with pytest.raises(NoSpaceError, match="not enough space"):
        reserve_file(path, 2**62)  # more than any disk: refused before trying


def test_publish_dir_replaces_a_directory_whole(tmp_path):
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "x").write_text("new")
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "y").write_text("old")
    publish_dir(tmp_path / "new", tmp_path / "target")
    assert sorted(p.name for p in (tmp_path / "target").iterdir()) == ["x"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target"]


def _hold_lock(path, seconds):
    with file_lock(path):
        time.sleep(seconds)
        path.with_suffix(".released").touch()


def test_file_lock_waits_for_another_process_and_says_so(tmp_path, caplog):
    lock = tmp_path / "x.lock"
    holder = multiprocessing.get_context("fork").Process(target=_hold_lock, args=(lock, 1.5))
    holder.start()
    deadline = time.monotonic() + 10
    while not lock.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)
    with caplog.at_level(logging.WARNING), file_lock(lock, waiting="busy elsewhere"):
        assert lock.with_suffix(".released").exists()  # we got the lock only once the holder let it go
    holder.join()
    assert "busy elsewhere" in caplog.text


def test_join_run_tables_stacks_each_table_with_the_run_first(tmp_path):
    for run, rows in (("a", [1, 2]), ("b", [3])):
        (tmp_path / run).mkdir()
        pd.DataFrame({"x": rows, "run": "stale"}).to_csv(tmp_path / run / "t.csv", index=False)
    (tmp_path / "b" / "empty.csv").write_text("")
    runs = [(run, {p.stem: p for p in sorted((tmp_path / run).glob("*.csv"))}) for run in ("a", "b")]
    joined = join_run_tables(runs)
    assert list(joined) == ["t"]
    assert joined["t"].to_dict("list") == {"run": ["a", "a", "b"], "x": [1, 2, 3]}
