"""On-disk feature store: per-layer ``.npy`` arrays keyed by a hash of what determines them.

Layout of one complete entry ``<root>/<key>/``::

    manifest.json          human-readable: key config, layers, layouts, shapes, dtype, sample count, details
    samples.json           per sample: id, label, objects, meta
    layers/<nn>_<layer>.npy  one memory-mappable array per tapped layer, (N, C, H, W) or (N, T, D)
    logits.npy             (N, K) float32, only for backbones with a classification head

While it is being computed the entry lives in ``<root>/<key>.partial/``: its per-layer arrays are preallocated
there once the first batch gives their shapes, and every batch is written straight into its rows. Samples are
grouped into fixed-size shards; a shard is finished once its rows are written and its marker file (holding its
samples and the checksum of its rows in every array) is written atomically, so a killed extraction resumes with
unfinished shards only; a resume re-checks the rows of every finished shard and redoes those that no longer match
(rows an OS crash lost from the page cache, a flipped byte). The arrays' blocks are reserved on disk before they
are memory-mapped, so a full disk is an error naming the directory, not a SIGBUS. The complete entry appears with
one ``os.replace``: readers see all of it or nothing. Its manifest records the size and checksum of every file (an
array's combined from its shards' checksums, so finishing reads nothing again), checked when the entry is opened: a
corrupt or truncated entry raises ``CorruptFileError`` naming the file, never loads.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np

from semrsm.storage import (
    CorruptFileError,
    atomic_write_json,
    checksum,
    concatenated_checksum,
    content_hash,
    disk_full_as_error,
    file_checksum,
    file_lock,
    publish_dir,
    read_json,
    reserve_file,
    verify_file,
)

log = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: checksums of every file in the manifest and of every shard's rows in its marker
DTYPES = ("float16", "float32")
LAYOUTS = ("NCHW", "NTD")
_SHARD_NAME = re.compile(r"^\d{6}$")
_MANIFEST_KEYS = ("key", "num_samples", "dtype", "layers", "layouts", "files", "checksums")
# Entries verified by this process, by the identity (size, mtime) of their files: each is hashed once.
_VERIFIED: dict[Path, tuple] = {}


def feature_key(key_config: Mapping[str, Any]) -> str:
    """Stable 16-hex-digit hash of a JSON-serialisable mapping (independent of key order)."""
    return content_hash(key_config)


def _layer_files(layers: Sequence[str]) -> dict[str, str]:
    """File name per layer: an index prefix keeps names unique after replacing unsafe characters."""
    return {layer: f"{i:02d}_{re.sub(r'[^A-Za-z0-9_.-]', '_', layer)}.npy" for i, layer in enumerate(layers)}


def store_lock(root: Path, key: str) -> AbstractContextManager[None]:
    """Exclusive inter-process lock on one store entry (parallel sweep jobs wait instead of racing)."""
    return file_lock(Path(root) / f"{key}.lock", waiting=f"waiting for another process writing {root / key}")


def _file_records(directory: Path, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Size and checksum of each file ``names`` (relative to ``directory``), as recorded in a manifest."""
    return {
        name: {"bytes": (directory / name).stat().st_size, "checksum": file_checksum(directory / name)}
        for name in names
    }


def verify_entry(path: Path, manifest: Mapping[str, Any]) -> None:
    """Check every file the manifest records (size and checksum), once per process and file state;
    CorruptFileError naming the first file that does not match."""
    records = manifest.get("checksums")
    if not isinstance(records, dict) or not records:
        raise CorruptFileError(path / "manifest.json", "it records no file checksums")
    identity = _identity(path, records)
    if _VERIFIED.get(path) == identity:
        return
    for name, record in records.items():
        verify_file(path / name, record["bytes"], record["checksum"])
    _VERIFIED[path] = identity


def _identity(path: Path, names) -> tuple:
    """(name, size, mtime) of each file: what must not have changed since an entry was verified."""
    try:
        return tuple((name, *_size_and_time(path / name)) for name in sorted(names))
    except FileNotFoundError as error:
        raise CorruptFileError(error.filename, "the file is missing") from None


