"""Hydra glue: the run-directory resolver, building config nodes, stage errors Hydra prints without a traceback,
file identities, and the checks Hydra does not make on a composed config: the dataclass schemas of the shared
blocks (``features``, ``paths``, ``rsm``; each stage registers one for its ``experiment`` options), checked by
``check_schema`` (unknown keys with the closest valid one, types, ranges), and the option names of the kernel,
the matcher and the ``_target_`` groups, which their code defines."""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import inspect
import re
import typing
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from hydra.errors import CompactHydraException, InstantiationException
from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, ValidationError

from semrsm.pipeline.feature_store import DTYPES
from semrsm.similarity import get_matcher
from semrsm.similarity.kernels import KERNEL_OPTIONS, check_kernel

DIRNAME_RESOLVER = "semrsm.dirname"
MAX_DIRNAME = 200
TOP_LEVEL_KEYS = (
    "paths",
    "dataset",
    "backbone",
    "kernel",
    "matcher",
    "experiment",
    "logger",
    "seed",
    "force",
    "features",
    "rsm",
    "hydra",
)
RUNTIME_ARGUMENTS = (
    "out_dir",
    "config",
    "labels",
)  # a logger's arguments given by the stage runner, not the config

# conf/hydra/launcher/joblib.yaml shares its name with the plugin's schema, which then validates it: intended.
# Set at import so that launcher worker processes (which import this module with the task) are quiet too.
warnings.filterwarnings("ignore", message=r"\s*'hydra/launcher/\w+' is validated against ConfigStore schema")


def _at_least(schema: Any, name: str, minimum: int) -> None:
    value = getattr(schema, name)
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


@dataclasses.dataclass
class FeaturesConfig:
    """``features``: how extraction stores the features every stage reads."""

    dtype: str  # one of DTYPES
    batch_size: int
    num_workers: int
    shard_size: int
    progress_bar: bool

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {list(DTYPES)}, got {self.dtype!r}")
        for name, minimum in (("batch_size", 1), ("shard_size", 1), ("num_workers", 0)):
            _at_least(self, name, minimum)


@dataclasses.dataclass
class PathsConfig:
    """``paths``: where data, outputs, caches and checkpoints live."""

    root_dir: str
    data_dir: str
    output_dir: str
    cache_dir: str
    checkpoint_dir: str


@dataclasses.dataclass
class TrainerConfig:
    """``rsm.trainer``: the Lightning Trainer that predicts a layer's tiles (see ``semrsm.pipeline.rsm_predict``)."""

    accelerator: str
    devices: Any  # a count, "auto" or a list of device indices, as Lightning takes them
    num_nodes: int
    strategy: str


@dataclasses.dataclass
class RSMConfig:
    """``rsm``: how a layer's matching is spread (tiles, Trainer); it never changes results."""

    num_tiles: int | None  # None: one tile per process
    threads: int | None  # matching threads per process; None: its cores divided by its devices
    trainer: TrainerConfig

    def __post_init__(self) -> None:
        for name in ("num_tiles", "threads"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer or null, got {getattr(self, name)!r}")
        _at_least(self.trainer, "num_nodes", 1)


def _check_schema_keys(node: DictConfig, schema: type, where: str) -> None:
    types = typing.get_type_hints(schema)
    check_keys(node, where, types)
    for name, kind in types.items():
        child = node.get(name)
        if dataclasses.is_dataclass(kind) and isinstance(child, DictConfig):
            _check_schema_keys(child, kind, f"{where}.{name}")


def check_schema(node: DictConfig, schema: type, where: str) -> Any:
    """``node`` (the config block at ``where``) as an instance of the dataclass ``schema``; ValueError naming
    unknown keys (with the closest valid one), missing keys, values of the wrong type, and values out of the range
    the schema's ``__post_init__`` checks (its messages start with the field name). Schemas hold no defaults: the
    YAML files under conf/ are the one place of those."""
    _check_schema_keys(node, schema, where)
    plain = OmegaConf.to_container(node, resolve=True)
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), plain))
    except (ValidationError, MissingMandatoryValue) as error:
        raise ValueError(f"{where}.{error.full_key}: {str(error.msg).splitlines()[0]}") from None
    except ValueError as error:
        raise ValueError(f"{where}.{error}") from None


def override_dirname(overrides: str) -> str:
    """A safe directory name for Hydra's ``job.override_dirname`` ("default" when there are no overrides).

    Path separators and whitespace become "_"; names longer than MAX_DIRNAME are cut and suffixed with a hash,
    so distinct overrides stay distinct.
    """
    text = re.sub(r"[/\\\s]+", "_", str(overrides)).strip("._") or "default"
    if len(text) > MAX_DIRNAME:
        text = f"{text[: MAX_DIRNAME - 17]}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"
    return text


