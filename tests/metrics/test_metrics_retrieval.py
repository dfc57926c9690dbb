import numpy as np
import pytest
import torch

from semrsm.metrics.retrieval import category_matrix, f1_at_1, set_f1, top_k_neighbors


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ({"cup", "dog"}, {"cup", "dog"}, 1.0),
        ({"cup", "dog"}, {"cup"}, 2 * 1 / 3),
        ({"cup", "dog", "car"}, {"cup", "tree"}, 2 * 1 / 5),
        ({"cup"}, {"dog"}, 0.0),
        (set(), {"dog"}, 0.0),
        (set(), set(), 1.0),
        (["cup", "cup"], ["cup"], 1.0),
    ],
)
def test_set_f1_hand_computed(a, b, expected):
    assert set_f1(a, b) == pytest.approx(expected)
    assert set_f1(b, a) == pytest.approx(expected)


def test_neighbors_exclude_self_even_when_self_is_largest():
    sim = np.array([[9.0, 1.0, 2.0], [1.0, 9.0, 3.0], [2.0, 3.0, 9.0]])
    indices, scores = top_k_neighbors(sim, k=2)
    np.testing.assert_array_equal(indices, [[2, 1], [2, 0], [1, 0]])
    np.testing.assert_array_equal(scores, [[2.0, 1.0], [3.0, 1.0], [3.0, 2.0]])


def test_ties_go_to_lowest_index():
    sim = np.ones((4, 4))
    indices, _ = top_k_neighbors(sim, k=3)
    np.testing.assert_array_equal(indices, [[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])


def test_groups_exclude_same_group_neighbors():
    sim = np.array([[1.0, 0.9, 0.2, 0.1], [0.9, 1.0, 0.3, 0.4], [0.2, 0.3, 1.0, 0.8], [0.1, 0.4, 0.8, 1.0]])
    indices, scores = top_k_neighbors(sim, k=1, groups=["a", "a", "b", "b"])
    np.testing.assert_array_equal(indices[:, 0], [2, 3, 1, 1])
    np.testing.assert_allclose(scores[:, 0], [0.2, 0.4, 0.3, 0.4])


def test_neighbors_accept_torch_tensor():
    sim = torch.tensor([[0.0, 1.0, 2.0], [1.0, 0.0, 5.0], [2.0, 5.0, 0.0]])
    indices, _ = top_k_neighbors(sim)
    np.testing.assert_array_equal(indices[:, 0], [2, 2, 1])


def test_f1_at_1_per_query_and_mean():
    sim = np.array([[1.0, 0.9, 0.1], [0.9, 1.0, 0.2], [0.1, 0.2, 1.0]])
    categories = [{"cup", "dog"}, {"cup"}, set()]
    result = f1_at_1(sim, categories)
    np.testing.assert_array_equal(result.neighbor, [1, 0, 1])
    np.testing.assert_allclose(result.per_query, [2 / 3, 2 / 3, 0.0])
    assert result.mean == pytest.approx(4 / 9)
    np.testing.assert_allclose(result.neighbor_similarity, [0.9, 0.9, 0.2])


def test_f1_at_1_matches_scalar_definition_on_random_data():
    rng = np.random.default_rng(0)
    n = 30
    sim = rng.normal(size=(n, n))
    categories = [set(rng.choice(6, size=rng.integers(0, 4), replace=False).tolist()) for _ in range(n)]
    result = f1_at_1(sim, categories)
    expected = [set_f1(categories[i], categories[j]) for i, j in enumerate(result.neighbor)]
    np.testing.assert_allclose(result.per_query, expected)


def test_category_matrix_multi_hot():
    multi_hot, labels = category_matrix([["b", "a"], [], ["a"]])
    assert set(labels) == {"a", "b"}
    column = {label: i for i, label in enumerate(labels)}
    assert multi_hot[0].sum() == 2 and multi_hot[1].sum() == 0
    assert multi_hot[2, column["a"]] and not multi_hot[2, column["b"]]


@pytest.mark.parametrize(
    ("sim", "kwargs", "match"),
    [
        (np.ones((3, 2)), {}, "square"),
        (np.ones(3), {}, "2-D"),
        (np.array([[1.0, np.nan], [0.0, 1.0]]), {}, "non-finite"),
        (np.ones((3, 3)), {"k": 3}, "candidate"),
        (np.ones((3, 3)), {"k": 0}, "positive integer"),
        (np.ones((4, 4)), {"groups": [0, 0, 1]}, "one id per sample"),
        (np.ones((4, 4)), {"groups": [0, 0, 1, 1], "k": 3}, "candidate"),
        (np.ones((1, 1)), {}, "at least 2"),
    ],
)
def test_bad_retrieval_input_raises(sim, kwargs, match):
    with pytest.raises(ValueError, match=match):
        top_k_neighbors(sim, **kwargs)


def test_f1_at_1_rejects_mismatched_categories():
    with pytest.raises(ValueError, match="categories has 2 entries"):
        f1_at_1(np.ones((3, 3)), [{"a"}, {"b"}])
    with pytest.raises(ValueError, match="collection of categories"):
        f1_at_1(np.ones((2, 2)), ["cup", "dog"])
