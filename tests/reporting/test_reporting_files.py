import json
from pathlib import Path

import numpy as np
import pytest
import torch

from semrsm.reporting.files import atomic_path, atomic_write_json, to_jsonable


def test_atomic_path_replaces_on_success_and_cleans_up_on_error(tmp_path):
    target = tmp_path / "sub" / "result.csv"
    with atomic_path(target) as temporary:
        assert temporary.suffix == ".csv" and temporary.parent == target.parent
        temporary.write_text("new")
    assert target.read_text() == "new"
    with pytest.raises(OSError):
        with atomic_path(target) as temporary:
            temporary.write_text("partial")
            raise OSError("disk full")
    assert target.read_text() == "new"
    assert sorted(path.name for path in target.parent.iterdir()) == ["result.csv"]


def test_to_jsonable_converts_array_types_and_non_finite_values(tmp_path):
    data = {
        "a": np.float32(0.5),
        "b": torch.tensor([1, 2]),
        "c": (Path("x"), float("inf")),
        3: np.bool_(True),
    }
    assert to_jsonable(data) == {"a": 0.5, "b": [1, 2], "c": ["x", None], "3": True}
    atomic_write_json(tmp_path / "d.json", data)
    assert json.loads((tmp_path / "d.json").read_text())["c"] == ["x", None]
    with pytest.raises(ValueError, match="object"):
        to_jsonable({"bad": object()})
