import numpy as np
import pytest
from scipy import stats

from semrsm.metrics.correlation import (
    auroc,
    group_separation,
    rsm_correlation,
    split_pairs_by_group,
    upper_triangle,
)


def _symmetric(rng, n):
    values = rng.normal(size=(n, n))
    return values + values.T


def test_upper_triangle_is_strict_and_row_major():
    matrix = np.arange(9.0).reshape(3, 3)
    np.testing.assert_array_equal(upper_triangle(matrix), [1.0, 2.0, 5.0])


@pytest.mark.parametrize("with_ties", [False, True])
def test_correlations_match_scipy_on_upper_triangle(with_ties):
    rng = np.random.default_rng(0)
    a, b = _symmetric(rng, 15), _symmetric(rng, 15)
    if with_ties:
        a, b = np.round(a), np.round(b)
    a[0, 0] = b[3, 3] = 1e6  # diagonal and lower triangle must not matter
    a[5, 2] = -1e6
    rows, cols = np.triu_indices(15, k=1)
    result = rsm_correlation(a, b)
    expected_p = stats.pearsonr(a[rows, cols], b[rows, cols])
    expected_s = stats.spearmanr(a[rows, cols], b[rows, cols])
    assert result.n_pairs == 105
    assert result.pearson == pytest.approx(expected_p.statistic)
    assert result.spearman == pytest.approx(expected_s.statistic)
    assert set(result.to_dict()) == {"pearson", "spearman", "n_pairs"}


def test_monotone_but_nonlinear_relation_has_unit_spearman():
    rng = np.random.default_rng(1)
    a = np.abs(_symmetric(rng, 10))
    result = rsm_correlation(a, -np.exp(3 * a))
    assert result.spearman == pytest.approx(-1.0)
    assert -1.0 < result.pearson < -0.5


@pytest.mark.parametrize(
    ("a", "b", "match"),
    [
        (np.ones((4, 4)), np.ones((5, 5)), "same shape"),
        (np.ones((2, 2)), np.ones((2, 2)), "at least 3"),
        (np.ones((4, 4)), np.random.default_rng(0).normal(size=(4, 4)), "constant"),
        (np.ones((4, 3)), np.ones((4, 3)), "square"),
        (np.full((4, 4), np.nan), np.ones((4, 4)), "non-finite"),
    ],
)
def test_bad_correlation_input_raises(a, b, match):
    with pytest.raises(ValueError, match=match):
        rsm_correlation(a, b)


def test_auroc_hand_computed_cases():
    assert auroc([3.0, 4.0], [1.0, 2.0]) == 1.0
    assert auroc([1.0, 2.0], [3.0, 4.0]) == 0.0
    assert auroc([1.0], [1.0]) == 0.5
    # pairs (pos, neg): (2,1) win, (2,3) loss, (4,1) win, (4,3) win -> 3/4
    assert auroc([2.0, 4.0], [1.0, 3.0]) == 0.75


def test_auroc_matches_sklearn_with_ties():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(2)
    pos, neg = rng.integers(0, 5, size=40).astype(float), rng.integers(0, 4, size=60).astype(float)
    expected = roc_auc_score(np.r_[np.ones(40), np.zeros(60)], np.r_[pos, neg])
    assert auroc(pos, neg) == pytest.approx(expected)


def test_group_separation_perfect_split_and_summaries():
    groups = [0, 0, 1, 1]
    rsm = np.array([[1.0, 0.9, 0.1, 0.2], [0.9, 1.0, 0.3, 0.2], [0.1, 0.3, 1.0, 0.7], [0.2, 0.2, 0.7, 1.0]])
    same, different = split_pairs_by_group(rsm, groups)
    np.testing.assert_allclose(sorted(same), [0.7, 0.9])
    np.testing.assert_allclose(sorted(different), [0.1, 0.2, 0.2, 0.3])
    result = group_separation(rsm, groups)
    assert result.auroc == 1.0
    assert result.same.n == 2 and result.same.mean == pytest.approx(0.8)
    assert result.different.max == pytest.approx(0.3)
    flat = result.to_dict()
    assert flat["auroc"] == 1.0 and flat["different_n"] == 4 and "same_median" in flat


def test_group_separation_needs_both_pair_kinds():
    with pytest.raises(ValueError, match="both same-group and different-group"):
        group_separation(np.eye(3), [0, 1, 2])
    with pytest.raises(ValueError, match="both classes"):
        auroc([], [1.0])
