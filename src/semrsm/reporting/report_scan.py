"""Find the stage runs and sweep tables under an outputs directory for the HTML report.

Layout read (see conf/hydra/default.yaml and semrsm.pipeline.stages.run_stage):
    <outputs>/runs/<experiment>/<run>/results/          a finished stage (stage.json, status.json "ok")
    <outputs>/multirun/<experiment>/<job>/results/      one job of a sweep
    <outputs>/{runs,multirun}/.../results.failed/       a failed stage (status.json with the error)
    <outputs>/multirun/<experiment>/*.csv               a sweep's aggregated table(s)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from semrsm.storage import join_run_tables

RUN_ROOTS = ("runs", "multirun")
RESULTS, FAILED = "results", "results.failed"
SKIPPED_DIRS = ("wandb", "tables", "figures")
RUN_COLUMN = "run"


@dataclass(frozen=True)
class RunResult:
    """One stage run's results directory and what it holds."""

    results_dir: Path
    name: str  # the run directory relative to outputs, e.g. runs/retrieval/backbone=vit_tiny
    experiment: str
    stage: str
    status: str  # "ok", "failed" or "running"
    complete: bool  # status "ok" and stage.json written by run_stage: its tables are final
    summary: dict[str, Any]
    config: dict[str, Any]
    metadata: dict[str, Any]
    error: str | None
    tables: dict[str, Path]
    figures: dict[str, Path]


@dataclass(frozen=True)
class SweepTable:
    """An aggregated sweep table (<outputs>/multirun/<experiment>/<name>.csv)."""

    experiment: str
    path: Path


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data


def _files(directory: Path, suffix: str) -> dict[str, Path]:
    if not directory.is_dir():
        return {}
    return {path.stem: path for path in sorted(directory.glob(f"*{suffix}")) if not path.name.startswith(".")}


def read_run(results_dir: Path, outputs: Path) -> RunResult:
    """The run whose results (or results.failed) directory is `results_dir`."""
    run_dir = results_dir.parent
    name = run_dir.relative_to(outputs).as_posix()
    stage_record = _read_json(results_dir / "stage.json")
    config = _read_json(results_dir / "config.json")
    status = _read_json(results_dir / "status.json")
    parts = Path(name).parts
    experiment = (config.get("experiment") or {}).get("name") or parts[min(1, len(parts) - 1)]
    stage = stage_record.get("stage") or (config.get("experiment") or {}).get("stage") or ""
    state = status.get("status", "failed" if results_dir.name == FAILED else "running")
    return RunResult(
        results_dir=results_dir,
        name=name,
        experiment=str(experiment),
        stage=str(stage),
        status=state,
        complete=state == "ok" and results_dir.name == RESULTS and bool(stage_record),
        summary=stage_record.get("summary") or {},
        config=config,
        metadata=_read_json(results_dir / "metadata.json"),
        error=status.get("error"),
        tables=_files(results_dir / "tables", ".csv"),
        figures=_files(results_dir / "figures", ".png"),
    )


def find_runs(outputs: str | os.PathLike) -> list[RunResult]:
    """Every results and results.failed directory under <outputs>/runs and <outputs>/multirun, by name."""
    base = Path(outputs)
    if not base.is_dir():
        raise FileNotFoundError(f"outputs directory does not exist: {base}")
    found = []
    for root in RUN_ROOTS:
        for directory, subdirs, _ in os.walk(base / root):
            here = Path(directory)
            if here.name in (RESULTS, FAILED) and here != base / root:
                found.append(read_run(here, base))
                subdirs.clear()
                continue
            subdirs[:] = sorted(d for d in subdirs if not d.startswith(".") and d not in SKIPPED_DIRS)
    return sorted(found, key=lambda run: (run.experiment, run.name, run.results_dir.name))


def find_sweep_tables(outputs: str | os.PathLike) -> list[SweepTable]:
    """The aggregated CSV tables directly inside each <outputs>/multirun/<experiment>/ directory."""
    sweeps = Path(outputs) / "multirun"
    if not sweeps.is_dir():
        return []
    return [
        SweepTable(directory.name, path)
        for directory in sorted(path for path in sweeps.iterdir() if path.is_dir())
        for path in sorted(directory.glob("*.csv"))
    ]


def combined_tables(runs: list[RunResult]) -> dict[str, pd.DataFrame]:
    """Per table name, the rows of every finished run's tables/<name>.csv, with a leading `run` column."""
    return join_run_tables(((run.name, run.tables) for run in runs if run.complete), RUN_COLUMN)
