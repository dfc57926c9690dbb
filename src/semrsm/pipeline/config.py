"""Hydra glue: the run-directory resolver, building config nodes, stage errors Hydra prints without a traceback,
file identities, and the checks Hydra does not make on a composed config."""

from __future__ import annotations

import difflib
import hashlib
import inspect
import re
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from hydra.errors import CompactHydraException, InstantiationException
from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, OmegaConf

from semrsm.pipeline.feature_store import DTYPES
from semrsm.pipeline.rsm_cache import check_trainer_options
from semrsm.similarity import get_matcher
from semrsm.similarity.kernels import KERNEL_OPTIONS, check_kernel

DIRNAME_RESOLVER = "semrsm.dirname"
MAX_DIRNAME = 200
FEATURE_OPTIONS = ("dtype", "batch_size", "num_workers", "shard_size", "progress_bar")
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
PATH_KEYS = ("root_dir", "data_dir", "output_dir", "cache_dir", "checkpoint_dir")
RUNTIME_ARGUMENTS = (
    "out_dir",
    "config",
    "labels",
)  # a logger's arguments given by the stage runner, not the config

# conf/hydra/launcher/joblib.yaml shares its name with the plugin's schema, which then validates it: intended.
# Set at import so that launcher worker processes (which import this module with the task) are quiet too.
warnings.filterwarnings("ignore", message=r"\s*'hydra/launcher/\w+' is validated against ConfigStore schema")


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
    check_keys(cfg.paths, "paths", PATH_KEYS)
    for group in ("dataset", "backbone"):
        _check_target_keys(cfg[group], group)
    _check_target_keys(cfg.logger, "logger", RUNTIME_ARGUMENTS)


def validate_rsm(cfg: DictConfig) -> None:
    """The shared ``rsm`` block: known keys, a positive ``num_tiles`` (or null), known Trainer options."""
    check_keys(cfg.rsm, "rsm", ("num_tiles", "trainer"))
    num_tiles = cfg.rsm.num_tiles
    if num_tiles is not None and (
        isinstance(num_tiles, bool) or not isinstance(num_tiles, int) or num_tiles < 1
    ):
        raise ValueError(f"rsm.num_tiles must be a positive integer or null, got rsm.num_tiles={num_tiles!r}")
    check_trainer_options(cfg.rsm.trainer)


def validate_features(cfg: DictConfig) -> None:
    """The shared ``features`` block: known keys, a storable dtype, positive sizes."""
    features = cfg.features
    check_keys(features, "features", FEATURE_OPTIONS)
    if features.dtype not in DTYPES:
        raise ValueError(f"features.dtype must be one of {list(DTYPES)}, got {features.dtype!r}")
    for key, minimum in (("batch_size", 1), ("shard_size", 1), ("num_workers", 0)):
        integer_option(features[key], f"features.{key}", minimum)
