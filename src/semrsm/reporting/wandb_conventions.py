"""How stage runs appear in W&B, in one place: group, job type, tags and labels, and the summary vocabulary.

- ``group``: one pipeline invocation. ``make reproduce`` names it ``<suite>-<UTC time>-<6 hex>`` for the whole
  suite (and its final ``verdicts`` run), a Hydra multirun ``<experiment>-sweep-<time>-<hex>`` for all its jobs,
  a single ``experiments/run.py`` call ``<experiment>-<time>-<hex>``. The invocation passes it to its stage runs
  through the environment variable ``SEMRSM_WANDB_GROUP`` (also inherited by a sweep's worker processes);
  ``logger.group=<name>`` sets it by hand.
- ``job_type``: the stage (``train``, ``retrieval``, ..., ``verdicts``).
- ``tags``: only the choices the stage uses, by their config names: ``dataset:<name>``, ``backbone:<name>``
  (``resnet18_synthetic``, not the architecture), ``kernel:<name>`` for each kernel it computes,
  ``matcher:<name>`` for each matcher it runs, and ``data:synthetic`` or ``data:real``.
- labels: the same choices in the run config under ``choices`` (``choices.backbone`` ..., and ``choices.setup``
  = ``<backbone> on <dataset>``), so a workspace groups and filters by them.
- summary keys never name a layer: a metric computed per layer is summarised as ``<metric>/last`` (the deepest
  layer the stage evaluated) and ``<metric>/mean`` (mean over the evaluated layers); see ``SUMMARY_KEYS``.
  The long-form tables keep one row per layer.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence

from semrsm.reporting.provenance import SYNTHETIC_DATA, data_kind

GROUP_ENV = "SEMRSM_WANDB_GROUP"
CHOICE_GROUPS = ("dataset", "backbone", "kernel", "matcher")
DATA_TAGS = ("data:synthetic", "data:real")
VARIANTS = ("semantic", "spatio_semantic")  # the semantic RSM (a matcher) and the flattened baseline
KERNELS = ("cosine", "linear", "rbf")
LAYER_STATISTICS = ("last", "mean")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
MAX_ARTIFACT_NAME = 120
_GROUP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=,:+-]{0,127}$")


def artifact_name(*parts: object) -> str:
    """A W&B artifact name from ``parts``: ``-``-joined, characters other than letters, digits and ``_ . -``
    replaced by ``_``; longer than MAX_ARTIFACT_NAME: cut and suffixed with a hash, so distinct names stay
    distinct."""
    name = "-".join(s for s in (_UNSAFE.sub("_", str(p)).strip("_.-") for p in parts) if s)
    if not name:
        raise ValueError(f"artifact name parts {parts!r} give an empty name")
    if len(name) > MAX_ARTIFACT_NAME:
        name = f"{name[: MAX_ARTIFACT_NAME - 13]}-{hashlib.sha256(name.encode()).hexdigest()[:12]}"
    return name


def new_group(prefix: str) -> str:
    """A fresh group name ``<prefix>-<UTC time>-<6 hex digits>``: unique per invocation, sortable by time."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return check_group(f"{prefix}-{stamp}-{secrets.token_hex(3)}")


def check_group(group: str) -> str:
    """``group`` if it is a usable W&B group name (letters, digits, ``_ . = , : + -``; at most 128), else
    ValueError naming it."""
    if not isinstance(group, str) or not _GROUP_NAME.match(group):
        raise ValueError(
            f"wandb group must be 1-128 characters of letters, digits and _ . = , : + - "
            f"(starting with a letter or digit), got {group!r}"
        )
    return group


def invocation_group(prefix: str) -> str:
    """The group of the current invocation: ``SEMRSM_WANDB_GROUP`` when set (a suite or a sweep), else a new
    group named after ``prefix`` (a single run is its own invocation)."""
    from_env = os.environ.get(GROUP_ENV)
    if from_env:
        return check_group(from_env)
    return new_group(prefix)


def data_label(dataset: str) -> str:
    """``synthetic`` for the generated stand-in datasets, else ``real``."""
    return "synthetic" if data_kind(dataset) == SYNTHETIC_DATA else "real"


