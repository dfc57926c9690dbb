"""Semantic / spatio-semantic RSMs: invariances, layouts, inputs, bounds, pair blocks and bad input."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import semrsm
from semrsm.similarity import MATCHERS

APPROXIMATE = sorted(name for name, spec in MATCHERS.items() if not spec.exact and name != "identity")


def test_tokens_and_feature_maps_give_the_same_rsm(maps):
    tokens = maps.flatten(2).transpose(1, 2)
    for kernel in semrsm.KERNELS:
        assert torch.allclose(
            semrsm.semantic_rsm(maps, kernel), semrsm.semantic_rsm(tokens, kernel), atol=1e-12
        )
        assert torch.allclose(
            semrsm.spatio_semantic_rsm(maps, kernel), semrsm.spatio_semantic_rsm(tokens, kernel)
        )


def test_permuting_positions_changes_only_the_spatio_semantic_rsm(maps):
    tokens = maps.flatten(2).transpose(1, 2).clone()
    shuffled = tokens.clone()
    shuffled[2] = tokens[2, torch.randperm(tokens.shape[1], generator=torch.Generator().manual_seed(0))]
    for kernel in semrsm.KERNELS:
        assert torch.allclose(
            semrsm.semantic_rsm(tokens, kernel), semrsm.semantic_rsm(shuffled, kernel), atol=1e-12
        )
        assert not torch.allclose(
            semrsm.spatio_semantic_rsm(tokens, kernel), semrsm.spatio_semantic_rsm(shuffled, kernel)
        )


def test_rolled_feature_map_has_cosine_one(maps):
    reps = torch.stack([maps[0], torch.roll(maps[0], shifts=(1, 2), dims=(1, 2)), maps[1]])
    semantic = semrsm.semantic_rsm(reps, "cosine")
    assert semantic[0, 1].item() == pytest.approx(1.0, abs=1e-12)
    assert semrsm.spatio_semantic_rsm(reps, "cosine")[0, 1] < 0.99


@pytest.mark.parametrize("kernel", semrsm.KERNELS)
def test_identity_matcher_equals_spatio_semantic(maps, kernel):
    flat = semrsm.spatio_semantic_rsm(maps, kernel)
    tiled = semrsm.compute_rsms(maps, kernel, matcher="identity", bounds=True, block_size=2).rsm
    assert torch.allclose(flat, tiled, atol=1e-12)
    sets = maps.flatten(1)
    if kernel == "cosine":
        assert torch.allclose(
            flat, torch.nn.functional.normalize(sets) @ torch.nn.functional.normalize(sets).T
        )


@pytest.mark.parametrize("kernel", semrsm.KERNELS)
def test_rsm_properties(maps, kernel):
    rsm = semrsm.semantic_rsm(maps, kernel)
    assert rsm.dtype == torch.float64 and rsm.shape == (6, 6)
    assert torch.equal(rsm, rsm.T)
    if kernel != "linear":
        assert torch.all(rsm.diagonal() == 1.0)
        assert torch.all(rsm > 0) and torch.all(rsm <= 1.0)


def test_semantic_similarity_is_at_least_spatio_semantic(maps):
    for kernel in semrsm.KERNELS:
        gain = semrsm.semantic_rsm(maps, kernel, sigma=3.0) - semrsm.spatio_semantic_rsm(
            maps, kernel, sigma=3.0
        )
        assert torch.all(gain >= -1e-12)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("as_torch", [False, True])
def test_numpy_and_torch_inputs_of_every_float_width(maps, dtype, as_torch):
    reps = maps.numpy().astype(dtype)
    reps = torch.from_numpy(reps) if as_torch else reps
    expected = semrsm.semantic_rsm(torch.from_numpy(maps.numpy().astype(dtype).astype(np.float64)), "cosine")
    assert torch.allclose(semrsm.semantic_rsm(reps, "cosine", matcher="lapjv"), expected, atol=1e-6)


def test_kernel_list_shares_one_matching_and_bounds_are_exact_for_exact_matchers(maps):
    result = semrsm.compute_rsms(maps, ["linear", "rbf"], bounds=True)
    rsms, bounds = result.rsms, result.upper_bounds
    assert set(rsms) == set(bounds) == {"linear", "rbf"} and result.kernels == ["linear", "rbf"]
    assert torch.equal(rsms["linear"], semrsm.semantic_rsm(maps, "linear"))
    assert torch.equal(rsms["rbf"], bounds["rbf"])
    assert result.matcher == "lapjv" and result.options == {} and result.sigma > 0
    assert torch.equal(result["rbf"], rsms["rbf"]) and result.matched.upper_bounds is not None


def test_result_records_the_matching_and_refuses_ambiguous_access(maps):
    result = semrsm.compute_rsms(maps, ["linear", "cosine"], "batch_optimal", window=2)
    assert result.matcher == "batch_optimal" and result.options == {"window": 2}
    assert result.sigma is None and result.upper_bounds is None
    with pytest.raises(ValueError, match=r"2 kernels \['linear', 'cosine'\]: pick one"):
        _ = result.rsm
    with pytest.raises(KeyError, match="no RSM for kernel 'rbf'"):
        result["rbf"]
    with pytest.raises(TypeError, match="use compute_rsms"):
        semrsm.semantic_rsm(maps, ["linear", "cosine"])


def test_sigma_option_sets_the_rbf_bandwidth(maps):
    linear = semrsm.semantic_rsm(maps, "linear")
    sq_norms = linear.diagonal()
    expected = torch.exp(-(sq_norms[:, None] + sq_norms[None, :] - 2 * linear).clamp_min(0) / (2 * 2.5**2))
    assert torch.allclose(semrsm.semantic_rsm(maps, "rbf", sigma=2.5), expected.fill_diagonal_(1.0))


@pytest.mark.parametrize("matcher", APPROXIMATE)
@pytest.mark.parametrize("kernel", ["linear", "cosine"])
def test_approximation_between_identity_and_exact_and_exact_below_bound(maps, matcher, kernel):
    exact = semrsm.semantic_rsm(maps, kernel, "lapjv")
    result = semrsm.compute_rsms(maps, kernel, matcher, bounds=True)
    approx, bounds = result.rsm, result.upper_bounds[kernel]
    identity = semrsm.spatio_semantic_rsm(maps, kernel)
    assert torch.all(identity <= approx + 1e-9)
    assert torch.all(approx <= exact + 1e-9)
    assert torch.all(exact <= bounds + 1e-9)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(2, 5),
    size=st.integers(1, 9),
    channels=st.integers(1, 6),
    seed=st.integers(0, 2**16),
    matcher=st.sampled_from(APPROXIMATE),
)
def test_matched_scores_are_ordered_on_random_inputs(n, size, channels, seed, matcher):
    reps = np.maximum(np.random.default_rng(seed).standard_normal((n, size, channels)), 0)
    exact = semrsm.matched_scores(reps, "hungarian").scores
    approx = semrsm.matched_scores(reps, matcher, return_bounds=True)
    identity = semrsm.matched_scores(reps, "identity").scores
    assert torch.all(identity <= approx.scores + 1e-9)
    assert torch.all(approx.scores <= exact + 1e-9)
    assert torch.all(exact <= approx.upper_bounds + 1e-9)


def test_pair_blocks_cover_every_pair_once_and_parts_merge():
    for n, size in [(1, 1), (2, 1), (9, 2), (10, 4), (7, 20)]:
        pairs = [
            (i, j)
            for block in semrsm.plan_blocks(n, 1, block_size=size)
            for i in block.rows
            for j in block.cols
            if i < j
        ]
        assert sorted(pairs) == [(i, j) for i in range(n) for j in range(i + 1, n)]


def test_pair_block_subsets_merge_into_the_full_result(maps):
    blocks = semrsm.plan_blocks(len(maps), 1, block_size=2)
    first = semrsm.matched_scores(maps, "lapjv", blocks=blocks[::2], return_bounds=True)
    second = semrsm.matched_scores(maps, "lapjv", blocks=blocks[1::2], return_bounds=True)
    assert not first.complete
    merged = first.merge(second)
    full = semrsm.matched_scores(maps, "lapjv", return_bounds=True)
    assert merged.complete and torch.allclose(merged.scores, full.scores, atol=1e-12)
    result = semrsm.rsms_from_scores(merged, "cosine")
    assert torch.equal(result.rsm, result.upper_bounds["cosine"])
    with pytest.raises(ValueError, match="incomplete"):
        semrsm.rsms_from_scores(first, "cosine")


def test_progress_bar_and_workers_do_not_change_results(maps, capsys):
    quiet = semrsm.semantic_rsm(maps, workers=1)
    assert torch.equal(semrsm.semantic_rsm(maps, progress=True, workers=2, block_size=3), quiet)
    assert "pair" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda r: semrsm.semantic_rsm(r, kernel="laplace"), "unknown kernel 'laplace'"),
        (lambda r: semrsm.compute_rsms(r, kernels=[]), "empty list of kernels"),
        (lambda r: semrsm.semantic_rsm(r, matcher="sinkhorn_typo"), "unknown matcher 'sinkhorn_typo'"),
        (lambda r: semrsm.semantic_rsm(r, matcher="lapjv", window=4), r"unknown option\(s\) \['window'\]"),
        (lambda r: semrsm.semantic_rsm(r, matcher="batch_optimal", window=0), "window=0"),
        (lambda r: semrsm.semantic_rsm(r, matcher="topk_greedy", k=2.5), "k=2.5"),
        (lambda r: semrsm.semantic_rsm(r, kernel="rbf", sigma=-1.0), "sigma must be a positive"),
        (lambda r: semrsm.semantic_rsm(r, block_size=0), "block_size must be a positive integer, got 0"),
        (lambda r: semrsm.semantic_rsm(r, workers=True), "workers must be a positive integer"),
        (lambda r: semrsm.semantic_rsm(r[:1]), "N=1"),
        (lambda r: semrsm.semantic_rsm(r[:, :, 0]), "got 2-D"),
        (
            lambda r: semrsm.matched_scores(r, blocks=[semrsm.PairBlock(range(0, 9), range(0, 2))]),
            "not a contiguous",
        ),
        (lambda r: semrsm.match(r[0], r[1][:-1]), "shapes differ"),
        (lambda r: semrsm.match(r[0], r[1], matcher="nope"), "unknown matcher 'nope'"),
    ],
)
def test_bad_arguments_raise(call, message):
    reps = np.maximum(np.random.default_rng(0).standard_normal((3, 4, 5)), 0)
    with pytest.raises(ValueError, match=message):
        call(reps)


def test_degenerate_inputs_name_the_problem():
    reps = np.ones((3, 2, 2))
    reps[1] = 0.0
    with pytest.raises(ValueError, match=r"sample\(s\) \[1\] are all zeros"):
        semrsm.semantic_rsm(reps, "cosine")
    with pytest.raises(ValueError, match="all pairwise distances are zero"):
        semrsm.semantic_rsm(np.ones((3, 2, 2)), "rbf")
    assert torch.all(semrsm.semantic_rsm(np.ones((3, 2, 2)), "rbf", sigma=1.0) == 1.0)
