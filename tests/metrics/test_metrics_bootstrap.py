"""Bootstrap helpers: determinism, agreement with the plain statistics on the full sample, image resampling."""

import numpy as np
import pytest
from scipy import stats

from semrsm.metrics import auroc, split_pairs_by_group
from semrsm.metrics.bootstrap import (
    cka_replicates,
    group_auroc_replicates,
    half_sample_counts,
    interval,
    mean_over_seeds,
    mean_replicates,
    pair_correlation_replicates,
    rank_matrix,
    resample_counts,
    with_full_sample,
)
from semrsm.similarity import cka


def symmetric(rng, n):
    values = rng.normal(size=(n, n))
    return values + values.T


def test_counts_are_deterministic_and_sum_to_n():
    a, b = resample_counts(7, 50, seed=3), resample_counts(7, 50, seed=3)
    np.testing.assert_array_equal(a, b)
    assert (a.sum(axis=1) == 7).all()
    assert not np.array_equal(a, resample_counts(7, 50, seed=4))


def test_mean_replicates_match_explicit_resamples():
    rng = np.random.default_rng(0)
    values = rng.normal(size=9)
    counts = resample_counts(9, 20, seed=1)
    explicit = [np.repeat(values, row).mean() for row in counts]
    np.testing.assert_allclose(mean_replicates(values, counts), explicit, rtol=1e-12)


def test_interval_covers_a_known_mean_and_drops_undefined_replicates():
    rng = np.random.default_rng(1)
    values = rng.normal(loc=0.5, size=400)
    counts = resample_counts(400)
    result = interval(values.mean(), mean_replicates(values, counts), 400)
    # the standard error is 1/20: a 95 % interval spans about +-0.1 around the sample mean
    assert result.low < values.mean() < result.high
    assert 0.15 < result.high - result.low < 0.25
    assert result.excludes_zero()
    nan_ok = interval(0.0, np.r_[np.full(5, np.nan), np.arange(100.0)], 3)
    assert nan_ok.low >= 0 and nan_ok.high <= 99


def test_correlation_with_unit_counts_is_pearson_and_spearman():
    rng = np.random.default_rng(2)
    a, b = symmetric(rng, 12), symmetric(rng, 12)
    b = b + 0.5 * a
    rows, cols = np.triu_indices(12, k=1)
    ones = np.ones((1, 12), dtype=np.int64)
    pearson = pair_correlation_replicates(a, b, ones)[0]
    spearman = pair_correlation_replicates(rank_matrix(a), rank_matrix(b), ones)[0]
    assert pearson == pytest.approx(stats.pearsonr(a[rows, cols], b[rows, cols]).statistic, rel=1e-9)
    assert spearman == pytest.approx(stats.spearmanr(a[rows, cols], b[rows, cols]).statistic, rel=1e-9)


def test_correlation_replicate_equals_correlation_over_the_resampled_images():
    rng = np.random.default_rng(3)
    a, b = symmetric(rng, 10), symmetric(rng, 10)
    counts = resample_counts(10, 5, seed=9)
    for row, value in zip(counts, pair_correlation_replicates(a, b, counts), strict=True):
        images = np.repeat(np.arange(10), row)
        i, j = np.triu_indices(len(images), k=1)
        keep = images[i] != images[j]  # two copies of one image are not a pair of images
        x, y = a[images[i[keep]], images[j[keep]]], b[images[i[keep]], images[j[keep]]]
        assert value == pytest.approx(stats.pearsonr(x, y).statistic, rel=1e-9)


def test_group_auroc_with_unit_counts_is_auroc_and_matches_explicit_resample():
    rng = np.random.default_rng(4)
    groups = np.repeat(np.arange(5), 3)
    scores = symmetric(rng, 15) + 2.0 * (groups[:, None] == groups[None, :])
    scores[0, 1] = scores[1, 0] = scores[2, 3] = scores[3, 2]  # a tie across the classes
    same, different = split_pairs_by_group(scores, groups)
    full = group_auroc_replicates(scores, groups, np.ones((1, 5), dtype=np.int64))[0]
    assert full == pytest.approx(auroc(same, different), rel=1e-12)
    counts = np.array([[2, 0, 1, 1, 1]])
    # explicit resample: copy k of group g holds g's crops; pairs inside a copy are same-image pairs, pairs of
    # copies of different groups different-image pairs, pairs across two copies of one group no pair at all
    crops = [(g, k, c) for g in range(5) for k in range(counts[0, g]) for c in np.flatnonzero(groups == g)]
    pos, neg = [], []
    for x in range(len(crops)):
        for y in range(x + 1, len(crops)):
            (g, k, c), (h, m, d) = crops[x], crops[y]
            if g != h:
                neg.append(scores[c, d])
            elif k == m:
                pos.append(scores[c, d])
    expected = auroc(np.array(pos), np.array(neg))
    assert group_auroc_replicates(scores, groups, counts)[0] == pytest.approx(expected, rel=1e-12)


def test_mean_over_seeds_resamples_seeds():
    per_seed = np.vstack([np.full(100, 1.0), np.full(100, 2.0), np.full(100, 3.0)])
    combined = mean_over_seeds(per_seed, n_resamples=100)
    assert combined.min() >= 1.0 and combined.max() <= 3.0 and combined.std() > 0
    np.testing.assert_array_equal(combined, mean_over_seeds(per_seed, n_resamples=100))
    np.testing.assert_array_equal(mean_over_seeds(per_seed[:1], n_resamples=100), per_seed[0])


def test_masked_correlation_uses_only_the_masked_pairs():
    rng = np.random.default_rng(5)
    a, b = symmetric(rng, 9), symmetric(rng, 9)
    groups = np.repeat(np.arange(3), 3)
    mask = groups[:, None] != groups[None, :]
    rows, cols = np.triu_indices(9, k=1)
    keep = mask[rows, cols]
    expected = stats.pearsonr(a[rows, cols][keep], b[rows, cols][keep]).statistic
    ones = np.ones((1, 9), dtype=np.int64)
    assert pair_correlation_replicates(a, b, ones, mask)[0] == pytest.approx(expected, rel=1e-9)
    spearman = pair_correlation_replicates(rank_matrix(a, mask), rank_matrix(b, mask), ones, mask)[0]
    assert spearman == pytest.approx(stats.spearmanr(a[rows, cols][keep], b[rows, cols][keep]).statistic)


def test_cka_replicates_agree_with_cka_on_the_resampled_images():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(8, 5)), rng.normal(size=(8, 5))
    a, b = x @ x.T, (x + y) @ (x + y).T
    counts = with_full_sample(resample_counts(8, 3, seed=2))
    values = cka_replicates(a, b, counts)
    assert values[0] == pytest.approx(cka(a, b), rel=1e-9)
    for row, value in zip(counts[1:], values[1:], strict=True):
        index = np.repeat(np.arange(8), row)
        assert value == pytest.approx(cka(a[np.ix_(index, index)], b[np.ix_(index, index)]), rel=1e-9)


def test_half_samples_draw_half_of_the_units_without_repeats():
    counts = half_sample_counts(9, 50, seed=4)
    assert counts.shape == (50, 9) and set(np.unique(counts)) == {0, 1} and (counts.sum(axis=1) == 4).all()
    np.testing.assert_array_equal(counts, half_sample_counts(9, 50, seed=4))
    assert len({tuple(row) for row in counts}) > 10
