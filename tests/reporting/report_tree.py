"""A tiny outputs/ tree that follows the results contract, written with the real RunLogger (wandb disabled).

Verdicts it is built to give: C1 confirmed, C2 confirmed (a two-job retrieval sweep), C3 not run, C4 refuted
(one configuration fails), C5 confirmed, C6 not run (its only run failed). The crops model, resnet18_synthetic,
has a train run (3 epochs, 600 images, seed 0); the other models pass for real pretrained ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from semrsm.metrics.bootstrap import N_RESAMPLES
from semrsm.reporting.aggregate import aggregate
from semrsm.reporting.figures import rsm_heatmaps
from semrsm.reporting.run_logger import RunLogger

EXPECTED = {"C1": "confirmed", "C2": "confirmed", "C3": "not run", "C4": "refuted", "C5": "confirmed"}
EXPECTED["C6"] = "not run"


def _replicates(keys: dict, n_units: int, seed: int, **statistics: tuple[float, float]) -> pd.DataFrame:
    """A bootstrap table: the full-sample row, then N_RESAMPLES normal draws per statistic (estimate, spread)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"replicate": np.arange(-1, N_RESAMPLES)}).assign(**keys, n_units=n_units, seed=0)
    for name, (estimate, spread) in statistics.items():
        frame[name] = np.r_[estimate, estimate + spread * rng.standard_normal(N_RESAMPLES)]
    return frame


def _crops() -> tuple[pd.DataFrame, pd.DataFrame]:
    rows, boot = [], []
    for index, (layer, size, (semantic, spatial)) in enumerate(
        [("layer1", 16, (0.93, 0.71)), ("layer4", 2, (0.97, 0.9))]
    ):
        keys = {"dataset": "synthetic_crops", "backbone": "resnet18_synthetic", "layer": layer, "spatial_size": size,
                "kernel": "cosine", "matcher": "hungarian"}  # fmt: skip
        for rsm, auroc in [("semantic", semantic), ("spatio_semantic", spatial)]:
            rows.append({**keys, "rsm": rsm, "auroc": auroc, "same_mean": auroc - 0.1, "different_mean": 0.3})
        spread = (0.01, 0.01)
        boot.append(
            _replicates(
                keys,
                20,
                index,
                auroc_semantic=(semantic, spread[0]),
                auroc_spatio_semantic=(spatial, spread[1]),
            )
        )
    return pd.DataFrame(rows), pd.concat(boot, ignore_index=True)


