"""Safe local storage, used by every writer and cache of the pipeline.

- Atomic writes: a temporary sibling replaced into place (``atomic_path``, ``atomic_write_text/json``,
  ``atomic_save_npz``) and whole directories swapped in (``publish_dir``): readers see all or nothing.
- JSON: ``to_jsonable`` (numpy/torch values, paths, sets; NaN -> null), ``content_hash`` of a mapping.
- Integrity: ``checksum`` of bytes or a file (CRC-32), ``verify_file``; ``read_json`` and ``read_npz`` turn a
  truncated or corrupt file into ``CorruptFileError`` naming the path, instead of a raw decoder traceback.
- Space: ``reserve_file`` allocates a file's blocks before it is memory-mapped (a full disk then raises
  ``NoSpaceError`` naming the directory and the bytes needed, never SIGBUS on a later write to the map);
  ``disk_full_as_error`` translates ENOSPC/EDQUOT/EROFS of any write the same way.
- ``file_lock``: an exclusive inter-process lock on a file or directory, logging when it has to wait.
- Tables: ``join_run_tables`` stacks each named CSV table of several runs into one, with a leading run column.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import math
import os
import shutil
import uuid
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

CHUNK_BYTES = 16 * 2**20
_FULL_ERRNOS = {errno.ENOSPC: "no space left", errno.EDQUOT: "disk quota exceeded", errno.EROFS: "read-only"}


class CorruptFileError(ValueError):
    """A stored file is truncated, unreadable or fails its checksum; the message names it."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = Path(path)
        super().__init__(f"corrupt or truncated file {self.path}: {problem}")


class NoSpaceError(OSError):
    """A write failed for lack of space (or a read-only file system); the message names the directory."""


# --- JSON and hashes ---------------------------------------------------------------------------------------


def to_jsonable(value: Any) -> Any:
    """Convert mappings (OmegaConf's too, interpolations resolved), sequences, sets (sorted), numpy/torch scalars
    and arrays and paths to JSON types; NaN/inf -> None."""
    if isinstance(value, Mapping):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, set | frozenset):
        return sorted((to_jsonable(item) for item in value), key=repr)
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [to_jsonable(item) for item in value]
    if hasattr(value, "tolist") and not isinstance(value, str):  # numpy / torch scalars and arrays
        return to_jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise ValueError(f"cannot store {value!r} as JSON: type {type(value).__name__} is not JSON-serialisable")


