"""Atomic local file writes: write to a temporary sibling, then os.replace, so readers never see partial files."""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path` (same suffix); on success it replaces `path`, on error it is removed."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.stem}.{uuid.uuid4().hex[:8]}.tmp{target.suffix}")
    try:
        yield temporary
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write `text` (UTF-8) to `path`, creating parent directories."""
    with atomic_path(path) as temporary:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    return Path(path)


def to_jsonable(value: Any) -> Any:
    """Convert numpy/torch scalars and arrays, paths, tuples and sets to JSON types; NaN/inf become None."""
    if isinstance(value, dict):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(item) for item in value]
    if hasattr(value, "tolist") and not isinstance(value, str):  # numpy / torch scalars and arrays
        return to_jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise ValueError(f"cannot store value of type {type(value).__name__} as JSON: {value!r}")


def atomic_write_json(path: str | os.PathLike, data: Any) -> Path:
    """Atomically write `data` as strict JSON (see `to_jsonable`), indented and key-sorted."""
    return atomic_write_text(
        path, json.dumps(to_jsonable(data), indent=2, sort_keys=True, allow_nan=False) + "\n"
    )
