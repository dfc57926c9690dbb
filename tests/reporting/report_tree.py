"""A tiny outputs/ tree that follows the results contract, written with the real RunLogger (wandb disabled).

Verdicts it is built to give: C1 confirmed, C2 confirmed (a two-job retrieval sweep), C3 not run, C4 refuted
(one configuration fails), C5 confirmed, C6 not run (its only run failed).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from semrsm.reporting.aggregate import aggregate
from semrsm.reporting.figures import rsm_heatmaps
from semrsm.reporting.run_logger import RunLogger

EXPECTED = {"C1": "confirmed", "C2": "confirmed", "C3": "not run", "C4": "refuted", "C5": "confirmed"}
EXPECTED["C6"] = "not run"


def _crops() -> pd.DataFrame:
    rows = []
    for layer, size, (semantic, spatial) in [("layer1", 16, (0.93, 0.71)), ("layer4", 2, (0.97, 0.9))]:
        for rsm, auroc, matcher in [
            ("semantic", semantic, "hungarian"),
            ("spatio_semantic", spatial, "identity"),
        ]:
            rows.append(
                {
                    "dataset": "synthetic_crops",
                    "backbone": "resnet18",
                    "layer": layer,
                    "spatial_size": size,
                    "rsm": rsm,
                    "kernel": "cosine",
                    "matcher": matcher,
                    "auroc": auroc,
                    "same_mean": auroc - 0.1,
                    "different_mean": 0.3,
                }
            )
    return pd.DataFrame(rows)


def _retrieval(backbone: str, gain: float) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "dataset": "synthetic_scenes",
                "backbone": backbone,
                "layer": "layer4",
                "kernel": kernel,
                "matcher": "hungarian",
                "invariant": invariant,
                "f1_at_1": base + (gain if invariant else 0.0),
                "n_queries": 40,
            }
            for kernel, base in [("cosine", 0.41), ("rbf", 0.38)]
            for invariant in (True, False)
        ]
    )


def _class_probability() -> pd.DataFrame:
    values = {
        ("cosine", True): -0.42,
        ("cosine", False): -0.31,
        ("linear", True): -0.12,
        ("linear", False): -0.2,
    }
    return pd.DataFrame(
        [
            {
                "dataset": "synthetic",
                "backbone": "resnet18",
                "layer": "layer4",
                "kernel": kernel,
                "matcher": "hungarian",
                "invariant": invariant,
                "pearson": pearson,
                "spearman": pearson - 0.05,
                "n_pairs": 190,
            }
            for (kernel, invariant), pearson in values.items()
        ]
    )


def _matchers() -> pd.DataFrame:
    rows = []
    for size, scale in [(16, 1.0), (64, 8.0)]:
        for matcher, ms, quality, exact in [
            ("hungarian", 2.0, 1.0, True),
            ("batch_optimal", 0.3, 0.97, False),
            ("greedy", 0.1, 0.93, False),
            ("identity", 0.01, 0.55, False),
        ]:
            rows.append(
                {
                    "source": "features:resnet18/layer1",
                    "spatial_size": size,
                    "matcher": matcher,
                    "ms_per_pair": ms * scale,
                    "quality_ratio": quality,
                    "exact": exact,
                }
            )
    return pd.DataFrame(rows)


def _heatmaps(seed: int):
    generator = np.random.default_rng(seed)
    rsm = generator.random((6, 6))
    return rsm_heatmaps({"spatio-semantic": rsm, "semantic": (rsm + rsm.T) / 2}, title="layer1")


def _config(experiment: str, stage: str, **choices: str) -> dict:
    return {
        "experiment": {"name": experiment, "stage": stage},
        **{k: {"name": v} for k, v in choices.items()},
    }


def write_run(
    run_dir: Path, experiment: str, stage: str, tables: dict, figures: dict, overrides: list[str]
) -> Path:
    """One finished stage run as run_stage leaves it: <run_dir>/results with stage.json; returns results dir."""
    results = run_dir / "results"
    config = _config(experiment, stage, dataset="synthetic", backbone="resnet18")
    with RunLogger(results, config, mode="disabled", group=experiment, job_type=stage) as logger:
        for name, table in tables.items():
            logger.log_table(name, table)
        for name, figure in figures.items():
            logger.log_figure(name, figure)
        summary = {"rows": sum(len(table) for table in tables.values()), "stage_wall_time_s": 1.5}
        logger.log_metrics(summary)
    record = {"stage": stage, "fingerprint": "f" * 16, "summary": summary}
    (results / "stage.json").write_text(json.dumps(record))
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    return results


def write_failed_run(run_dir: Path, experiment: str, stage: str) -> Path:
    """A stage that raised, as run_stage leaves it: <run_dir>/results.failed with status "failed"."""
    partial = run_dir / "results.partial-1"
    try:
        with RunLogger(partial, _config(experiment, stage), mode="disabled"):
            raise RuntimeError("feature store missing layer3")
    except RuntimeError:
        partial.rename(run_dir / "results.failed")
    return run_dir / "results.failed"


def write_outputs_tree(outputs: Path) -> Path:
    """Write the tree under `outputs` (runs, a retrieval sweep with its aggregate table, a failed run)."""
    runs, sweeps = outputs / "runs", outputs / "multirun"
    write_run(
        runs / "translated_crops" / "dataset=synthetic_crops",
        "translated_crops",
        "translated_crops",
        {"crops_separation": _crops()},
        {"rsm_layer1": _heatmaps(0), "distributions_layer1": _heatmaps(1)},
        ["dataset=synthetic_crops"],
    )
    for backbone, gain in [("resnet18", 0.12), ("vit_tiny", 0.05)]:
        write_run(
            sweeps / "retrieval" / f"backbone={backbone}",
            "retrieval",
            "retrieval",
            {"retrieval": _retrieval(backbone, gain)},
            {"retrievals_layer4": _heatmaps(2)},
            [f"backbone={backbone}"],
        )
    aggregate(sweeps / "retrieval")
    write_run(
        runs / "class_probability" / "default",
        "class_probability",
        "class_probability",
        {"class_probability": _class_probability()},
        {},
        [],
    )
    write_run(runs / "matchers" / "default", "matchers", "matchers", {"matchers": _matchers()}, {}, [])
    write_failed_run(runs / "layers_cka" / "default", "layers_cka", "layers_cka")
    return outputs