def _size_and_time(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


class FeatureSet:
    """A complete store entry: lazily memory-mapped per-layer arrays plus per-sample ids, labels, objects, meta.

    Opening one checks the size and checksum of each of its files (``verify_entry``)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        manifest_path = self.path / "manifest.json"
        if not manifest_path.is_file():
            raise FileNotFoundError(f"no complete feature set at {self.path} (missing {manifest_path.name})")
        self.manifest: dict[str, Any] = read_json(manifest_path)
        absent = [key for key in _MANIFEST_KEYS if key not in self.manifest]
        if absent or self.manifest["key"] != self.path.name:
            raise CorruptFileError(
                manifest_path, f"keys {absent} missing or a key not matching its directory"
            )
        verify_entry(self.path, self.manifest)
        samples = read_json(self.path / "samples.json")
        self.ids: tuple[str, ...] = tuple(s["id"] for s in samples)
        self.labels: np.ndarray = np.asarray([s["label"] for s in samples], dtype=np.int64)
        self.objects: tuple[tuple[int, ...], ...] = tuple(tuple(s["objects"]) for s in samples)
        self.meta: tuple[dict[str, Any], ...] = tuple(s["meta"] for s in samples)
        self.computed_samples = 0  # set by extract_features: samples computed by that call (0: cache hit)

    @property
    def key(self) -> str:
        return self.manifest["key"]

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(self.manifest["layers"])

    @property
    def layouts(self) -> dict[str, str]:
        """Layout per layer: "NCHW" (conv maps) or "NTD" (tokens)."""
        return dict(self.manifest["layouts"])

    @property
    def dtype(self) -> str:
        return self.manifest["dtype"]

    def spatial_size(self, name: str) -> int:
        """Positions per sample of layer ``name``: H * W for NCHW maps, T for NTD tokens."""
        shape = self.layer(name).shape
        return int(shape[2] * shape[3]) if self.layouts[name] == "NCHW" else int(shape[1])

    def layer_checksum(self, name: str) -> str:
        """Checksum of ``name``'s array file: identifies its content (e.g. in the keys of RSM caches)."""
        return self.manifest["checksums"][f"layers/{self._file(name)}"]["checksum"]

    def _file(self, name: str) -> str:
        if name not in self.manifest["files"]:
            raise ValueError(f"unknown layer {name!r}; this feature set has {list(self.layers)}")
        return self.manifest["files"][name]

    def __len__(self) -> int:
        return len(self.ids)

    def layer(self, name: str) -> np.ndarray:
        """Read-only memory map of one layer, (N, C, H, W) or (N, T, D)."""
        return np.load(self.path / "layers" / self._file(name), mmap_mode="r")

    @property
    def logits(self) -> np.ndarray | None:
        """(N, K) classifier logits, or None for backbones without a head."""
        path = self.path / "logits.npy"
        return np.load(path, mmap_mode="r") if path.is_file() else None

    def __repr__(self) -> str:
        return f"FeatureSet({self.path}, n={len(self)}, layers={list(self.layers)}, dtype={self.dtype})"


def open_feature_set(root: str | Path, key: str) -> FeatureSet | None:
    """The complete entry ``key`` under ``root``, or None when it has not been (fully) written;
    CorruptFileError when one of its files does not match its manifest."""
    path = Path(root) / key
    return FeatureSet(path) if (path / "manifest.json").is_file() else None


class ShardedFeatureWriter:
    """Writes one store entry in place in fixed-size shards of samples, resumable, published atomically.

    Sample ``i`` belongs to shard ``i // shard_size``. Rows may arrive in any batch size; each batch is
    written straight into the preallocated memory-mapped arrays, and a shard is marked finished (its rows hashed,
    then a marker file written atomically) once all its rows have arrived. ``pending_indices()`` lists the
    samples of unfinished shards, so a restarted extraction computes only those. Call under ``store_lock``.
    """

    def __init__(
        self,
        root: str | Path,
        key_config: Mapping[str, Any],
        num_samples: int,
        layouts: Mapping[str, str],
        dtype: str = "float32",
        shard_size: int = 256,
        has_logits: bool = False,
        details: Mapping[str, Any] | None = None,
    ):
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        if shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {shard_size}")
        if not layouts:
            raise ValueError("layouts must name at least one layer")
        bad = {layer: layout for layer, layout in layouts.items() if layout not in LAYOUTS}
        if bad:
            raise ValueError(f"layouts must be one of {LAYOUTS}, got {bad}")
        self.root = Path(root)
        self.key_config = dict(key_config)
        self.key = feature_key(self.key_config)
        self.num_samples = num_samples
        self.layouts = dict(layouts)
        self.files = _layer_files(list(layouts))
        self.dtype = dtype
        self.shard_size = shard_size
        self.has_logits = has_logits
        self.details = dict(details or {})
        self.partial_dir = self.root / f"{self.key}.partial"
        self.shard_dir = self.partial_dir / "shards"
        self.entry_dir = self.partial_dir / "entry"
        self._paths = {layer: Path("layers") / self.files[layer] for layer in self.layouts}
        if has_logits:
            self._paths["__logits__"] = Path("logits.npy")
        self._arrays: dict[str, np.memmap] | None = None
        self._pending: dict[int, _ShardSamples] = {}
        self._prepare_partial_dir()

    @property
    def num_shards(self) -> int:
        return -(-self.num_samples // self.shard_size)

    def shard_range(self, shard: int) -> range:
        return range(shard * self.shard_size, min((shard + 1) * self.shard_size, self.num_samples))

    def _prepare_partial_dir(self) -> None:
        """Reuse the rows of an interrupted run only if it wrote the same arrays and its finished shards still
        match their checksums (mismatching shards are redone); otherwise start over."""
        plan = {
            "key": self.key,
            "num_samples": self.num_samples,
            "shard_size": self.shard_size,
            "dtype": self.dtype,
            "files": {name: str(path) for name, path in self._paths.items()},
        }
        plan_path = self.partial_dir / "plan.json"
        if plan_path.is_file() and _read_or_none(plan_path) != plan:
            shutil.rmtree(self.partial_dir)
        self.shard_dir.mkdir(parents=True, exist_ok=True)
        (self.entry_dir / "layers").mkdir(parents=True, exist_ok=True)
        atomic_write_json(plan_path, plan)
        self._drop_bad_shards()

    def _drop_bad_shards(self) -> None:
        """Delete the marker of every finished shard whose record is unreadable or whose rows no longer match
        their checksums (a flipped byte, a truncated array): those shards are computed again."""
        arrays = {}
        for name, path in self._paths.items():
            try:
                arrays[name] = np.load(self.entry_dir / path, mmap_mode="r")
            except (OSError, ValueError):  # missing, or a truncated header: no shard of it can be kept
                arrays[name] = None
        for shard in sorted(self.finished_shards()):
            marker = self._marker(shard)
            record = _read_or_none(marker)
            rows = self.shard_range(shard)
            expected = record.get("checksums", {}) if isinstance(record, dict) else {}
            good = set(expected) == set(arrays) and all(
                array is not None
                and array.shape[0] == self.num_samples
                and checksum(array[rows.start : rows.stop]) == expected[name]
                for name, array in arrays.items()
            )
            if not good:
                log.warning("feature store: shard %d of %s fails its checksum; recomputing it", shard, marker)
                marker.unlink()

    def discard_partial(self) -> None:
        """Drop all rows and shards of an interrupted run (``force``)."""
        self._arrays = None
        self._pending.clear()
        shutil.rmtree(self.partial_dir, ignore_errors=True)
        self._prepare_partial_dir()

    def _marker(self, shard: int) -> Path:
        return self.shard_dir / f"{shard:06d}.json"

    def finished_shards(self) -> set[int]:
        return {
            int(p.stem) for p in self.shard_dir.iterdir() if p.suffix == ".json" and _SHARD_NAME.match(p.stem)
        }

    def pending_indices(self) -> list[int]:
        """Sample indices of shards not yet finished on disk, in order."""
        done = self.finished_shards()
        return [i for shard in range(self.num_shards) if shard not in done for i in self.shard_range(shard)]

    def add(
        self,
        indices: Sequence[int] | np.ndarray,
        features: Mapping[str, np.ndarray],
        samples: Sequence[Mapping[str, Any]],
        logits: np.ndarray | None = None,
    ) -> None:
        """Write a batch of rows (global sample ``indices``) in place; marks every shard this completes."""
        indices = np.asarray(indices, dtype=np.int64)
        if set(features) != set(self.layouts):
            raise ValueError(f"features have layers {sorted(features)}, expected {sorted(self.layouts)}")
        if (logits is not None) != self.has_logits:
            raise ValueError(f"logits given: {logits is not None}, but has_logits={self.has_logits}")
        if len(samples) != len(indices) or indices.min() < 0 or indices.max() >= self.num_samples:
            raise ValueError(f"batch indices {indices.tolist()} invalid for {self.num_samples} samples")
        arrays = {layer: self._convert(layer, array, len(indices)) for layer, array in features.items()}
        if logits is not None:
            arrays["__logits__"] = np.asarray(logits, dtype=np.float32)
        outputs = self._outputs(arrays)
        for name, array in arrays.items():
            outputs[name][indices] = array
        for row, index in enumerate(indices.tolist()):
            shard = index // self.shard_size
            if shard not in self._pending:
                self._pending[shard] = _ShardSamples(self.shard_range(shard))
            self._pending[shard].put(index, samples[row])
        completed = [shard for shard, shard_samples in self._pending.items() if shard_samples.full]
        # No msync before a shard's marker: the rows are in the page cache, which outlives a killed process; what
        # an OS crash could lose is caught by the rows' checksums when the extraction resumes.
        for shard in completed:
            rows = self.shard_range(shard)
            sums = {name: checksum(output[rows.start : rows.stop]) for name, output in outputs.items()}
            record = {"samples": self._pending.pop(shard).samples, "checksums": sums}
            atomic_write_json(self._marker(shard), record)

    def _convert(self, layer: str, array: np.ndarray, batch: int) -> np.ndarray:
        array = np.asarray(array)
        expected_ndim = 4 if self.layouts[layer] == "NCHW" else 3
        if array.ndim != expected_ndim or array.shape[0] != batch:
            raise ValueError(
                f"layer {layer!r}: expected a {self.layouts[layer]} array with {batch} rows, got {array.shape}"
            )
        with np.errstate(over="ignore"):
            converted = array.astype(self.dtype, copy=False)
        if self.dtype == "float16" and not np.isfinite(converted).all() and np.isfinite(array).all():
            raise ValueError(
                f"layer {layer!r} overflows float16 (max |x| = {np.abs(array).max():.3g}); use float32"
            )
        return converted

    def _outputs(self, arrays: Mapping[str, np.ndarray]) -> dict[str, np.memmap]:
        """The entry's memory-mapped arrays: reopened, or preallocated with the shapes of this first batch."""
        if self._arrays is None:
            self._arrays = {name: self._open_array(name, array) for name, array in arrays.items()}
        for name, array in arrays.items():
            expected = self._arrays[name].shape[1:]
            if array.shape[1:] != expected:
                raise ValueError(
                    f"{name!r}: batch rows have shape {array.shape[1:]}, earlier samples {expected}"
                )
        return self._arrays

    def _open_array(self, name: str, example: np.ndarray) -> np.memmap:
        """Reopen the array of an interrupted run if it has the batch's row shape, else allocate it (blocks
        reserved on disk first: a full disk raises NoSpaceError here, not SIGBUS on a later write)."""
        path = self.entry_dir / self._paths[name]
        shape = (self.num_samples, *example.shape[1:])
        if path.is_file():
            try:
                existing = np.lib.format.open_memmap(path, mode="r+")
            except (OSError, ValueError):  # a truncated header or data
                existing = None
            if existing is not None and existing.shape == shape and existing.dtype == example.dtype:
                return existing
            del existing
            for marker in self.shard_dir.glob("*.json"):  # unreadable or other rows: nothing of them is kept
                marker.unlink()
        tmp = self.partial_dir / f"{path.name}.tmp"  # a kill mid-allocation leaves no half-made array
        nbytes = int(np.prod(shape)) * example.dtype.itemsize
        try:
            with disk_full_as_error(self.partial_dir, nbytes):
                created = np.lib.format.open_memmap(tmp, mode="w+", dtype=example.dtype, shape=shape)
                del created  # a sparse file so far: its blocks are reserved next
            reserve_file(tmp, tmp.stat().st_size)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, path)
        return np.lib.format.open_memmap(path, mode="r+")

    def finalize(self) -> FeatureSet:
        """Add samples and manifest (with every file's size and checksum) to the finished arrays, publish the
        entry atomically, drop the shards."""
        missing = sorted(set(range(self.num_shards)) - self.finished_shards())
        if missing or self._pending:
            raise RuntimeError(f"cannot finalize {self.key}: shards {missing} not written yet")
        self._arrays = None
        arrays = {name: np.load(self.entry_dir / path, mmap_mode="r") for name, path in self._paths.items()}
        shapes = {name: list(array.shape) for name, array in arrays.items()}
        records = [read_json(self._marker(shard)) for shard in range(self.num_shards)]
        atomic_write_json(
            self.entry_dir / "samples.json", [s for record in records for s in record["samples"]]
        )
        checksums = _file_records(self.entry_dir, ["samples.json"])
        for name, array in arrays.items():
            checksums[str(self._paths[name])] = self._array_record(name, array, records)
        del arrays
        atomic_write_json(
            self.entry_dir / "manifest.json",
            {
                "format": FORMAT_VERSION,
                "key": self.key,
                "num_samples": self.num_samples,
                "dtype": self.dtype,
                "layers": list(self.layouts),
                "layouts": self.layouts,
                "files": self.files,
                "shapes": {layer: shapes[layer] for layer in self.layouts},
                "logits_shape": shapes.get("__logits__"),
                "key_config": self.key_config,
                "details": self.details,
                "checksums": checksums,
            },
        )
        target = self.root / self.key
        publish_dir(self.entry_dir, target)
        shutil.rmtree(self.partial_dir, ignore_errors=True)
        # every row was hashed as it was written (or re-checked on resume): opening it need not hash it again
        _VERIFIED[target] = _identity(target, checksums)
        return FeatureSet(target)

    def _array_record(
        self, name: str, array: np.memmap, shards: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """The manifest record of a finished array file, its checksum combined from the .npy header's and the
        shards' (hashed when their rows were written, re-checked when a resume began): the file is not read
        again."""
        path = Path(array.filename)
        with open(path, "rb") as handle:
            header = handle.read(array.offset)
        parts = [(checksum(header), len(header))]
        for shard, record in enumerate(shards):
            parts.append((record["checksums"][name], len(self.shard_range(shard)) * array.strides[0]))
        size, expected = path.stat().st_size, sum(length for _, length in parts)
        if size != expected:
            raise CorruptFileError(path, f"{size} bytes, expected {expected} (header and {len(array)} rows)")
        return {"bytes": size, "checksum": concatenated_checksum(parts)}


def _read_or_none(path: Path) -> Any:
    """A JSON file's content, or None if it is unreadable (a truncated marker or plan counts as absent)."""
    try:
        return read_json(path)
    except (OSError, CorruptFileError):
        return None


class _ShardSamples:
    """Per-sample records of one shard until all of its rows have arrived."""

    def __init__(self, rows: range):
        self.start = rows.start
        self.samples: list[dict[str, Any] | None] = [None] * len(rows)
        self._missing = len(rows)

    @property
    def full(self) -> bool:
        return self._missing == 0

    def put(self, index: int, sample: Mapping[str, Any]) -> None:
        offset = index - self.start
        if self.samples[offset] is None:
            self._missing -= 1
        self.samples[offset] = {
            "id": str(sample["id"]),
            "label": int(sample["label"]),
            "objects": [int(o) for o in sample["objects"]],
            "meta": dict(sample["meta"]),
        }
