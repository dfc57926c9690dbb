"""Read what an offline W&B run recorded, from its ``run-<id>.wandb`` file, without a server or an account.

wandb 0.31 has no Python reader for these files (``wandb sync`` reads them in its Go core), so this module
decodes the format: a 7-byte header (``:W&B``, magic 0xBEE1, version 0), then 32 KiB blocks of chunks, each
with a 7-byte header (CRC-32 of the type byte and the data, length, type: full, first, middle, last); a
record is one serialized ``wandb_internal_pb2.Record``, split over chunks where it crosses a block. A chunk
with a wrong checksum or a truncated file raises ValueError naming the file and offset.

``read_offline_run(path)`` gathers a run's group, job type, name, tags, config, summary (the final one the
run wrote), history keys and artifacts (logged and used, with type, metadata and manifest entries), and the
exit code (None: the run has not finished, or its records are not on disk yet). wandb's service writes the
file behind the run: after ``run.finish()`` it may still hold only the header until the service stops
(``wandb.teardown()``, or the end of the process that ran it).
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2

HEADER = struct.Struct("<4sHB")
HEADER_VALUES = (b":W&B", 0xBEE1, 0)
CHUNK = struct.Struct("<IHB")
BLOCK = 32 * 1024
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def _records(path: Path) -> Iterator[bytes]:
    data = path.read_bytes()
    if len(data) < HEADER.size or HEADER.unpack_from(data) != HEADER_VALUES:
        raise ValueError(f"{path} is not a wandb run file (no ':W&B' version 0 header)")
    offset, pending = HEADER.size, None
    while offset < len(data):
        room = BLOCK - offset % BLOCK
        if room < CHUNK.size:  # a block's tail too short for a chunk header is padding
            offset += room
            continue
        if offset + CHUNK.size > len(data):
            raise ValueError(f"{path}: truncated chunk header at byte {offset}")
        checksum, length, kind = CHUNK.unpack_from(data, offset)
        start = offset + CHUNK.size
        if kind == 0 and length == 0 and checksum == 0:  # zero fill after the last record of a block
            offset += room
            continue
        payload = data[start : start + length]
        if len(payload) != length:
            raise ValueError(f"{path}: truncated record at byte {offset}")
        if zlib.crc32(payload, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF != checksum:
            raise ValueError(f"{path}: checksum mismatch in the record at byte {offset}")
        offset = start + length
        if kind == FULL:
            yield payload
        elif kind == FIRST:
            pending = bytearray(payload)
        elif kind in (MIDDLE, LAST) and pending is not None:
            pending += payload
            if kind == LAST:
                yield bytes(pending)
                pending = None
        else:
            raise ValueError(f"{path}: unexpected chunk type {kind} at byte {offset - length - CHUNK.size}")


def read_records(path: str | Path) -> list[wandb_internal_pb2.Record]:
    """Every record of the run file ``path`` in order."""
    records = []
    for payload in _records(Path(path)):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        records.append(record)
    return records


def _value(item: Any) -> Any:
    return json.loads(item.value_json)


def _key(item: Any) -> str:
    return item.key if item.key else "/".join(item.nested_key)


@dataclass
class OfflineArtifact:
    name: str
    type: str
    metadata: dict[str, Any]
    entries: dict[str, dict[str, Any]]  # path in the artifact -> ref (None for a stored file), size, digest
    aliases: list[str]


@dataclass
class OfflineRun:
    path: Path
    id: str = ""
    project: str = ""
    group: str = ""
    job_type: str = ""
    name: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    logged_artifacts: list[OfflineArtifact] = field(default_factory=list)
    used_artifacts: list[dict[str, Any]] = field(default_factory=list)
    exit_code: int | None = None

    @property
    def history_keys(self) -> set[str]:
        return {key for row in self.history for key in row if not key.startswith("_")}


def _manifest(artifact: Any) -> dict[str, dict[str, Any]]:
    entries = {}
    for entry in artifact.manifest.contents:
        entries[entry.path] = {"ref": entry.ref or None, "size": entry.size, "digest": entry.digest}
    return entries


def read_offline_run(run_dir_or_file: str | Path) -> OfflineRun:
    """The recorded facts of one offline run: an ``offline-run-*`` directory or its ``.wandb`` file."""
    path = Path(run_dir_or_file)
    if path.is_dir():
        files = sorted(path.glob("*.wandb"))
        if len(files) != 1:
            raise FileNotFoundError(f"expected one .wandb file in {path}, found {len(files)}")
        path = files[0]
    run = OfflineRun(path)
    for record in read_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":  # the first one starts the run; later ones (updates) set only what they carry
            info = record.run
            fields = {
                "id": info.run_id,
                "project": info.project,
                "group": info.run_group,
                "job_type": info.job_type,
                "name": info.display_name,
                "tags": list(info.tags),
            }
            for name, value in fields.items():
                if value:
                    setattr(run, name, value)
            for item in info.config.update:
                run.config[_key(item)] = _value(item)
        elif kind == "config":
            for item in record.config.update:
                run.config[_key(item)] = _value(item)
        elif kind == "summary":
            for item in record.summary.update:
                run.summary[_key(item)] = _value(item)
            for item in record.summary.remove:
                run.summary.pop(_key(item), None)
        elif kind == "history":
            run.history.append({_key(item): _value(item) for item in record.history.item})
        elif kind == "artifact":
            art = record.artifact
            metadata = json.loads(art.metadata) if art.metadata else {}
            run.logged_artifacts.append(
                OfflineArtifact(art.name, art.type, metadata, _manifest(art), list(art.aliases))
            )
        elif kind == "use_artifact":
            use = record.use_artifact
            run.used_artifacts.append({"id": use.id, "type": use.type, "name": use.name})
        elif kind == "exit":
            run.exit_code = record.exit.exit_code
    config = {}
    for key, value in run.config.items():  # wandb stores each config entry as {"value": ..., "desc": ...}
        config[key] = value.get("value") if isinstance(value, dict) and "value" in value else value
    run.config = config
    return run


def find_offline_runs(root: str | Path) -> list[Path]:
    """Every ``offline-run-*`` directory under ``root``, sorted."""
    return sorted(p for p in Path(root).rglob("offline-run-*") if p.is_dir())
