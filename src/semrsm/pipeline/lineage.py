"""What a stage run read and wrote, for W&B artifacts with lineage: checkpoint -> features -> RSM -> results.

``run_stage`` opens ``recording()`` around a stage; ``load_features`` and ``layer_scores`` call
``note_features`` / ``note_rsm`` (no-ops outside a recording), the train stage ``note_checkpoint``. The
runner then hands the recorded ``Lineage`` to the logger, which logs one artifact per item: references to
the files (no upload of feature arrays or RSMs) plus small identifying files, each naming its parents.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from semrsm.reporting.wandb_conventions import artifact_name


def checkpoint_artifact_name(path: str | Path) -> str:
    """The artifact name of a checkpoint file: ``checkpoint-<file stem>`` (the train stage's output, which
    the stages loading that file name as their parent)."""
    return artifact_name("checkpoint", Path(path).stem)


@dataclass(frozen=True)
class Item:
    """One artifact: its name, type, files to reference, small files to store, metadata and parents."""

    name: str
    type: str
    references: tuple[Path, ...] = ()
    files: tuple[Path, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    parents: tuple[str, ...] = ()


@dataclass
class Lineage:
    """The artifacts of one stage run, in the order they were noted (parents before children)."""

    items: dict[str, Item] = field(default_factory=dict)

    def add(self, item: Item) -> None:
        self.items.setdefault(item.name, item)

    def names(self, kind: str) -> list[str]:
        return [name for name, item in self.items.items() if item.type == kind]


_current: ContextVar[Lineage | None] = ContextVar("semrsm_lineage", default=None)


@contextmanager
def recording() -> Iterator[Lineage]:
    """Record what the code inside reads and writes into a new ``Lineage``."""
    lineage = Lineage()
    token = _current.set(lineage)
    try:
        yield lineage
    finally:
        _current.reset(token)


def note_checkpoint(path: str | Path, **metadata: Any) -> None:
    """A checkpoint file the train stage wrote (referenced by path, with its checksum)."""
    if (lineage := _current.get()) is not None:
        path = Path(path).resolve()
        lineage.add(Item(checkpoint_artifact_name(path), "model", references=(path,), metadata=metadata))


def note_features(entry: Path, key: str, weights: str | None, **metadata: Any) -> None:
    """A feature store entry (directory ``entry``) a stage read or wrote; ``weights``: the checkpoint file its
    backbone loaded, if any (its parent)."""
    if (lineage := _current.get()) is None:
        return
    entry = Path(entry).resolve()
    parents = ()
    if weights is not None and Path(weights).is_file():
        parent = checkpoint_artifact_name(weights)
        lineage.add(Item(parent, "model", references=(Path(weights).resolve(),)))
        parents = (parent,)
    files = tuple(p for p in (entry / "manifest.json",) if p.is_file())
    name = artifact_name("features", metadata.get("backbone", ""), metadata.get("dataset", ""), key)
    lineage.add(Item(name, "features", (entry,), files, {"key": key, **metadata}, parents))


def note_rsm(path: Path, key: str, features_key: str, **metadata: Any) -> None:
    """An RSM cache entry (matched scores of one layer under one matcher) computed from features
    ``features_key``, which must have been noted before."""
    if (lineage := _current.get()) is None:
        return
    parents = tuple(n for n, item in lineage.items.items() if item.metadata.get("key") == features_key)
    name = artifact_name("rsm", metadata.get("layer", ""), metadata.get("matcher", ""), key)
    lineage.add(Item(name, "rsm", (Path(path).resolve(),), (), {"key": key, **metadata}, parents))
