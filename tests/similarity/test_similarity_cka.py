import numpy as np
import pytest
import torch

import semrsm


def gram(seed: int, n: int = 10, dims: int = 4) -> np.ndarray:
    features = np.random.default_rng(seed).standard_normal((n, dims))
    return features @ features.T


def centred_alignment(a: np.ndarray, b: np.ndarray) -> float:
    centring = np.eye(len(a)) - 1.0 / len(a)
    a, b = centring @ a @ centring, centring @ b @ centring
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def unbiased_hsic(a: np.ndarray, b: np.ndarray) -> float:
    n = len(a)
    a, b = a - np.diag(np.diag(a)), b - np.diag(np.diag(b))
    ones = np.ones(n)
    return (
        np.trace(a @ b)
        + (ones @ a @ ones) * (ones @ b @ ones) / ((n - 1) * (n - 2))
        - 2 / (n - 2) * ones @ a @ b @ ones
    ) / (n * (n - 3))


def test_cka_matches_the_centred_alignment_formula():
    a, b = gram(0), gram(1)
    assert semrsm.cka(a, b) == pytest.approx(centred_alignment(a, b), rel=1e-12)
    assert semrsm.cka(torch.from_numpy(a), a) == pytest.approx(1.0)
    assert semrsm.cka(a, 3.0 * b + 2.0) == pytest.approx(semrsm.cka(a, b))


def test_debiased_cka_matches_the_unbiased_hsic():
    a, b = gram(2), gram(3)
    expected = unbiased_hsic(a, b) / np.sqrt(unbiased_hsic(a, a) * unbiased_hsic(b, b))
    assert semrsm.cka(a, b, debiased=True) == pytest.approx(expected, rel=1e-12)
    assert semrsm.cka(a, b, debiased=True) < semrsm.cka(a, b)


@pytest.mark.parametrize(
    ("a", "b", "kwargs", "message"),
    [
        (np.ones((3, 4)), np.ones((3, 4)), {}, "square"),
        (gram(0, 5), gram(0, 6), {}, "shapes differ"),
        (gram(0, 3), gram(1, 3), {"debiased": True}, "N >= 4"),
        (np.ones((4, 4)), gram(1, 4), {}, "rsm_a has no"),
        (gram(1, 4), np.full((4, 4), np.nan), {}, "rsm_b: contains NaN"),
        ([[1.0]], gram(1, 4), {}, "got list"),
    ],
)
def test_bad_rsms_raise(a, b, kwargs, message):
    with pytest.raises(ValueError, match=message):
        semrsm.cka(a, b, **kwargs)
