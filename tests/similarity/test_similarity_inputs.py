import numpy as np
import pytest
import torch

from semrsm.similarity.inputs import as_pair, as_sets


def test_feature_maps_become_position_sets():
    reps = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    sets = as_sets(reps)
    assert sets.shape == (2, 4, 3)
    assert torch.equal(sets[1, 2], reps[1, :, 1, 0])


def test_tokens_are_kept_and_sequences_are_stacked():
    tokens = np.random.default_rng(0).random((3, 5, 4))
    assert torch.equal(as_sets(tokens), torch.from_numpy(tokens))
    assert torch.equal(as_sets(list(tokens)), torch.from_numpy(tokens))


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [
        (torch.float16, torch.float32),
        (torch.bfloat16, torch.float32),
        (torch.float32, torch.float32),
        (torch.float64, torch.float64),
    ],
)
def test_compute_dtype(dtype, expected):
    assert as_sets(torch.ones(2, 3, 4, dtype=dtype)).dtype == expected


@pytest.mark.parametrize(
    ("reps", "message"),
    [
        (torch.ones(2, 3), "2-D"),
        (torch.ones(2, 3, 4, 5, 6), "5-D"),
        (torch.ones(1, 3, 4), "N=1"),
        (torch.ones(2, 0, 4), "empty"),
        (torch.ones(2, 3, 4, dtype=torch.int64), "not floating point"),
        (torch.tensor([[[1.0, float("nan")]], [[1.0, 2.0]]]), r"sample\(s\) \[0\]"),
        (torch.tensor([[[1.0, 2.0]], [[1.0, float("inf")]]]), r"sample\(s\) \[1\]"),
        ([np.ones((3, 4)), np.ones((5, 4))], "sample 1 has shape"),
        ([], "empty sequence"),
        ("features", "got str"),
        ([[1.0, 2.0], [3.0, 4.0]], r"reps\[0\]: expected a torch.Tensor"),
    ],
)
def test_bad_reps_raise(reps, message):
    with pytest.raises(ValueError, match=message):
        as_sets(reps)


def test_pair_shapes_must_agree():
    x, y = as_pair(np.ones((4, 3), dtype=np.float16), np.ones((4, 3), dtype=np.float16))
    assert x.shape == y.shape == (4, 3) and x.dtype == torch.float32
    with pytest.raises(ValueError, match=r"shapes differ, \(4, 3\) vs \(5, 3\)"):
        as_pair(np.ones((4, 3)), np.ones((5, 3)))
    with pytest.raises(ValueError, match="x: expected an"):
        as_pair(np.ones((2, 4, 3)), np.ones((2, 4, 3)))