def content_hash(data: Mapping[str, Any]) -> str:
    """Stable 16-hex-digit hash of a JSON-convertible mapping (independent of key order)."""
    text = json.dumps(to_jsonable(data), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def checksum(data: bytes | memoryview | np.ndarray) -> str:
    """CRC-32 of a buffer (a contiguous array's bytes), as "crc32:<8 hex digits>"."""
    if isinstance(data, np.ndarray):
        data = memoryview(np.ascontiguousarray(data)).cast("B")
    return f"crc32:{zlib.crc32(data) & 0xFFFFFFFF:08x}"


def _gf2_apply(matrix: list[int], vector: int) -> int:
    """The 32x32 matrix over GF(2) (one 32-bit column per entry) times ``vector``."""
    result, column = 0, 0
    while vector:
        if vector & 1:
            result ^= matrix[column]
        vector >>= 1
        column += 1
    return result


def crc32_combine(first: int, second: int, second_length: int) -> int:
    """The CRC-32 of ``a + b`` from ``crc32(a)``, ``crc32(b)`` and ``len(b)``, without reading either: the CRC of
    ``a`` is carried through ``len(b)`` zero bytes by repeated squaring of the one-zero-bit operator (zlib's
    ``crc32_combine``, which Python's zlib does not expose)."""
    if second_length < 0:
        raise ValueError(f"second_length must be >= 0, got {second_length}")
    operator = [0xEDB88320] + [1 << bit for bit in range(31)]  # the CRC register after one more zero bit
    for _ in range(3):  # one zero byte = eight zero bits
        operator = [_gf2_apply(operator, column) for column in operator]
    crc = first
    while second_length:
        if second_length & 1:
            crc = _gf2_apply(operator, crc)
        second_length >>= 1
        if second_length:
            operator = [_gf2_apply(operator, column) for column in operator]
    return crc ^ second


def concatenated_checksum(parts: Iterable[tuple[str, int]]) -> str:
    """``checksum`` of the concatenation of buffers given as (their ``checksum``, their length in bytes)."""
    crc = 0
    for part, length in parts:
        algorithm, _, digits = part.partition(":")
        if algorithm != "crc32" or len(digits) != 8:
            raise ValueError(f"not a checksum of this module: {part!r}")
        crc = crc32_combine(crc, int(digits, 16), length)
    return f"crc32:{crc:08x}"


def file_checksum(path: str | os.PathLike) -> str:
    """``checksum`` of a whole file, read in chunks."""
    value = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            value = zlib.crc32(chunk, value)
    return f"crc32:{value & 0xFFFFFFFF:08x}"


def verify_file(path: str | os.PathLike, size: int, expected: str) -> None:
    """Raise CorruptFileError unless ``path`` exists with ``size`` bytes and checksum ``expected``."""
    path = Path(path)
    if not path.is_file():
        raise CorruptFileError(path, "the file is missing")
    actual_size = path.stat().st_size
    if actual_size != size:
        raise CorruptFileError(path, f"{actual_size} bytes, expected {size}")
    actual = file_checksum(path)
    if actual != expected:
        raise CorruptFileError(path, f"checksum {actual}, expected {expected}")


# --- reading ----------------------------------------------------------------------------------------------


def read_json(path: str | os.PathLike) -> Any:
    """Parse a JSON file; CorruptFileError (naming it) if it is truncated or not JSON."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CorruptFileError(path, f"not valid JSON ({error})") from None


def read_npz(path: str | os.PathLike, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The arrays ``names`` of an ``.npz`` file, read whole (zip CRCs checked); CorruptFileError if it is
    truncated, fails a CRC or lacks an array."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in names}
    except KeyError as error:
        raise CorruptFileError(path, f"lacks the array {error}") from None
    except (zipfile.BadZipFile, EOFError, ValueError, OSError, zlib.error) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise CorruptFileError(path, f"{type(error).__name__}: {error}") from None


# --- writing ----------------------------------------------------------------------------------------------


@contextmanager
def disk_full_as_error(directory: str | os.PathLike, needed: int | None = None) -> Iterator[None]:
    """Re-raise ENOSPC / EDQUOT / EROFS from the body as NoSpaceError naming ``directory`` and free space."""
    try:
        yield
    except OSError as error:
        if isinstance(error, NoSpaceError) or error.errno not in _FULL_ERRNOS:
            raise
        raise NoSpaceError(
            error.errno, _space_message(Path(directory), _FULL_ERRNOS[error.errno], needed)
        ) from None


def _space_message(directory: Path, problem: str, needed: int | None) -> str:
    try:
        free = f"{shutil.disk_usage(directory).free / 2**20:.1f} MiB free"
    except OSError:
        free = "free space unknown"
    want = f"{needed / 2**20:.1f} MiB needed, " if needed else ""
    return f"cannot write to {directory} ({problem}; {want}{free}): free space or set another directory"


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` (same suffix); on success it replaces ``path``, on error it is
    removed. A full disk raises NoSpaceError."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.stem}.{uuid.uuid4().hex[:8]}.tmp{target.suffix}")
    try:
        with disk_full_as_error(target.parent):
            yield temporary
            os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write ``text`` (UTF-8) to ``path``, creating parent directories."""
    with atomic_path(path) as temporary:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    return Path(path)


def atomic_write_json(path: str | os.PathLike, data: Any) -> Path:
    """Atomically write ``data`` as strict JSON (see ``to_jsonable``), indented and key-sorted."""
    return atomic_write_text(
        path, json.dumps(to_jsonable(data), indent=2, sort_keys=True, allow_nan=False) + "\n"
    )


def atomic_save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> Path:
    """Atomically write ``arrays`` to an ``.npz`` file (each member carries a zip CRC-32)."""
    with atomic_path(path) as temporary:
        np.savez(temporary, **arrays)
    return Path(path)


def join_run_tables(
    runs: Iterable[tuple[str, Mapping[str, str | os.PathLike]]], column: str = "run"
) -> dict[str, pd.DataFrame]:
    """Per table name, the rows of every run's CSV file of that name stacked into one table whose first column
    ``column`` holds the run's label. ``runs``: (label, {table name: CSV path}); empty files are skipped."""
    parts: dict[str, list[pd.DataFrame]] = {}
    for label, tables in runs:
        for name, path in tables.items():
            try:
                table = pd.read_csv(path)
            except pd.errors.EmptyDataError:
                continue
            parts.setdefault(name, []).append(
                table.drop(columns=column, errors="ignore").assign(**{column: label})
            )
    joined = {}
    for name, frames in parts.items():
        table = pd.concat(frames, ignore_index=True, sort=False)
        joined[name] = table[[column, *table.columns.drop(column)]]
    return joined


def publish_dir(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Move directory ``source`` to ``target``, replacing an existing ``target`` without ever showing a mix."""
    source, target = Path(source), Path(target)
    if not source.exists():
        return
    old = target.with_name(f"{target.name}.old-{uuid.uuid4().hex[:8]}")
    if target.exists():
        os.replace(target, old)
    os.replace(source, target)
    shutil.rmtree(old, ignore_errors=True)


def reserve_file(path: str | os.PathLike, size: int) -> None:
    """Allocate the blocks of ``path`` up to ``size`` bytes (it must exist), so that writes through a memory map
    cannot fail later; NoSpaceError, naming the directory and the bytes needed, if they are not available."""
    path = Path(path)
    free = shutil.disk_usage(path.parent).free
    needed = max(0, size - path.stat().st_blocks * 512)
    if needed > free:
        raise NoSpaceError(errno.ENOSPC, _space_message(path.parent, "not enough space", needed))
    with disk_full_as_error(path.parent, needed), open(path, "r+b") as handle:
        os.posix_fallocate(handle.fileno(), 0, size)


@contextmanager
def file_lock(path: str | os.PathLike, waiting: str | None = None) -> Iterator[None]:
    """Exclusive inter-process lock on ``path``, an existing directory or a lock file (created if needed);
    released on exit or when the process dies. If another process holds it, logs ``waiting`` (when given)
    and waits."""
    path = Path(path)
    if path.is_dir():
        handle = os.open(path, os.O_RDONLY)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting:
                log.warning("%s", waiting)
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)  # closing the descriptor releases the lock
