"""Public API: semantic and spatio-semantic RSMs and single-pair matching."""

from collections.abc import Sequence

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from semrsm.similarity.engine import MatchedScores, block_products, matched_scores, rescale
from semrsm.similarity.inputs import as_pair
from semrsm.similarity.kernels import check_kernel, check_sigma, evaluate_kernel, median_sigma
from semrsm.similarity.matchers import get_matcher


def _kernel_names(kernel: str | Sequence[str]) -> list[str]:
    if isinstance(kernel, str):
        return [check_kernel(kernel)]
    names = list(kernel)
    if not names:
        raise ValueError("kernel: empty list of kernels")
    return [check_kernel(name) for name in names]


def rsms_from_scores(
    matched: MatchedScores, kernel: str | Sequence[str] = "cosine", sigma: float | None = None
):
    """RSM(s) from one matching: a tensor for one kernel name, a dict name -> tensor for a list.

    If ``matched`` carries upper bounds, returns (rsms, bounds): the kernel at the bounded score (same RBF sigma),
    an elementwise upper bound on the RSM an exact matcher would give.
    """
    names = _kernel_names(kernel)
    sigma = check_sigma(sigma)
    if not matched.complete:
        raise ValueError(
            "matched scores are incomplete (some tiles were not computed); merge all parts first"
        )
    rsms, bounds = {}, {}
    for name in names:
        width = sigma or (median_sigma(matched.scores, matched.sq_norms) if name == "rbf" else None)
        rsms[name] = evaluate_kernel(name, matched.scores, matched.sq_norms, width)
        if matched.upper_bounds is not None:
            bounds[name] = evaluate_kernel(name, matched.upper_bounds, matched.sq_norms, width)
    if isinstance(kernel, str):
        rsms, bounds = rsms[kernel], bounds.get(kernel)
    return rsms if matched.upper_bounds is None else (rsms, bounds)


def semantic_rsm(
    reps,
    kernel: str | Sequence[str] = "cosine",
    matcher: str = "lapjv",
    *,
    return_bounds: bool = False,
    sigma: float | None = None,
    progress: bool = False,
    workers: int | None = None,
    tile_size: int | None = None,
    **options,
):
    """Semantic RSM (N, N) float64 (CPU): kernel of x_i and the optimally permuted x_j for every pair.

    ``reps``: torch tensor or numpy array (N, C, H, W) or (N, T, D). ``kernel``: "linear", "cosine", "rbf" or a
    list of them (then a dict name -> RSM from one matching). ``matcher`` and its ``options`` (e.g. window=128):
    see ``semrsm.similarity.MATCHERS``; "lapjv" and "hungarian" (scipy, slower) are both exact. ``sigma`` fixes the RBF bandwidth (default: sigma^2 = median non-zero
    squared distance of the aligned pairs). ``return_bounds=True`` also returns the kernel at an upper bound of
    each pair's optimal matched score: (rsm, bounds). ``progress`` shows a progress bar, ``workers`` sets the
    solver threads, ``tile_size`` the samples per tile side (memory bound).
    """
    _kernel_names(kernel)
    check_sigma(sigma)
    matched = matched_scores(
        reps,
        matcher,
        return_bounds=return_bounds,
        progress=progress,
        workers=workers,
        tile_size=tile_size,
        **options,
    )
    return rsms_from_scores(matched, kernel, sigma)


def spatio_semantic_rsm(
    reps,
    kernel: str | Sequence[str] = "cosine",
    *,
    sigma: float | None = None,
    progress: bool = False,
    tile_size: int | None = None,
):
    """Spatio-semantic RSM: the kernel on flattened samples (no matching); same inputs and returns as
    ``semantic_rsm`` with matcher="identity"."""
    return semantic_rsm(reps, kernel, "identity", sigma=sigma, progress=progress, tile_size=tile_size)


def match(x, y, matcher: str = "lapjv", **options):
    """Permutation p (S,) int64 of y's positions maximising sum_r <x_r, y_p(r)>, so y[p] is aligned with x.

    ``x``, ``y``: (S, C) torch tensors or numpy arrays; returns the type of ``x``.
    """
    spec = get_matcher(matcher)
    options = spec.check_options(options)
    pair, _ = rescale(torch.stack(as_pair(x, y)))  # a power-of-two scale: same matching, no overflow
    with threadpool_limits(1, user_api="blas"):
        scores = block_products(pair, 0, 1, 1)[None]
    norms_x, norms_y = (torch.linalg.vector_norm(pair[k], dim=1).cpu().numpy()[None] for k in (0, 1))
    if not spec.exact:
        scores, norms_x, norms_y = (a.astype(np.float32) for a in (scores, norms_x, norms_y))
    perm = np.asarray(
        spec.batch(np.ascontiguousarray(scores), norms_x, norms_y, **options)[0], dtype=np.int64
    )
    return torch.from_numpy(perm).to(pair.device) if isinstance(x, torch.Tensor) else perm
