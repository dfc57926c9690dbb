"""semrsm: semantic (permutation-invariant) representational similarity matrices.

The similarity API is re-exported lazily, so importing a subpackage (e.g. semrsm.data) stays light.
"""

import importlib

__all__ = [
    "KERNELS",
    "MATCHERS",
    "MatchedScores",
    "RSMResult",
    "PairBlock",
    "cka",
    "compute_rsms",
    "match",
    "matched_scores",
    "plan_blocks",
    "rsms_from_scores",
    "semantic_rsm",
    "spatio_semantic_rsm",
]


def __getattr__(name: str):
    if name in __all__:
        return getattr(importlib.import_module("semrsm.similarity"), name)
    raise AttributeError(f"module 'semrsm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
