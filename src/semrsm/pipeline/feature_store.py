"""On-disk feature store: per-layer ``.npy`` arrays keyed by a hash of what determines them.

Layout of one complete entry ``<root>/<key>/``::

    manifest.json          human-readable: key config, layers, layouts, shapes, dtype, sample count, details
    samples.json           per sample: id, label, objects, meta
    layers/<nn>_<layer>.npy  one memory-mappable array per tapped layer, (N, C, H, W) or (N, T, D)
    logits.npy             (N, K) float32, only for backbones with a classification head

While it is being computed the entry lives in ``<root>/<key>.partial/``: its per-layer arrays are
preallocated there once the first batch gives their shapes, and every batch is written straight into its rows.
Samples are grouped into fixed-size shards; a shard is finished once its rows are flushed and its marker
file (holding its samples) is written atomically, so a killed extraction resumes with unfinished shards only.
The complete entry appears with one ``os.replace``: readers see all of it or nothing.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

FORMAT_VERSION = 1
DTYPES = ("float16", "float32")
LAYOUTS = ("NCHW", "NTD")
_SHARD_NAME = re.compile(r"^\d{6}$")


def feature_key(key_config: Mapping[str, Any]) -> str:
    """Stable 16-hex-digit hash of a JSON-serialisable mapping (independent of key order)."""
    text = json.dumps(key_config, sort_keys=True, separators=(",", ":"), default=_json_default)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise ValueError(f"value {value!r} of type {type(value).__name__} is not JSON-serialisable")


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=_json_default))
    os.replace(tmp, path)


def _layer_files(layers: Sequence[str]) -> dict[str, str]:
    """File name per layer: an index prefix keeps names unique after replacing unsafe characters."""
    return {layer: f"{i:02d}_{re.sub(r'[^A-Za-z0-9_.-]', '_', layer)}.npy" for i, layer in enumerate(layers)}


@contextmanager
def store_lock(root: Path, key: str) -> Iterator[None]:
    """Exclusive inter-process lock on one store entry (parallel sweep jobs wait instead of racing)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{key}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class FeatureSet:
    """A complete store entry: lazily memory-mapped per-layer arrays plus per-sample ids, labels, objects, meta."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        manifest_path = self.path / "manifest.json"
        if not manifest_path.is_file():
            raise FileNotFoundError(f"no complete feature set at {self.path} (missing {manifest_path.name})")
        self.manifest: dict[str, Any] = json.loads(manifest_path.read_text())
        samples = json.loads((self.path / "samples.json").read_text())
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

    def __len__(self) -> int:
        return len(self.ids)

    def layer(self, name: str) -> np.ndarray:
        """Read-only memory map of one layer, (N, C, H, W) or (N, T, D)."""
        if name not in self.manifest["files"]:
            raise ValueError(f"unknown layer {name!r}; this feature set has {list(self.layers)}")
        return np.load(self.path / "layers" / self.manifest["files"][name], mmap_mode="r")

    @property
    def logits(self) -> np.ndarray | None:
        """(N, K) classifier logits, or None for backbones without a head."""
        path = self.path / "logits.npy"
        return np.load(path, mmap_mode="r") if path.is_file() else None

    def __repr__(self) -> str:
        return f"FeatureSet({self.path}, n={len(self)}, layers={list(self.layers)}, dtype={self.dtype})"


def open_feature_set(root: str | Path, key: str) -> FeatureSet | None:
    """The complete entry ``key`` under ``root``, or None when it has not been (fully) written."""
    path = Path(root) / key
    return FeatureSet(path) if (path / "manifest.json").is_file() else None


class ShardedFeatureWriter:
    """Writes one store entry in place in fixed-size shards of samples, resumable, published atomically.

    Sample ``i`` belongs to shard ``i // shard_size``. Rows may arrive in any batch size; each batch is
    written straight into the preallocated memory-mapped arrays, and a shard is marked finished (rows flushed,
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
        """Reuse the rows of an interrupted run only if it wrote the same arrays; otherwise start over."""
        plan = {
            "key": self.key,
            "num_samples": self.num_samples,
            "shard_size": self.shard_size,
            "dtype": self.dtype,
            "files": {name: str(path) for name, path in self._paths.items()},
        }
        plan_path = self.partial_dir / "plan.json"
        if plan_path.is_file() and json.loads(plan_path.read_text()) != plan:
            shutil.rmtree(self.partial_dir)
        self.shard_dir.mkdir(parents=True, exist_ok=True)
        (self.entry_dir / "layers").mkdir(parents=True, exist_ok=True)
        _write_json(plan_path, plan)

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
        if completed:
            for output in outputs.values():
                output.flush()
            for shard in completed:
                _write_json(self._marker(shard), self._pending.pop(shard).samples)

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
        path = self.entry_dir / self._paths[name]
        if path.is_file():
            return np.lib.format.open_memmap(path, mode="r+")
        tmp = (
            self.partial_dir / f"{path.name}.tmp"
        )  # a kill mid-allocation leaves no half-made array in the entry
        array = np.lib.format.open_memmap(
            tmp, mode="w+", dtype=example.dtype, shape=(self.num_samples, *example.shape[1:])
        )
        os.replace(tmp, path)
        return array

    def finalize(self) -> FeatureSet:
        """Add samples and manifest to the finished arrays, publish the entry atomically, drop the shards."""
        missing = sorted(set(range(self.num_shards)) - self.finished_shards())
        if missing or self._pending:
            raise RuntimeError(f"cannot finalize {self.key}: shards {missing} not written yet")
        self._arrays = None
        shapes = {
            name: list(np.load(self.entry_dir / path, mmap_mode="r").shape)
            for name, path in self._paths.items()
        }
        samples = [s for shard in range(self.num_shards) for s in json.loads(self._marker(shard).read_text())]
        _write_json(self.entry_dir / "samples.json", samples)
        _write_json(
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
            },
        )
        self._publish(self.entry_dir)
        return FeatureSet(self.root / self.key)

    def _publish(self, build: Path) -> None:
        target = self.root / self.key
        old = self.root / f"{self.key}.old-{os.getpid()}"
        if target.exists():
            os.replace(target, old)
        os.replace(build, target)
        shutil.rmtree(old, ignore_errors=True)
        shutil.rmtree(self.partial_dir, ignore_errors=True)


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