def run_choices(used: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """The ``choices`` config labels of a run from the choices it uses (group -> names): each group's names
    joined by ``+`` (``kernel: cosine+linear+rbf``), plus ``data`` and ``setup`` (``<backbone> on <dataset>``,
    what the dashboard's bars group by, so one dataset's runs are not averaged with another's)."""
    unknown = set(used) - set(CHOICE_GROUPS)
    if unknown or "dataset" not in used:
        raise ValueError(
            f"used choices must include dataset and only name {CHOICE_GROUPS}, got {sorted(used)}"
        )
    labels = {}
    for group in CHOICE_GROUPS:
        names = list(used.get(group, ()))
        if group in used and (not names or not all(isinstance(n, str) and n for n in names)):
            raise ValueError(f"choices of {group!r} must be non-empty names, got {names!r}")
        if names:
            labels[group] = "+".join(names)
    labels["data"] = data_label(labels["dataset"])
    labels["setup"] = (
        f"{labels['backbone']} on {labels['dataset']}" if "backbone" in labels else labels["dataset"]
    )
    return labels


def run_tags(used: Mapping[str, Sequence[str]], extra: Iterable[str] = ()) -> list[str]:
    """Tags of a run: ``<group>:<name>`` for every choice it uses (in CHOICE_GROUPS order), its ``data:`` tag,
    then ``extra`` (the configured ``logger.tags``); no duplicates."""
    labels = run_choices(used)
    tags = [f"{group}:{name}" for group in CHOICE_GROUPS for name in used.get(group, ())]
    tags.append(f"data:{labels['data']}")
    for tag in extra:
        if not isinstance(tag, str) or not tag:
            raise ValueError(f"logger.tags must be non-empty strings, got {tag!r}")
        tags.append(tag)
    return list(dict.fromkeys(tags))


def layer_statistics(metric: str, values: Sequence[float]) -> dict[str, float]:
    """``<metric>/last`` (the last of ``values``, given in depth order) and ``<metric>/mean``."""
    if not values:
        raise ValueError(f"{metric}: no layer values to summarise")
    values = [float(v) for v in values]
    return {f"{metric}/last": values[-1], f"{metric}/mean": sum(values) / len(values)}


def retrieval_keys(kernels: Iterable[str] = KERNELS) -> list[str]:
    keys = []
    for kernel in kernels:
        keys += [f"f1_at_1/{variant}/{kernel}/last" for variant in VARIANTS]
        keys += [f"f1_gain/{kernel}/{stat}" for stat in LAYER_STATISTICS]
    return [*keys, "f1_gain/min", "f1_gain/max", "f1_random"]


def matcher_keys(matchers: Iterable[str], kinds: Iterable[str] = ("features",)) -> list[str]:
    """Per matcher, mean quality ratio and CPU ms per pair at the largest spatial size of each source kind."""
    return [
        f"{kind}/{measure}_{matcher}"
        for kind in kinds
        for matcher in matchers
        for measure in ("quality", "ms")
    ]


def correlation_keys() -> list[str]:
    keys = []
    for method in ("pearson", "spearman"):
        keys += [f"{method}/{variant}/{stat}" for variant in VARIANTS for stat in LAYER_STATISTICS]
        keys += [f"{method}_difference/{stat}" for stat in LAYER_STATISTICS]
    return keys


# The layer-independent summary keys every stage logs (besides counts, timings and the feature key).
SUMMARY_KEYS: dict[str, list[str]] = {
    "train": ["val_acc", "val_loss", "train_loss", "train_time_s"],
    "translated_crops": [
        *(f"auroc/{variant}/{stat}" for variant in VARIANTS for stat in LAYER_STATISTICS),
        *(f"auroc_gain/{stat}" for stat in LAYER_STATISTICS),
        "auroc_gain/min",
        *(f"same_mean/{variant}/last" for variant in VARIANTS),
    ],
    "retrieval": retrieval_keys(("cosine",)),  # for each kernel the run computes
    "class_probability": correlation_keys(),
    "layers_cka": ["cka/first", "cka/last", "cka/mean", "cka/spearman_spatial_size"],
    "matchers": ["num_matchers", "num_sizes", "pairs_per_size"],
    "verdicts": [],  # verdict/<claim> per claim of semrsm.reporting.claims.CLAIMS
}
