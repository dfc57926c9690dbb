"""What a result rests on: synthetic stand-in or real data, a model trained here or real pretrained weights."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

SYNTHETIC_DATA = "synthetic stand-in"
REAL_DATA = "real"
TRAINED_HERE = "trained here on synthetic data"
PRETRAINED = "real pretrained"
RANDOM_INIT = "random init"
GENERATED_MAPS = "generated maps (no model)"


def data_kind(dataset: object) -> str:
    """``synthetic stand-in`` for the generated datasets (names starting with "synthetic"), else ``real``."""
    return SYNTHETIC_DATA if str(dataset).startswith("synthetic") else REAL_DATA


def model_kind(backbone: object) -> str:
    """``trained here on synthetic data`` for the backbones the train stage produces (``*_synthetic``),
    ``generated maps`` where there is no backbone, else ``real pretrained``."""
    if backbone is None or pd.isna(backbone) or str(backbone) in ("", "None"):
        return GENERATED_MAPS
    return TRAINED_HERE if str(backbone).endswith("_synthetic") else PRETRAINED


def annotate(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with columns ``data`` and ``model`` from its dataset and backbone columns."""
    dataset = table["dataset"] if "dataset" in table else pd.Series([None] * len(table), index=table.index)
    backbone = table["backbone"] if "backbone" in table else pd.Series([None] * len(table), index=table.index)
    return table.assign(
        data=[SYNTHETIC_DATA if d is None or pd.isna(d) else data_kind(d) for d in dataset],
        model=[model_kind(b) for b in backbone],
    )


def describe(rows: pd.DataFrame) -> str:
    """One phrase naming every (data, model) combination of annotated ``rows`` with its backbones, e.g.
    ``synthetic stand-in data + trained here on synthetic data (resnet18_synthetic)``."""
    if rows.empty:
        return "no data"
    parts = []
    keys = rows[["data", "model"]].drop_duplicates().itertuples(index=False)
    for data, model in sorted(keys):
        chosen = rows[(rows["data"] == data) & (rows["model"] == model)]
        names = _names(chosen["backbone"] if "backbone" in chosen else [])
        parts.append(f"{data} data + {model}" + (f" ({names})" if names else ""))
    return "; ".join(parts)


def _names(values: Iterable) -> str:
    return ", ".join(
        sorted({str(v) for v in values if v is not None and not pd.isna(v) and str(v) != "None"})
    )
