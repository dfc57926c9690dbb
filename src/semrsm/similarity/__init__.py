"""Similarity engine: kernels, matchers, RSMs, CKA (torch/numpy only)."""

from semrsm.similarity.api import (
    RSMResult,
    compute_rsms,
    match,
    rsms_from_scores,
    semantic_rsm,
    spatio_semantic_rsm,
)
from semrsm.similarity.cka import cka
from semrsm.similarity.engine import MatchedScores, PairBlock, matched_scores, plan_blocks
from semrsm.similarity.kernels import KERNELS
from semrsm.similarity.matchers import MATCHERS, Matcher, get_matcher

__all__ = [
    "KERNELS",
    "MATCHERS",
    "MatchedScores",
    "Matcher",
    "RSMResult",
    "PairBlock",
    "cka",
    "compute_rsms",
    "get_matcher",
    "match",
    "matched_scores",
    "plan_blocks",
    "rsms_from_scores",
    "semantic_rsm",
    "spatio_semantic_rsm",
]
