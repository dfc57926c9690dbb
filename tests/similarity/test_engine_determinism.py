"""Tiling independence and numeric range of the engine.

A pair's products come from the same aligned block product whatever the tile plan, the worker count or the
process, so the RSM is bit-identical between all of them (same machine and BLAS): asserted exactly, on features
with near-ties (low-rank ReLU maps), where a last-bit difference in a product can flip a matching.
Power-of-two input scales are exact in floating point, so results scaled by 2^k are asserted exactly too;
decimal scales (1e30) round the input itself, hence a float32 relative tolerance there.
"""

import multiprocessing

import numpy as np
import pytest
import torch

from semrsm.similarity import cka, match, matched_scores, semantic_rsm
from semrsm.similarity.engine import PairBlock, block_side

MATCHERS = [
    ("lapjv", {}),
    ("hungarian", {}),
    ("batch_optimal", {"window": 4}),
    ("greedy", {}),
    ("identity", {}),
]


def near_tie_features(n: int, side: int, channels: int = 256, seed: int = 0) -> np.ndarray:
    """(n, channels, side, side) ReLU maps of rank 3: positions and samples are nearly collinear, so matchings
    have near-ties, and float32 products round (the previous engine differed by up to 1e-3 between tilings of
    these features on an AMD EPYC; a test on exactly representable values could not tell)."""
    rng = np.random.default_rng(seed)
    low_rank = rng.normal(size=(n, side * side, 3)) @ rng.normal(size=(3, channels))
    maps = np.maximum(low_rank, 0).astype(np.float32)
    return np.ascontiguousarray(maps.reshape(n, side, side, channels).transpose(0, 3, 1, 2))


def _scores(reps, matcher, options, **kwargs) -> torch.Tensor:
    return matched_scores(reps, matcher, **options, **kwargs).scores


# (side, N, C, (block_size, workers) combinations): S = 4 and 25 have aligned blocks of 300 and 48 samples (N = 60
# holds two), S = 289 of 4 samples; pair blocks smaller than a block recompute its product (slow at large N, still exact)
SHAPES = [
    (2, 17, 256, ((1, 2), (2, 1), (5, 3), (None, 2))),
    (5, 60, 256, ((13, 2), (50, 1), (7, 3), (None, 2))),
    (17, 9, 64, ((1, 2), (2, 1), (5, 3), (None, 2))),
]


@pytest.mark.parametrize(("side", "n", "channels", "plans"), SHAPES, ids=["S=4", "S=25", "S=289"])
@pytest.mark.parametrize(("matcher", "options"), MATCHERS)
def test_rsm_is_bit_identical_for_every_block_plan_and_worker_count(
    side, n, channels, plans, matcher, options
):
    reps = near_tie_features(n, side, channels)
    whole = _scores(reps, matcher, options, block_size=n, workers=1)
    assert not torch.isnan(whole).any()
    for block_size, workers in plans:
        torch.testing.assert_close(
            _scores(reps, matcher, options, block_size=block_size, workers=workers), whole, rtol=0, atol=0
        )


def test_disjoint_pair_blocks_merge_into_the_whole_rsm_bit_for_bit():
    reps = near_tie_features(13, 5)
    whole = matched_scores(reps, "lapjv")
    one_row = [PairBlock(range(i, i + 1), range(i + 1, 13)) for i in range(0, 12, 2)]
    rest = [PairBlock(range(i, i + 1), range(i + 1, 13)) for i in range(1, 12, 2)]
    parts = matched_scores(reps, "lapjv", blocks=one_row).merge(matched_scores(reps, "lapjv", blocks=rest))
    assert parts.complete
    torch.testing.assert_close(parts.scores, whole.scores, rtol=0, atol=0)


def _pair_blocks_in_a_child(reps: np.ndarray, rows: list[int]) -> np.ndarray:
    blocks = [PairBlock(range(i, i + 1), range(i + 1, len(reps))) for i in rows]
    return matched_scores(reps, "lapjv", blocks=blocks, workers=1).scores.numpy()


def test_pair_blocks_computed_in_another_process_match_the_whole_rsm_bit_for_bit():
    reps = near_tie_features(12, 5, seed=1)
    whole = matched_scores(reps, "lapjv", workers=2).scores.numpy()
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        child = pool.apply(_pair_blocks_in_a_child, (reps, list(range(11))))
    np.testing.assert_array_equal(child, whole)


def test_aligned_blocks_shrink_with_the_spatial_size():
    assert block_side(4) == 300 and block_side(49) == 24 and block_side(196) == 6 and block_side(601) == 1


@pytest.mark.parametrize("exponent", [-100, 100])
def test_power_of_two_scales_give_exactly_scaled_results(exponent):
    reps = near_tie_features(10, 4, seed=2)
    scale = 2.0**exponent
    base = matched_scores(reps, "lapjv")
    scaled = matched_scores(reps * np.float32(scale), "lapjv")
    torch.testing.assert_close(scaled.scores, base.scores * scale**2, rtol=0, atol=0)
    torch.testing.assert_close(scaled.sq_norms, base.sq_norms * scale**2, rtol=0, atol=0)
    for kernel in ("cosine", "rbf"):
        torch.testing.assert_close(
            semantic_rsm(reps * np.float32(scale), kernel), semantic_rsm(reps, kernel), rtol=0, atol=0
        )


@pytest.mark.parametrize("scale", [1e-30, 1e30])
@pytest.mark.parametrize("matcher", ["lapjv", "identity", "batch_optimal"])
def test_extreme_scales_match_the_rescaled_result(scale, matcher):
    reps = near_tie_features(10, 4, seed=3) + np.float32(0.5)  # no exact ties: the matching is stable
    # the input itself is rounded to float32 at 1e30 * x, so scores agree to float32 precision, not bits
    for kernel, factor in (("cosine", 1.0), ("linear", scale**2)):
        expected = semantic_rsm(reps, kernel, matcher)
        got = semantic_rsm(reps * np.float32(scale), kernel, matcher)
        torch.testing.assert_close(got / factor, expected, rtol=1e-5, atol=0)


def test_match_is_range_safe():
    rng = np.random.default_rng(4)
    x, y = rng.random((16, 8), dtype=np.float32), rng.random((16, 8), dtype=np.float32)
    expected = match(x, y)
    for scale in (1e-25, 1e20):
        np.testing.assert_array_equal(match(x * np.float32(scale), y * np.float32(scale)), expected)


def test_squared_norms_beyond_float64_are_refused():
    reps = np.full((3, 2, 2, 2), 1e200)
    with pytest.raises(ValueError, match="exceed the float64 range"):
        matched_scores(reps, "lapjv")


def test_cka_is_scale_invariant_over_the_whole_range():
    rng = np.random.default_rng(5)
    features = rng.normal(size=(12, 5))
    gram = features @ features.T
    other = gram + rng.normal(size=(12, 12)) * 0.1
    expected = cka(gram, other)
    for scale in (1e200, 1e-200):
        assert cka(gram * scale, other) == pytest.approx(expected, rel=1e-12)
    assert cka(gram * 1e200, gram) == pytest.approx(1.0, rel=1e-12)
