"""The self-contained HTML report of everything under outputs/: claim verdicts, tables, figures, metadata, sweeps.

    python -m semrsm.reporting.report --outputs outputs --out outputs/report/index.html

Reads only finished stage results (<run>/results with status "ok" and stage.json); failed or unfinished runs
are listed with their error. One HTML file, no server, no network: images are embedded as data URIs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from semrsm.reporting.claims import CLAIMS, STATUSES, Claim, Verdict, judge_claims
from semrsm.reporting.report_html import badge, esc, figure_html, html_table, page
from semrsm.reporting.report_scan import RunResult, SweepTable, combined_tables, find_runs, find_sweep_tables
from semrsm.storage import atomic_write_text

TITLE = "Semantic RSM reproduction report"
STAGE_ORDER = ("train", "translated_crops", "retrieval", "class_probability", "matchers", "layers_cka")
SCHEME = (
    "Verdicts: each configuration's effect (e.g. F1@1 gain, AUROC gain, correlation difference) has a 95 % "
    "bootstrap interval over its independent units (queries, images, source images, pairs; training seeds "
    "resampled too where models were trained). <b>confirmed</b> = every configuration's interval supports the "
    "claim; <b>refuted</b> = at least one interval contradicts it (highlighted in the evidence); "
    "<b>inconclusive</b> = neither; <b>not run</b> = no finished result bears on it. Each verdict names the "
    "data and models it rests on (synthetic stand-in or real)."
)


def anchor(experiment: str) -> str:
    """The HTML id of an experiment's section."""
    return "exp-" + "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in experiment)


def _experiment_order(runs: list[RunResult]) -> list[str]:
    def key(experiment: str) -> tuple[int, str]:
        stages = {run.stage for run in runs if run.experiment == experiment}
        ranks = [STAGE_ORDER.index(stage) for stage in stages if stage in STAGE_ORDER]
        return (min(ranks, default=len(STAGE_ORDER)), experiment)

    return sorted({run.experiment for run in runs}, key=key)


def _wall_time(run: RunResult) -> float | None:
    value = run.summary.get("stage_wall_time_s", run.metadata.get("wall_time_s"))
    return float(value) if isinstance(value, int | float) else None


def _commit(run: RunResult) -> str:
    git = run.metadata.get("git") or {}
    commit = (git.get("commit") or "")[:10] or "unknown"
    return f"{commit} (dirty)" if git.get("dirty") else commit


def overview_section(complete: list[RunResult], incomplete: list[RunResult], sweeps: list[SweepTable]) -> str:
    """Counts and wall time per stage."""
    experiments = len({run.experiment for run in complete})
    counts = (
        f"<p>{len(complete)} finished run(s) in {experiments} experiment(s); "
        f"{len(incomplete)} failed or unfinished run(s); {len(sweeps)} aggregated sweep table(s).</p>"
    )
    if not complete:
        return (
            f'<section id="overview"><h2>Overview</h2>{counts}<p class="note">Nothing to report yet: run '
            "<code>make reproduce</code> or a stage first.</p></section>"
        )
    times = pd.DataFrame(
        {"stage": [run.stage for run in complete], "wall": [_wall_time(run) for run in complete]}
    )
    per_stage = times.groupby("stage", sort=False)["wall"].agg(["count", "sum", "mean", "max"]).reset_index()
    per_stage.columns = ["stage", "runs", "total wall time (s)", "mean wall time (s)", "max wall time (s)"]
    table = html_table(per_stage, "Wall time per stage")
    return f'<section id="overview"><h2>Overview</h2>{counts}{table}</section>'


def claim_html(claim: Claim, verdict: Verdict, link: str | None) -> str:
    """One claim: id, verdict, the paper's statement, the numbers, and the evidence rows."""
    where = f' · <a href="#{esc(link)}">results</a>' if link else ""
    evidence = ""
    if not verdict.evidence.empty:
        label = f"evidence ({len(verdict.evidence)} configuration(s))"
        evidence = f"<details><summary>{label}</summary>{html_table(verdict.evidence)}</details>"
    return (
        f'<div class="claim {esc(verdict.status.replace(" ", "-"))}" id="claim-{esc(claim.id)}">'
        f'<b>{esc(claim.id)}</b> {badge(verdict.status)} <span class="muted">{esc(claim.experiment)} · '
        f"table {esc(claim.table)}.csv{where}</span>"
        f'<div class="statement">{esc(claim.statement)}</div><div>{esc(verdict.summary)}</div>{evidence}</div>'
    )


