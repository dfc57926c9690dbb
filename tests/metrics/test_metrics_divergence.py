import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.spatial.distance import jensenshannon

from semrsm.metrics import divergence
from semrsm.metrics.divergence import jensen_shannon_matrix, softmax


def test_identical_rows_have_zero_and_disjoint_rows_unit_divergence():
    probs = np.array([[0.5, 0.5, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
    jsd = jensen_shannon_matrix(probs)
    assert jsd[0, 1] == 0.0
    assert jsd[0, 2] == pytest.approx(1.0)
    np.testing.assert_array_equal(np.diag(jsd), 0.0)


def test_hand_computed_value():
    # p = (1, 0), q = (1/2, 1/2): m = (3/4, 1/4); H(m) - (0 + 1) / 2
    expected = -(0.75 * np.log2(0.75) + 0.25 * np.log2(0.25)) - 0.5
    jsd = jensen_shannon_matrix([[1.0, 0.0], [0.5, 0.5]])
    assert jsd[0, 1] == pytest.approx(expected)


def test_matches_scipy_squared_distance():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(7, 0.3), size=12)
    jsd = jensen_shannon_matrix(probs)
    for i in range(12):
        for j in range(12):
            assert jsd[i, j] == pytest.approx(jensenshannon(probs[i], probs[j], base=2) ** 2, abs=1e-12)


def test_blocked_computation_equals_single_block(monkeypatch):
    probs = np.random.default_rng(1).dirichlet(np.ones(5), size=9)
    whole = jensen_shannon_matrix(probs)
    monkeypatch.setattr(divergence, "_BLOCK_ELEMENTS", 1)
    np.testing.assert_allclose(jensen_shannon_matrix(probs), whole, rtol=0, atol=1e-15)


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, (6, 4), elements=st.floats(0.0, 1.0)))
def test_properties_symmetric_bounded_zero_diagonal(raw):
    raw = raw + 1e-9
    probs = raw / raw.sum(axis=1, keepdims=True)
    jsd = jensen_shannon_matrix(probs)
    np.testing.assert_array_equal(jsd, jsd.T)
    assert jsd.min() >= 0.0 and jsd.max() <= 1.0
    np.testing.assert_array_equal(np.diag(jsd), 0.0)


def test_softmax_is_stable_and_matches_torch():
    logits = np.array([[1000.0, 1001.0, 999.0], [-5.0, 0.0, 5.0]])
    probs = softmax(logits)
    np.testing.assert_allclose(probs, torch.softmax(torch.tensor(logits), dim=-1).numpy(), rtol=1e-12)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    np.testing.assert_allclose(softmax(torch.tensor(logits)), probs)


@pytest.mark.parametrize(
    ("probs", "match"),
    [
        (np.array([[0.5, 0.6]]), "sums to"),
        (np.array([[1.5, -0.5]]), "negative"),
        (np.array([[np.nan, 1.0]]), "non-finite"),
        (np.array([0.5, 0.5]), "2-D"),
        (np.zeros((0, 3)), "non-empty"),
    ],
)
def test_bad_probabilities_raise(probs, match):
    with pytest.raises(ValueError, match=match):
        jensen_shannon_matrix(probs)


def test_softmax_rejects_non_finite_logits():
    with pytest.raises(ValueError, match="logits"):
        softmax(np.array([[np.inf, 0.0]]))
