"""One registry of matchers: name -> metadata (exact?, options with defaults) and a batched solver.

Approximate matchers are wrapped so that no pair scores below the identity (no matching). Every batched solver takes scores (B, S, S) (G[b, r, c] = <x_r, y_c>, to maximise), norms_x, norms_y (B, S) L2
norms, and keyword options, and returns perms (B, S) int64 with perms[b, r] = column matched to row r.
"""

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from semrsm.similarity import approximate, exact


def identity_batch(scores, norms_x, norms_y) -> np.ndarray:
    """No matching: every position keeps its place (the spatio-semantic baseline)."""
    batch, size = scores.shape[:2]
    return np.broadcast_to(np.arange(size, dtype=np.int64), (batch, size)).copy()


def at_least_identity(batch: Callable) -> Callable:
    """Wrap an approximate batched solver so each pair keeps the identity instead where that scores higher:
    an approximate matching is then never worse than no matching (which plain greedy can be)."""

    @functools.wraps(batch)
    def wrapped(scores, norms_x, norms_y, **options):
        perms = batch(scores, norms_x, norms_y, **options)
        matched = np.take_along_axis(scores, perms[:, :, None], axis=2).sum(axis=(1, 2), dtype=np.float64)
        unmatched = np.trace(scores, axis1=1, axis2=2, dtype=np.float64)
        perms[unmatched > matched] = np.arange(scores.shape[1])
        return perms

    return wrapped


@dataclass(frozen=True)
class Matcher:
    """A registered matcher. ``pair_solver`` (exact matchers only): perms of the pairs of a tile of products
    (see ``semrsm.similarity.exact``), solved without holding the GIL."""

    name: str
    exact: bool
    batch: Callable
    defaults: Mapping[str, object] = field(default_factory=dict)
    pair_solver: Callable | None = None

    def check_options(self, options: Mapping[str, object]) -> dict:
        """Defaults overridden by ``options``; raises ValueError for unknown names or bad values.

        Values are checked by the solver itself (its own rules, e.g. ``window >= 1``), run on a 1x1 problem, so
        a bad option fails before any real work.
        """
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            known = sorted(self.defaults) or "none"
            raise ValueError(f"matcher {self.name!r}: unknown option(s) {unknown}; its options are {known}")
        resolved = {**self.defaults, **{key: _plain(value) for key, value in options.items()}}
        if options:
            one = np.ones((1, 1), dtype=np.float32)
            self.batch(one[None], one, one, **resolved)
        return resolved


def _plain(value):
    """numpy scalars as Python numbers (options end up in cache keys and configs)."""
    return value.item() if isinstance(value, np.generic) else value


def _keyword_defaults(function: Callable) -> dict:
    """Options of a batched solver: its parameters after (scores, norms_x, norms_y) and their defaults."""
    parameters = list(inspect.signature(function).parameters.values())[3:]
    missing = [p.name for p in parameters if p.default is inspect.Parameter.empty]
    if missing:
        raise TypeError(f"{function.__qualname__}: options {missing} need defaults to be registered")
    return {p.name: p.default for p in parameters}


def _build_registry() -> dict[str, Matcher]:
    registry = {
        "hungarian": Matcher("hungarian", True, exact.hungarian_batch, pair_solver=exact.hungarian_pairs),
        "lapjv": Matcher("lapjv", True, exact.lapjv_batch, pair_solver=exact.lapjv_pairs),
        "identity": Matcher("identity", False, identity_batch),
    }
    for name, function in approximate.APPROXIMATE_MATCHERS.items():
        defaults = MappingProxyType(_keyword_defaults(function))
        registry[name] = Matcher(name, False, at_least_identity(function), defaults)
    return registry


MATCHERS: Mapping[str, Matcher] = MappingProxyType(_build_registry())


def get_matcher(name: str) -> Matcher:
    """The registered matcher ``name``; raises ValueError listing the known names."""
    if name not in MATCHERS:
        raise ValueError(f"unknown matcher {name!r}; choose one of {sorted(MATCHERS)}")
    return MATCHERS[name]