def claims_section(verdicts: list[Verdict], links: dict[str, str]) -> str:
    """Every claim of the paper with its verdict."""
    tally = ", ".join(f"{sum(v.status == status for v in verdicts)} {status}" for status in STATUSES)
    cards = "".join(
        claim_html(claim, verdict, links.get(claim.table))
        for claim, verdict in zip(CLAIMS, verdicts, strict=True)
    )
    return f'<section id="claims"><h2>Claims of the paper ({tally})</h2><p class="note">{SCHEME}</p>{cards}</section>'


def _metadata_html(run: RunResult) -> str:
    meta = run.metadata
    wandb = meta.get("wandb") or {}
    facts = {
        "git commit": _commit(run),
        "host": meta.get("hostname"),
        "platform": meta.get("platform"),
        "python": meta.get("python"),
        "torch": meta.get("torch"),
        "device": meta.get("device"),
        "CPUs / torch threads": f"{meta.get('cpu_count')} / {meta.get('torch_threads')}",
        "started / finished": f"{meta.get('started')} / {meta.get('finished')}",
        "stage wall time (s)": _wall_time(run),
        "wandb": ", ".join(f"{key}={value}" for key, value in wandb.items() if value is not None),
        "tags": ", ".join(meta.get("tags") or []),
        "results": str(run.results_dir),
    }
    facts_table = pd.DataFrame({"field": list(facts), "value": [str(value) for value in facts.values()]})
    packages = pd.DataFrame(sorted((meta.get("packages") or {}).items()), columns=["package", "version"])
    config = yaml.safe_dump(run.config, sort_keys=False) if run.config else "(no config recorded)\n"
    return (
        f"<details><summary>{esc(run.name)}: configuration, environment and packages</summary>"
        f"{html_table(facts_table)}<h3>Configuration</h3><pre>{esc(config)}</pre>"
        f"{html_table(packages, 'Package versions') if not packages.empty else ''}</details>"
    )


def _figures_html(runs: Iterable[RunResult]) -> str:
    figures = [
        figure_html(path, f"{run.name} · {name}.png") for run in runs for name, path in run.figures.items()
    ]
    return f'<h3>Figures</h3><div class="figures">{"".join(figures)}</div>' if figures else ""


def experiment_section(experiment: str, runs: list[RunResult], verdicts: dict[str, Verdict]) -> str:
    """One experiment: its claims, runs, summary metrics, tables, figures and run metadata."""
    tables = combined_tables(runs)
    judged = [claim for claim in CLAIMS if claim.table in tables]
    claims = " ".join(
        f'<a href="#claim-{esc(claim.id)}">{esc(claim.id)}</a> {badge(verdicts[claim.id].status)}'
        for claim in judged
    )
    stages = ", ".join(sorted({run.stage for run in runs}))
    runs_table = pd.DataFrame(
        {
            "run": [run.name for run in runs],
            "stage": [run.stage for run in runs],
            "wall time (s)": [_wall_time(run) for run in runs],
            "git commit": [_commit(run) for run in runs],
            "device": [run.metadata.get("device") for run in runs],
            "finished": [run.metadata.get("finished") for run in runs],
        }
    )
    summary = pd.DataFrame([{"run": run.name, **run.summary} for run in runs])
    parts = [
        f'<section id="{anchor(experiment)}"><h2>Experiment {esc(experiment)} '
        f'<span class="muted">(stage {esc(stages)})</span></h2>',
        f"<p>Claims judged from these tables: {claims}</p>" if claims else "",
        html_table(runs_table, f"Runs ({len(runs)})"),
        html_table(summary, "Summary metrics (stage.json)") if len(summary.columns) > 1 else "",
        *(html_table(table, f"{name}.csv") for name, table in sorted(tables.items())),
        _figures_html(runs),
        "<h3>Run metadata</h3>",
        *(_metadata_html(run) for run in runs),
        "</section>",
    ]
    return "".join(parts)


def sweeps_section(sweeps: list[SweepTable], outputs: Path) -> str:
    """Each sweep's aggregated table."""
    if not sweeps:
        return '<section id="sweeps"><h2>Sweeps</h2><p class="note">No aggregated sweep tables.</p></section>'
    tables = [
        html_table(
            pd.read_csv(sweep.path), f"{sweep.experiment}: {sweep.path.relative_to(outputs).as_posix()}"
        )
        for sweep in sweeps
    ]
    return f'<section id="sweeps"><h2>Sweeps</h2>{"".join(tables)}</section>'


