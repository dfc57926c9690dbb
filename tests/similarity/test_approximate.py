"""Approximate matchers and optimum certificates (semrsm.similarity.approximate)."""

import inspect
import itertools

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from scipy.optimize import linear_sum_assignment

from semrsm.similarity.approximate import (
    APPROXIMATE_MATCHERS,
    auction_batch,
    batch_optimal_batch,
    greedy_batch,
    topk_greedy_batch,
    upper_bound_batch,
)
from semrsm.similarity.jv import solve_lap_min


def relu_sets(n_pairs: int, side: int, channels: int = 32, seed: int = 0):
    """Pairs of post-ReLU-like sets: ReLU of spatially smooth, channel-correlated Gaussian fields."""
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((8, channels)) / np.sqrt(8)
    fields = gaussian_filter(rng.standard_normal((2 * n_pairs, 8, side, side)), sigma=(0, 0, 1.2, 1.2))
    sets = np.einsum("nkhw,kc->nhwc", fields / fields.std(), mix).reshape(2 * n_pairs, side * side, channels)
    sets = np.maximum(sets + 0.5 * rng.standard_normal(sets.shape) - 0.3, 0).astype(np.float32)
    return sets[:n_pairs], sets[n_pairs:]


def problem(x, y):
    """(scores, norms_x, norms_y) as the engine passes them."""
    scores = np.ascontiguousarray(np.einsum("bsc,btc->bst", x, y), dtype=np.float32)
    return scores, np.linalg.norm(x, axis=-1), np.linalg.norm(y, axis=-1)


def matched(scores, perms):
    return np.take_along_axis(scores.astype(np.float64), perms[:, :, None], axis=2).sum(axis=(1, 2))


def optimum(scores):
    wide = scores.astype(np.float64)
    return np.array([s[linear_sum_assignment(s, maximize=True)].sum() for s in wide])


def assert_permutations(perms, batch, size):
    assert perms.shape == (batch, size) and perms.dtype == np.int64
    for perm in perms:
        assert np.array_equal(np.sort(perm), np.arange(size))


@pytest.fixture(scope="module")
def relu_problem():
    return problem(*relu_sets(4, 10, seed=1))


MATCHER_OPTIONS = [
    ("greedy", {}),
    ("topk_greedy", {"k": 3}),
    ("topk_greedy", {"k": 1000}),
    ("batch_optimal", {"window": 1}),
    ("batch_optimal", {"window": 7}),
    ("batch_optimal", {"window": 1000}),
    ("auction", {}),
    ("auction", {"row_candidates": 1, "col_candidates": 1, "repair_rounds": 0}),
]


@pytest.mark.parametrize(("name", "options"), MATCHER_OPTIONS)
@pytest.mark.parametrize("size", [1, 2, 5, 30])
@pytest.mark.parametrize("kind", ["relu", "ties", "zeros", "signed"])
def test_every_matcher_returns_bijections(name, options, size, kind):
    rng = np.random.default_rng(size)
    if kind == "relu":
        x, y = (np.maximum(rng.standard_normal((3, size, 6)), 0) for _ in range(2))
        scores, norms_x, norms_y = problem(x, y)
    else:
        scores = {
            "ties": rng.integers(0, 2, (3, size, size)),
            "zeros": np.zeros((3, size, size)),
            "signed": rng.standard_normal((3, size, size)),
        }[kind].astype(np.float32)
        norms_x = norms_y = np.ones((3, size), np.float32)
    perms = APPROXIMATE_MATCHERS[name](scores, norms_x, norms_y, **options)
    assert_permutations(perms, 3, size)


def test_scores_are_ordered_identity_approx_optimum_bound(relu_problem):
    scores, norms_x, norms_y = relu_problem
    best = optimum(scores)
    identity = np.einsum("bss->b", scores.astype(np.float64))
    for name, function in APPROXIMATE_MATCHERS.items():
        value = matched(scores, function(scores, norms_x, norms_y))
        assert np.all(value <= best + 1e-9 * best), name
        assert np.all(value >= identity), name
    for method in ("dual_descent", "auction"):
        assert np.all(upper_bound_batch(scores, method=method) >= best), method