def _retrieval(backbone: str, gain: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows, queries = [], []
    for kernel, base in [("cosine", 0.41), ("rbf", 0.38)]:
        keys = {"dataset": "synthetic_scenes", "backbone": backbone, "layer": "layer4", "kernel": kernel,
                "matcher": "hungarian"}  # fmt: skip
        for semantic in (True, False):
            f1 = base + (gain if semantic else 0.0)
            rows.append({**keys, "semantic": semantic, "f1_at_1": f1, "n_queries": 40})
        offsets = np.where(np.arange(40) % 2 == 0, 0.02, -0.02)
        queries.append(pd.DataFrame({**keys, "seed": 0, "query": np.arange(40), "f1_spatio_semantic": base,
                                     "f1_semantic": base + gain + offsets}))  # fmt: skip
    return pd.DataFrame(rows), pd.concat(queries, ignore_index=True)


def _class_probability() -> tuple[pd.DataFrame, pd.DataFrame]:
    values = {
        ("cosine", True): -0.42,
        ("cosine", False): -0.31,
        ("linear", True): -0.12,
        ("linear", False): -0.2,
    }
    keys = {"dataset": "synthetic", "backbone": "resnet18", "layer": "layer4", "matcher": "hungarian"}
    table = pd.DataFrame(
        [
            {
                **keys,
                "kernel": kernel,
                "semantic": semantic,
                "pearson": pearson,
                "spearman": pearson - 0.05,
                "n_pairs": 190,
            }  # fmt: skip
            for (kernel, semantic), pearson in values.items()
        ]
    )
    boot = []
    for index, kernel in enumerate(("cosine", "linear")):
        inv, non = values[kernel, True], values[kernel, False]
        boot.append(_replicates({**keys, "kernel": kernel, "pairs": "all"}, 20, index,
                                pearson_semantic=(inv, 0.01), pearson_spatio_semantic=(non, 0.01),
                                spearman_semantic=(inv - 0.05, 0.01), spearman_spatio_semantic=(non - 0.05, 0.01)))  # fmt: skip
    return table, pd.concat(boot, ignore_index=True)


def _matchers() -> tuple[pd.DataFrame, pd.DataFrame]:
    rows, pairs = [], []
    rng = np.random.default_rng(0)
    for size, scale in [(64, 1.0), (196, 8.0)]:
        for matcher, ms, quality, exact in [
            ("hungarian", 2.0, 1.0, True),
            ("batch_optimal", 0.3, 0.97, False),
            ("greedy", 0.1, 0.93, False),
            ("identity", 0.01, 0.0, False),
        ]:
            keys = {"source": "features:synthetic/resnet18", "dataset": "synthetic", "backbone": "resnet18",
                    "layer": "layer1", "native_size": 64, "spatial_size": size, "matcher": matcher}  # fmt: skip
            rows.append(
                {**keys, "ms_per_pair": ms * scale, "quality": quality, "exact": exact, "n_pairs": 64}
            )
            score = 10.0 + 10.0 * np.clip(quality + 0.01 * rng.standard_normal(64), None, 1.0)
            pairs.append(pd.DataFrame({**keys, "window": 128, "pair": np.arange(64), "reference": "hungarian",
                                       "cpu_ms": ms * scale * rng.uniform(0.9, 1.1, 64), "score": score,
                                       "identity_score": 10.0, "optimum": 20.0, "fallback": False}))  # fmt: skip
    return pd.DataFrame(rows), pd.concat(pairs, ignore_index=True)


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
    run_dir: Path,
    experiment: str,
    stage: str,
    tables: dict,
    figures: dict,
    overrides: list[str],
    options: dict | None = None,
    summary: dict | None = None,
) -> Path:
    """One finished stage run as run_stage leaves it: <run_dir>/results with stage.json; returns results dir.
    ``options`` go into the config's experiment group, ``summary`` into stage.json's summary."""
    results = run_dir / "results"
    config = _config(experiment, stage, dataset="synthetic", backbone="resnet18")
    config["experiment"].update(options or {})
    with RunLogger(results, config, mode="disabled", group=experiment, job_type=stage) as logger:
        for name, table in tables.items():
            logger.log_table(name, table)
        for name, figure in figures.items():
            logger.log_figure(name, figure)
        summary = {
            "rows": sum(len(table) for table in tables.values()),
            "stage_wall_time_s": 1.5,
            **(summary or {}),
        }
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
    history = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [2.0, 1.4, 1.1], "val_loss": [1.9, 1.3, 1.2],
                            "val_acc": [0.4, 0.6, 0.71]})  # fmt: skip
    write_run(
        runs / "train" / "resnet18_synthetic.seed=0",
        "train",
        "train",
        {"history": history},
        {},
        ["seed=0"],
        options={"checkpoint_name": "resnet18_synthetic_seed0.pt", "epochs": 3, "max_train_samples": 600},
        summary={"val_acc": 0.71, "num_train_samples": 600},
    )
    write_run(
        runs / "translated_crops" / "dataset=synthetic_crops",
        "translated_crops",
        "translated_crops",
        dict(zip(("crops_separation", "crops_bootstrap"), _crops(), strict=True)),
        {"rsm_layer1": _heatmaps(0), "distributions_layer1": _heatmaps(1)},
        ["dataset=synthetic_crops"],
    )
    for backbone, gain in [("resnet18", 0.12), ("vit_tiny", 0.05)]:
        write_run(
            sweeps / "retrieval" / f"backbone={backbone}",
            "retrieval",
            "retrieval",
            dict(zip(("retrieval", "retrieval_queries"), _retrieval(backbone, gain), strict=True)),
            {"retrievals_layer4": _heatmaps(2)},
            [f"backbone={backbone}"],
        )
    aggregate(sweeps / "retrieval")
    write_run(
        runs / "class_probability" / "default",
        "class_probability",
        "class_probability",
        dict(zip(("class_probability", "class_probability_bootstrap"), _class_probability(), strict=True)),
        {},
        [],
    )
    matcher_tables = dict(zip(("matchers", "matchers_pairs"), _matchers(), strict=True))
    write_run(runs / "matchers" / "default", "matchers", "matchers", matcher_tables, {}, [])
    write_failed_run(runs / "layers_cka" / "default", "layers_cka", "layers_cka")
    return outputs