def failures_section(incomplete: list[RunResult]) -> str:
    """Runs that failed or did not finish, with their error."""
    table = pd.DataFrame(
        {
            "run": [f"{run.name}/{run.results_dir.name}" for run in incomplete],
            "experiment": [run.experiment for run in incomplete],
            "stage": [run.stage for run in incomplete],
            "status": [run.status for run in incomplete],
            "error": [run.error or "" for run in incomplete],
        }
    )
    return f'<section id="failed"><h2>Failed or unfinished runs</h2>{html_table(table)}</section>'


@dataclass(frozen=True)
class ReportInputs:
    """What a report shows: the runs found under `outputs`, the sweep tables and the claim verdicts."""

    outputs: Path
    complete: list[RunResult]
    incomplete: list[RunResult]
    sweeps: list[SweepTable]
    verdicts: list[Verdict]


def collect(outputs: str | os.PathLike) -> ReportInputs:
    """Scan `outputs` and judge the claims on every finished run's tables."""
    base = Path(outputs)
    runs = find_runs(base)
    complete = [run for run in runs if run.complete]
    incomplete = [run for run in runs if not run.complete]
    verdicts = judge_claims(combined_tables(complete))
    return ReportInputs(base, complete, incomplete, find_sweep_tables(base), verdicts)


def render_report(inputs: ReportInputs) -> str:
    """The report as one HTML document."""
    complete, incomplete = inputs.complete, inputs.incomplete
    by_id = {claim.id: verdict for claim, verdict in zip(CLAIMS, inputs.verdicts, strict=True)}
    experiments = _experiment_order(complete)
    runs_of = {exp: [run for run in complete if run.experiment == exp] for exp in experiments}
    links = {name: anchor(exp) for exp in experiments for run in runs_of[exp] for name in run.tables}
    sections = [
        claims_section(inputs.verdicts, links),
        overview_section(complete, incomplete, inputs.sweeps),
        *(experiment_section(exp, runs_of[exp], by_id) for exp in experiments),
        sweeps_section(inputs.sweeps, inputs.outputs),
        failures_section(incomplete) if incomplete else "",
    ]
    nav = [("claims", "Claims"), ("overview", "Overview")]
    nav += [(anchor(exp), exp) for exp in experiments] + [("sweeps", "Sweeps")]
    nav += [("failed", "Failed runs")] if incomplete else []
    generated = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return page(TITLE, f"{inputs.outputs.resolve()} · generated {generated}", nav, sections)


def verdict_tables(verdicts: list[Verdict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per claim: claim, status, rule, basis, summary; every claim's evidence rows with a claim
    column: the configurations, their effects, intervals, units and data/model)."""
    table = pd.DataFrame(
        [
            {"claim": v.claim, "status": v.status, "rule": v.rule, "basis": v.basis, "summary": v.summary}
            for v in verdicts
        ]
    )
    parts = [v.evidence.assign(claim=v.claim) for v in verdicts if not v.evidence.empty]
    evidence = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["claim"])
    return table, evidence[["claim", *evidence.columns.drop("claim")]]


def default_out(outputs: str | os.PathLike) -> Path:
    """Where the report goes by default: <outputs>/report/index.html."""
    return Path(outputs) / "report" / "index.html"


def build_report(outputs: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Write the report of `outputs` to `out` (default: `default_out`) atomically; returns its path."""
    return atomic_write_text(out or default_out(outputs), render_report(collect(outputs)))


def main(argv: list[str] | None = None) -> int:
    """Command line: build the report and print the claim verdicts and where the report is."""
    parser = argparse.ArgumentParser(description="Build the self-contained HTML report of outputs/.")
    parser.add_argument("--outputs", default="outputs", help="outputs directory (default: outputs)")
    parser.add_argument("--out", default=None, help="HTML file (default: <outputs>/report/index.html)")
    args = parser.parse_args(argv)
    inputs = collect(args.outputs)
    path = atomic_write_text(args.out or default_out(args.outputs), render_report(inputs))
    table, evidence = verdict_tables(inputs.verdicts)
    atomic_write_text(path.parent / "verdicts.csv", table.to_csv(index=False))
    atomic_write_text(path.parent / "claim_evidence.csv", evidence.to_csv(index=False))
    for claim, verdict in zip(CLAIMS, inputs.verdicts, strict=True):
        print(f"{claim.id} {verdict.status:>12}: {verdict.summary}")
    print(
        f"report: {path}; verdicts: {path.parent / 'verdicts.csv'}, evidence: {path.parent / 'claim_evidence.csv'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
