import numpy as np
import pytest

import semrsm
from semrsm.similarity import MATCHERS, get_matcher
from semrsm.similarity.matchers import at_least_identity

PAPER_MATCHERS = {"hungarian", "lapjv", "greedy", "topk_greedy", "batch_optimal", "identity"}


def test_registry_holds_the_paper_matchers_and_a_throughput_one():
    assert PAPER_MATCHERS < set(MATCHERS)
    assert {name for name, spec in MATCHERS.items() if spec.exact} == {"hungarian", "lapjv"}
    assert get_matcher("batch_optimal").defaults["window"] >= 1
    assert get_matcher("topk_greedy").defaults["k"] >= 1


def test_option_validation_names_the_option():
    spec = get_matcher("batch_optimal")
    assert spec.check_options({"window": np.int64(8)}) == {"window": 8}
    for bad in (0, -3, 2.0, True, "8"):
        with pytest.raises(ValueError, match=f"option window={bad!r}"):
            spec.check_options({"window": bad})
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['k'\]; its options are \['window'\]"):
        spec.check_options({"k": 3})
    with pytest.raises(ValueError, match="its options are none"):
        get_matcher("hungarian").check_options({"window": 3})


@pytest.mark.parametrize("name", sorted(MATCHERS))
def test_every_matcher_returns_permutations_for_one_and_many_positions(name):
    rng = np.random.default_rng(0)
    for size in (1, 2, 7):
        x, y = np.maximum(rng.standard_normal((2, size, 3)), 0)
        perm = semrsm.match(x, y, matcher=name)
        assert sorted(perm.tolist()) == list(range(size))


def test_topk_greedy_with_k_at_least_s_is_exact():
    rng = np.random.default_rng(1)
    x, y = np.maximum(rng.standard_normal((2, 6, 4)), 0)

    def matched(perm):
        return float(np.einsum("sc,sc->", x, y[perm]))

    optimum = matched(semrsm.match(x, y))
    assert matched(semrsm.match(x, y, matcher="topk_greedy", k=6)) == pytest.approx(optimum, rel=1e-6)
    assert matched(semrsm.match(x, y, matcher="topk_greedy", k=50)) == pytest.approx(optimum, rel=1e-6)
    assert matched(semrsm.match(x, y, matcher="topk_greedy", k=1)) <= optimum + 1e-9


def test_wrapper_falls_back_to_identity_when_the_approximation_is_worse():
    scores = np.array([[[5.0, 1.0], [1.0, 5.0]], [[0.0, 5.0], [5.0, 0.0]]], dtype=np.float32)

    def always_swap(scores, norms_x, norms_y):
        return np.tile(np.array([1, 0], dtype=np.int64), (len(scores), 1))

    perms = at_least_identity(always_swap)(scores, None, None)
    np.testing.assert_array_equal(perms, [[0, 1], [1, 0]])
