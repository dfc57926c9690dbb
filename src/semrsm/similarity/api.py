"""Public API: semantic and spatio-semantic RSMs and single-pair matching.

``compute_rsms`` returns an ``RSMResult`` (RSMs per kernel, the matched scores, bounds, the matching used);
``semantic_rsm`` and ``spatio_semantic_rsm`` are its one-call paths for one kernel and return the RSM tensor."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from semrsm.similarity.engine import MatchedScores, block_products, matched_scores, rescale
from semrsm.similarity.inputs import as_pair
from semrsm.similarity.kernels import check_kernel, check_sigma, evaluate_kernel, median_sigma
from semrsm.similarity.matchers import get_matcher


def _kernel_names(kernels: str | Sequence[str]) -> list[str]:
    names = [kernels] if isinstance(kernels, str) else list(kernels)
    if not names:
        raise ValueError("kernel: empty list of kernels")
    return [check_kernel(name) for name in names]


@dataclass(frozen=True)
class RSMResult:
    """The RSMs of one matching of a set of samples, and what produced them.

    ``rsms``: kernel name -> (N, N) float64 RSM. ``matched``: the per-pair matched inner products, squared norms
    and (if requested) upper bounds the RSMs were computed from. ``matcher`` and ``options``: the matching used.
    ``sigma``: the RBF bandwidth used (None without an RBF kernel). ``upper_bounds`` (if requested): kernel name
    -> the kernel at an upper bound of each pair's optimal matched score, an elementwise upper bound on the RSM an
    exact matcher would give (equal to the RSM for exact matchers).
    """

    rsms: Mapping[str, torch.Tensor]
    matched: MatchedScores
    matcher: str | None = None
    options: Mapping[str, object] = field(default_factory=dict)
    sigma: float | None = None
    upper_bounds: Mapping[str, torch.Tensor] | None = None

    @property
    def kernels(self) -> list[str]:
        """The kernel names, in the order requested."""
        return list(self.rsms)

    @property
    def rsm(self) -> torch.Tensor:
        """The RSM, when one kernel was requested."""
        if len(self.rsms) != 1:
            raise ValueError(f"{len(self.rsms)} kernels {self.kernels}: pick one with result[kernel]")
        return next(iter(self.rsms.values()))

    def __getitem__(self, kernel: str) -> torch.Tensor:
        if kernel not in self.rsms:
            raise KeyError(f"no RSM for kernel {kernel!r}; this result has {self.kernels}")
        return self.rsms[kernel]


def rsms_from_scores(
    matched: MatchedScores,
    kernels: str | Sequence[str] = "cosine",
    sigma: float | None = None,
    *,
    matcher: str | None = None,
    options: Mapping[str, object] | None = None,
) -> RSMResult:
    """RSMs of every kernel in ``kernels`` from one matching (``matched``, complete). RBF uses ``sigma`` if given,
    else the median heuristic on these scores; ``matcher``/``options`` are recorded in the result."""
    names = _kernel_names(kernels)
    sigma = check_sigma(sigma)
    if not matched.complete:
        raise ValueError(
            "matched scores are incomplete (some blocks were not computed); merge all parts first"
        )
    if "rbf" in names and sigma is None:
        sigma = median_sigma(matched.scores, matched.sq_norms)
    width = {name: sigma if name == "rbf" else None for name in names}
    rsms = {name: evaluate_kernel(name, matched.scores, matched.sq_norms, width[name]) for name in names}
    bounds = None
    if matched.upper_bounds is not None:
        bounds = {
            name: evaluate_kernel(name, matched.upper_bounds, matched.sq_norms, width[name]) for name in names
        }
    return RSMResult(
        rsms=rsms,
        matched=matched,
        matcher=matcher,
        options=dict(options or {}),
        sigma=sigma if "rbf" in names else None,
        upper_bounds=bounds,
    )


def compute_rsms(
    reps,
    kernels: str | Sequence[str] = "cosine",
    matcher: str = "lapjv",
    *,
    bounds: bool = False,
    sigma: float | None = None,
    progress: bool = False,
    workers: int | None = None,
    block_size: int | None = None,
    **options,
) -> RSMResult:
    """Semantic RSMs of ``reps`` for one or several kernels, all from one matching, as an ``RSMResult``.

    ``reps``: torch tensor or numpy array (N, C, H, W) or (N, T, D). ``kernels``: "linear", "cosine", "rbf" or a
    list of them. ``matcher`` and its ``options`` (e.g. window=128): see ``semrsm.similarity.MATCHERS``; "lapjv"
    and "hungarian" (scipy, slower) are both exact, "identity" gives the spatio-semantic RSM. ``sigma`` fixes the
    RBF bandwidth (default: sigma^2 = median non-zero squared distance of the aligned pairs). ``bounds=True``
    adds the kernel at an upper bound of each pair's optimal matched score. ``progress`` shows a progress bar,
    ``workers`` sets the solver threads, ``block_size`` the samples per block side (memory bound).
    """
    names = _kernel_names(kernels)
    check_sigma(sigma)
    resolved = get_matcher(matcher).check_options(options)
    matched = matched_scores(
        reps,
        matcher,
        return_bounds=bounds,
        progress=progress,
        workers=workers,
        block_size=block_size,
        **options,
    )
    return rsms_from_scores(matched, names, sigma, matcher=matcher, options=resolved)


def _one_kernel(kernel: str) -> str:
    if not isinstance(kernel, str):
        raise TypeError(f"kernel must be one name, got {kernel!r}; for several kernels use compute_rsms")
    return kernel


def semantic_rsm(
    reps,
    kernel: str = "cosine",
    matcher: str = "lapjv",
    *,
    sigma: float | None = None,
    progress: bool = False,
    workers: int | None = None,
    block_size: int | None = None,
    **options,
) -> torch.Tensor:
    """Semantic RSM (N, N) float64 (CPU) for one kernel: the kernel of x_i and the optimally permuted x_j for
    every pair. The one-call path of ``compute_rsms`` (same arguments; see there)."""
    result = compute_rsms(
        reps,
        _one_kernel(kernel),
        matcher,
        sigma=sigma,
        progress=progress,
        workers=workers,
        block_size=block_size,
        **options,
    )
    return result.rsm


def spatio_semantic_rsm(
    reps,
    kernel: str = "cosine",
    *,
    sigma: float | None = None,
    progress: bool = False,
    block_size: int | None = None,
) -> torch.Tensor:
    """Spatio-semantic RSM: the kernel on flattened samples (no matching); ``semantic_rsm`` with
    matcher="identity"."""
    return semantic_rsm(reps, kernel, "identity", sigma=sigma, progress=progress, block_size=block_size)


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