def test_upper_bound_is_valid_and_at_least_as_tight_as_row_and_column_maxima():
    rng = np.random.default_rng(3)
    scores = rng.standard_normal((20, 12, 12)).astype(np.float32)
    simple = np.minimum(scores.max(axis=2).sum(axis=1), scores.max(axis=1).sum(axis=1))
    best = optimum(scores)
    for method in ("dual_descent", "auction"):
        bound = upper_bound_batch(scores, method=method)
        assert bound.shape == (20,) and bound.dtype == np.float64
        assert np.all(bound >= best)
    assert np.all(upper_bound_batch(scores) <= simple + 1e-4)


def test_exact_settings_reach_the_optimum(relu_problem):
    scores, norms_x, norms_y = relu_problem
    best = optimum(scores)
    size = scores.shape[1]
    for perms in (
        topk_greedy_batch(scores, norms_x, norms_y, k=size),
        topk_greedy_batch(scores, norms_x, norms_y, k=10 * size),
        batch_optimal_batch(scores, norms_x, norms_y, window=size),
        batch_optimal_batch(scores, norms_x, norms_y, window=size + 1),
    ):
        np.testing.assert_allclose(matched(scores, perms), best, rtol=1e-6)


def test_tiny_problems_match_brute_force_where_exact():
    rng = np.random.default_rng(5)
    for size in range(1, 7):
        scores = rng.standard_normal((2, size, size)).astype(np.float32)
        norms = rng.random((2, size)).astype(np.float32)
        brute = [
            max(
                s[np.arange(size), list(p)].astype(np.float64).sum()
                for p in itertools.permutations(range(size))
            )
            for s in scores
        ]
        for perms in (
            topk_greedy_batch(scores, norms, norms, k=size),
            batch_optimal_batch(scores, norms, norms, window=size),
            auction_batch(scores, norms, norms, eps=1e-6, repair_rounds=3),
        ):
            np.testing.assert_allclose(matched(scores, perms), brute, rtol=1e-5, atol=1e-4)


def test_greedy_rule_on_a_hand_example():
    # rows go by their best score: row 1 (9) takes column 0; row 0 (best 8, but column 0 is taken) takes
    # column 2 (7); row 2 takes the remaining column 1.
    scores = np.array([[[8, 1, 7], [9, 2, 3], [6, 5, 4]]], np.float32)
    norms = np.ones((1, 3), np.float32)
    assert greedy_batch(scores, norms, norms).tolist() == [[2, 0, 1]]
    # a full tie goes to the lower row first and to the lower column
    assert greedy_batch(np.ones((1, 3, 3), np.float32), norms, norms).tolist() == [[0, 1, 2]]


def test_greedy_is_row_wise_not_the_papers_wrong_axis():
    scores, norms_x, norms_y = problem(*relu_sets(3, 14, seed=2))
    ratio = matched(scores, greedy_batch(scores, norms_x, norms_y)) / optimum(scores)
    identity = np.einsum("bss->b", scores.astype(np.float64)) / optimum(scores)
    # the wrong-axis greedy scores about as low as no matching at all
    assert np.all(ratio > 0.9)
    assert np.all(ratio > identity + 0.15)


def test_topk_greedy_matches_the_top_norms_exactly_then_greedy():
    scores = np.array([[[1, 9, 0], [5, 6, 0], [0, 0, 1]]], np.float32)
    norms_x = np.array([[3, 2, 1]], np.float32)
    norms_y = np.array([[3, 2, 1]], np.float32)
    # k=1: row 0 must take column 0 (top norm pair); the rest greedily: row 1 takes column 1
    assert topk_greedy_batch(scores, norms_x, norms_y, k=1).tolist() == [[0, 1, 2]]
    assert topk_greedy_batch(scores, norms_x, norms_y, k=2).tolist() == [[1, 0, 2]]


def test_batch_optimal_windows_follow_descending_norm():
    scores = np.array([[[0, 0, 9], [0, 5, 0], [7, 0, 0]]], np.float32)
    norms_x = np.array([[1, 2, 3]], np.float32)
    norms_y = np.array([[3, 2, 1]], np.float32)
    # window=1 pairs equal norm ranks: row 2 -> column 0, row 1 -> column 1, row 0 -> column 2
    assert batch_optimal_batch(scores, norms_x, norms_y, window=1).tolist() == [[2, 1, 0]]