def register_resolvers() -> None:
    """Register the OmegaConf resolvers the configs use (idempotent)."""
    if not OmegaConf.has_resolver(DIRNAME_RESOLVER):
        OmegaConf.register_new_resolver(DIRNAME_RESOLVER, override_dirname)


class StageError(CompactHydraException):
    """A stage's ValueError or FileNotFoundError, which Hydra prints as its message alone (no traceback)."""


def build(node: DictConfig, **overrides: Any) -> Any:
    """``instantiate(node, **overrides)`` with plain Python containers as arguments; a ValueError or
    FileNotFoundError of the target (bad option, missing data or weights) is raised as itself instead of
    Hydra's wrapper."""
    try:
        return instantiate(node, _convert_="all", **overrides)
    except InstantiationException as error:
        if isinstance(error.__cause__, ValueError | FileNotFoundError):
            raise error.__cause__ from None
        raise


def integer_option(value: Any, what: str, minimum: int = 1) -> int:
    """``value`` if it is an integer >= ``minimum`` (not a bool), else ValueError naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return value


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def file_identities(*configs: Any) -> dict[str, list[int]]:
    """[size, mtime_ns] of every existing file a config names (e.g. a checkpoint): retrained weights change it."""
    files = {}
    for text in (s for config in configs for s in _strings(config)):
        path = Path(text)
        if len(text) < 4096 and path.is_file():
            stat = path.stat()
            files[str(path.resolve())] = [stat.st_size, stat.st_mtime_ns]
    return files


def unknown_keys_error(where: str, unknown: Iterable[str], valid: Iterable[str]) -> ValueError:
    """ValueError naming misspelt keys, the closest valid key for each, and all valid keys."""
    valid = sorted(valid)
    prefix = f"{where}." if where else ""
    hints = []
    for key in sorted(unknown):
        close = difflib.get_close_matches(key, valid, n=1)
        hints.append(f"{prefix}{key}" + (f" (did you mean {prefix}{close[0]}?)" if close else ""))
    return ValueError(f"unknown key(s) {', '.join(hints)}; valid keys of {where or 'the config'}: {valid}")


def check_keys(node: DictConfig, where: str, valid: Iterable[str]) -> None:
    """Raise ``unknown_keys_error`` if ``node`` has keys outside ``valid``."""
    valid = set(valid)
    unknown = set(node.keys()) - valid
    if unknown:
        raise unknown_keys_error(where, unknown, valid)


def _check_target_keys(node: DictConfig, where: str, runtime: tuple[str, ...] = ()) -> None:
    """The keys of a ``_target_`` node (and of its nested ``_target_`` nodes) against the target's parameters;
    a target taking ``**kwargs`` checks its own (e.g. ``build_backbone`` its model's options)."""
    parameters = inspect.signature(get_object(node._target_)).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        check_keys(node, where, {"_target_", *(name for name in parameters if name not in runtime)})
    for key in node:
        child = node._get_node(key)
        if isinstance(child, DictConfig) and "_target_" in child:
            _check_target_keys(child, f"{where}.{key}")


def validate_config_keys(cfg: DictConfig) -> None:
    """Misspelt keys anywhere Hydra lets them in (``+key=value``): at the top level, in the kernel and matcher
    (their options), the paths, and the ``_target_`` groups (the target's parameters); ValueError naming each
    with the closest valid key and all valid keys."""
    check_keys(cfg, "", TOP_LEVEL_KEYS)
    check_keys(cfg.kernel, "kernel", ("name", *KERNEL_OPTIONS[check_kernel(cfg.kernel.name)]))
    check_keys(cfg.matcher, "matcher", ("name", *get_matcher(cfg.matcher.name).defaults))
    check_schema(cfg.paths, PathsConfig, "paths")
    for group in ("dataset", "backbone"):
        _check_target_keys(cfg[group], group)
    _check_target_keys(cfg.logger, "logger", RUNTIME_ARGUMENTS)


def validate_rsm(cfg: DictConfig) -> None:
    """The shared ``rsm`` block against ``RSMConfig``."""
    check_schema(cfg.rsm, RSMConfig, "rsm")


def validate_features(cfg: DictConfig) -> None:
    """The shared ``features`` block against ``FeaturesConfig``: known keys, a storable dtype, positive sizes."""
    check_schema(cfg.features, FeaturesConfig, "features")
