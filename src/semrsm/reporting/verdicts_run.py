"""The ``verdicts`` run that closes a ``make reproduce`` invocation: the claim table as a W&B run of its group.

It judges the claims (``semrsm.reporting.claims.judge_claims``) on the tables of the invocation's finished
runs and logs, in the invocation's group with job type ``verdicts``: the table ``verdicts`` (claim, statement,
status, rule, basis, summary), the table ``claim_evidence`` (every configuration's effect, interval, n and
outcome), the summary ``verdict/<claim>`` (the status) and ``claims/<status>`` (how many claims have it).
Locally the same files as any run: ``<out_dir>/tables/verdicts.csv`` etc.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from semrsm.reporting.claims import CLAIMS, STATUSES, Verdict, judge_claims
from semrsm.reporting.report_scan import combined_tables, read_run
from semrsm.reporting.run_logger import RunLogger
from semrsm.reporting.wandb_conventions import artifact_name

JOB_TYPE = "verdicts"


def verdict_frames(verdicts: list[Verdict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per claim, every configuration's evidence with a leading claim column)."""
    statements = {claim.id: claim.statement for claim in CLAIMS}
    table = pd.DataFrame(
        [
            {
                "claim": v.claim,
                "statement": statements.get(v.claim, ""),
                "status": v.status,
                "rule": v.rule,
                "basis": v.basis,
                "summary": v.summary,
            }
            for v in verdicts
        ]
    )
    parts = [v.evidence.assign(claim=v.claim) for v in verdicts if not v.evidence.empty]
    evidence = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({"claim": []})
    evidence = evidence[["claim", *evidence.columns.drop("claim")]]
    # wandb.Table wants one type per column: mixed object columns become text
    for column in evidence.select_dtypes(include=["object", "string"]).columns:
        evidence[column] = evidence[column].map(lambda v: "" if v is None or v != v else str(v))
    return table, evidence


def log_verdicts(
    results_dirs: Iterable[str | os.PathLike],
    outputs: str | os.PathLike,
    out_dir: str | os.PathLike,
    group: str,
    mode: str = "offline",
    project: str = "semrsm",
    config: dict[str, Any] | None = None,
) -> list[Verdict]:
    """Judge the claims on the finished runs in ``results_dirs`` (``<run>/results`` under ``outputs``) and log
    the ``verdicts`` run of ``group`` into ``out_dir``; returns the verdicts."""
    runs = [read_run(Path(path), Path(outputs)) for path in results_dirs if Path(path).is_dir()]
    verdicts = judge_claims(combined_tables([run for run in runs if run.complete]))
    table, evidence = verdict_frames(verdicts)
    summary: dict[str, Any] = {f"verdict/{v.claim}": v.status for v in verdicts}
    summary |= {
        f"claims/{status.replace(' ', '_')}": sum(v.status == status for v in verdicts) for status in STATUSES
    }
    summary["num_runs"] = len(runs)
    logger = RunLogger(
        out_dir,
        {"runs": [run.name for run in runs], **(config or {})},
        mode=mode,
        project=project,
        group=group,
        job_type=JOB_TYPE,
        name=artifact_name(JOB_TYPE, group),
        tags=[JOB_TYPE],
    )
    with logger:
        logger.log_table("verdicts", table)
        logger.log_table("claim_evidence", evidence)
        logger.log_metrics(summary)
    return verdicts