def test_auction_is_near_optimal_on_relu_features():
    scores, norms_x, norms_y = problem(*relu_sets(3, 20, seed=4))
    ratio = matched(scores, auction_batch(scores, norms_x, norms_y)) / optimum(scores)
    assert np.all(ratio >= 0.99)
    assert np.all(ratio <= 1 + 1e-9)


def test_exact_sub_solver_equals_scipy_including_ties():
    rng = np.random.default_rng(6)
    for trial in range(200):
        size = int(rng.integers(1, 25))
        cost = (
            rng.integers(0, 3, (size, size)).astype(float) if trial % 2 else rng.standard_normal((size, size))
        )
        perm = solve_lap_min(cost)
        assert np.array_equal(np.sort(perm), np.arange(size))
        rows, cols = linear_sum_assignment(cost)
        assert cost[np.arange(size), perm].sum() == pytest.approx(cost[rows, cols].sum(), abs=1e-9)


def test_inputs_of_other_dtypes_and_layouts_are_accepted(relu_problem):
    scores, norms_x, norms_y = relu_problem
    reference = greedy_batch(scores, norms_x, norms_y)
    transposed_twice = np.asfortranarray(scores.astype(np.float64))
    assert np.array_equal(greedy_batch(transposed_twice, norms_x.astype(np.float16), norms_y), reference)


@pytest.mark.parametrize(
    ("call", "option"),
    [
        (lambda s, n: topk_greedy_batch(s, n, n, k=0), "k=0"),
        (lambda s, n: topk_greedy_batch(s, n, n, k=2.0), "k=2.0"),
        (lambda s, n: topk_greedy_batch(s, n, n, k=True), "k=True"),
        (lambda s, n: batch_optimal_batch(s, n, n, window=0), "window=0"),
        (lambda s, n: batch_optimal_batch(s, n, n, window="4"), "window='4'"),
        (lambda s, n: auction_batch(s, n, n, row_candidates=0), "row_candidates=0"),
        (lambda s, n: auction_batch(s, n, n, col_candidates=1.5), "col_candidates=1.5"),
        (lambda s, n: auction_batch(s, n, n, eps=0.0), "eps=0.0"),
        (lambda s, n: auction_batch(s, n, n, eps=float("nan")), "eps=nan"),
        (lambda s, n: auction_batch(s, n, n, repair_rounds=-1), "repair_rounds=-1"),
        (lambda s, n: upper_bound_batch(s, method="exact"), "method='exact'"),
    ],
)
def test_bad_options_raise_naming_the_option(call, option):
    scores = np.zeros((1, 3, 3), np.float32)
    with pytest.raises(ValueError, match=f"option {option}"):
        call(scores, np.ones((1, 3), np.float32))


@pytest.mark.parametrize(
    ("scores_shape", "norms_shape", "name"),
    [
        ((3, 3), (1, 3), "scores"),
        ((1, 3, 4), (1, 3), "scores"),
        ((1, 0, 0), (1, 0), "scores"),
        ((2, 3, 3), (2, 4), "norms_x"),
        ((2, 3, 3), (3,), "norms_x"),
    ],
)
def test_bad_shapes_raise_naming_the_input(scores_shape, norms_shape, name):
    for function in APPROXIMATE_MATCHERS.values():
        with pytest.raises(ValueError, match=name):
            function(np.zeros(scores_shape, np.float32), np.ones(norms_shape), np.ones(scores_shape[:2]))
    if name == "scores":
        with pytest.raises(ValueError, match="scores"):
            upper_bound_batch(np.zeros(scores_shape, np.float32))


def test_auction_rejects_non_finite_scores_instead_of_looping():
    scores = np.ones((2, 4, 4), np.float32)
    scores[1, 2, 3] = np.nan
    with pytest.raises(ValueError, match="pair 1"):
        auction_batch(scores, np.ones((2, 4)), np.ones((2, 4)))


def test_every_option_has_a_documented_default_for_the_registry():
    for name, function in APPROXIMATE_MATCHERS.items():
        for option in list(inspect.signature(function).parameters.values())[3:]:
            assert option.default is not inspect.Parameter.empty, (name, option.name)
            assert f"{option.name} (" in function.__doc__ and f"default {option.default}" in function.__doc__
