"""The self-contained HTML report of everything under outputs/: claim verdicts, the paper's tables, experiments.

    python -m semrsm.reporting.report --outputs outputs --out outputs/report/index.html

Reads only finished stage results (<run>/results with status "ok" and stage.json); failed or unfinished runs
are counted in the header, named in the banner of the claims and experiments they belong to, and listed with
their error. One HTML file rendered from the Jinja2 templates in ``templates/``; no server, no network: figures
are embedded as downscaled thumbnails that open full size on click (``report_images``).

The page: the verdicts (one row per claim) and the paper-style tables (F1@1, Table 1 correlations, matcher
runtime), each beside its title and data/model banner, all on the first screen at 1920x1080 (what the cells are
and the models' training folded); then each claim's rule and evidence, then per experiment its banner, figures,
tables and run metadata.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import yaml
from markupsafe import Markup

from semrsm.reporting import banners
from semrsm.reporting.claims import CLAIMS, CONTRADICTS, STATUSES, SUPPORTS, Claim, Verdict, judge_claims
from semrsm.reporting.paper_tables import PaperTable, paper_tables
from semrsm.reporting.provenance import PRETRAINED, SYNTHETIC_DATA, TRAINED_HERE
from semrsm.reporting.report_html import Cell, TableView, macro, render, table_view, with_cells
from semrsm.reporting.report_images import EmbeddedImage, embed_image
from semrsm.reporting.report_scan import RunResult, SweepTable, combined_tables, find_runs, find_sweep_tables
from semrsm.storage import atomic_write_text

TITLE = "Semantic RSM reproduction report"
STAGE_ORDER = ("train", "translated_crops", "retrieval", "class_probability", "matchers", "layers_cka")
SCHEME = (
    "Each configuration's effect has a 95 % bootstrap interval over its independent units (queries, images, "
    "source images, pairs; training seeds resampled too where models were trained). Confirmed = every "
    "configuration's interval supports the claim; refuted = at least one contradicts it; inconclusive = neither; "
    "not run = no finished result bears on it."
)
# the stage behind each claim and, for the retrieval claims, the datasets that belong to it
CLAIM_STAGES = {"C1": "translated_crops", "C2": "retrieval", "C3": "retrieval", "C4": "class_probability",
                "C5": "matchers", "C6": "layers_cka"}  # fmt: skip
CLAIM_DATASETS = {"C2": ("egoobjects", "synthetic_scenes"), "C3": ("cityscapes", "synthetic_cityscapes")}
# the headline effect of each claim's evidence: column and label
EFFECTS = {"C1": ("auroc_gain", "AUROC gain"), "C2": ("f1_gain", "F1@1 gain"), "C3": ("f1_gain", "F1@1 gain"),
           "C4": ("pearson_difference", "Δ Pearson"), "C5": ("quality", "batch_optimal quality"),
           "C6": ("slope", "CKA slope per log2 S")}  # fmt: skip
UNIT_TABLES = ("_bootstrap", "_queries", "_pairs")  # per-unit tables: counted, not rendered
MODELS_LINE = "Models: "  # how a banner's line naming the models begins (banners.banner)
SEED = re.compile(r"(^|[.,/_-])seed=\d+")


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


def short_name(run: RunResult) -> str:
    """The run's directory without the ``runs/<experiment>/`` (or ``multirun/``) prefix its section names."""
    parts = Path(run.name).parts
    return "/".join(parts[2:]) if len(parts) > 2 and parts[1] == run.experiment else run.name


def _dataset(run: RunResult) -> str:
    return str((run.config.get("dataset") or {}).get("name") or "")


def failed_runs_of(claim: Claim, incomplete: Sequence[RunResult]) -> list[RunResult]:
    """The failed or unfinished runs of the claim's stage (retrieval: of its datasets, or of unknown ones)."""
    stage, datasets = CLAIM_STAGES.get(claim.id), CLAIM_DATASETS.get(claim.id)
    found = []
    for run in incomplete:
        if run.stage != stage and not (not run.stage and run.experiment == stage):
            continue
        if datasets and _dataset(run) and not _dataset(run).startswith(tuple(datasets)):
            if any(_dataset(run).startswith(other) for ids in CLAIM_DATASETS.values() for other in ids):
                continue
        found.append(run)
    return found


# verdicts and claims -----------------------------------------------------------------------------------------


def _effect_range(claim: str, verdict: Verdict) -> str:
    column, label = EFFECTS.get(claim, ("", ""))
    evidence = judged_rows(verdict.evidence)
    if evidence.empty or column not in evidence:
        return ""
    values = pd.to_numeric(evidence[column], errors="coerce").dropna()
    if values.empty:
        return ""
    if len(values) == 1:
        return f"{label} {values.iloc[0]:+.3f}"
    return f"{label} {values.min():+.3f} to {values.max():+.3f}"


def judged_rows(evidence: pd.DataFrame) -> pd.DataFrame:
    """The evidence rows a verdict judges (C4 also shows same- and different-source pairs, not judged)."""
    return (
        evidence[evidence["pairs"].isin(["all"]) | evidence["pairs"].isna()]
        if "pairs" in evidence
        else evidence
    )


def _tally(verdict: Verdict) -> str:
    evidence = judged_rows(verdict.evidence)
    if evidence.empty or "outcome" not in evidence:
        return verdict.summary if verdict.status == "not run" else ""
    parts = evidence.groupby("part", sort=False) if "part" in evidence else [("", evidence)]
    texts = []
    for part, rows in parts:
        counts = rows["outcome"].value_counts()
        total = int(counts.sum())
        support, contradict = int(counts.get(SUPPORTS, 0)), int(counts.get(CONTRADICTS, 0))
        label = f"{part}: " if part else ""
        texts.append(f"{label}{support}/{total} configurations support, {contradict} contradict")
    return "; ".join(texts)


def compact_basis(verdict: Verdict) -> str:
    """``synthetic: resnet18_synthetic (trained here) on synthetic_scenes; real: ...`` from the evidence."""
    evidence = judged_rows(verdict.evidence)
    if evidence.empty or not {"data", "model"} <= set(evidence):
        return verdict.basis or "no finished results"
    parts = []
    for (data, model), rows in evidence.groupby(["data", "model"], sort=True):
        kind = "synthetic" if data == SYNTHETIC_DATA else "real"
        who = {TRAINED_HERE: "trained here", PRETRAINED: "pretrained"}.get(model, "no model")
        backbones = ", ".join(
            sorted({str(b) for b in rows.get("backbone", pd.Series()).dropna() if str(b) != "None"})
        )
        datasets = ", ".join(
            sorted({str(d) for d in rows.get("dataset", pd.Series()).dropna() if str(d) != "None"})
        )
        text = f"{kind} data: {backbones or 'generated maps'} ({who})"
        parts.append(text + (f" on {datasets}" if datasets else ""))
    return "; ".join(parts)


def verdicts_view(verdicts: Sequence[Verdict], incomplete: Sequence[RunResult]) -> TableView:
    """The first table: one row per claim with its verdict, statement, outcome counts, effect range, basis."""
    rows = []
    for claim, verdict in zip(CLAIMS, verdicts, strict=True):
        failed = failed_runs_of(claim, incomplete)
        basis = compact_basis(verdict)
        if failed:
            basis += f"; {len(failed)} run(s) failed or unfinished"
        result = " · ".join(part for part in (_tally(verdict), _effect_range(claim.id, verdict)) if part)
        rows.append(
            {
                "claim": claim.id,
                "verdict": verdict.status,
                "the paper's claim": f"{claim.statement} ({claim.experiment})",
                "result": result,
                "data and models": basis,
            }
        )
    view = replace(table_view(pd.DataFrame(rows), filterable=False, css="verdicts"), label="Verdicts")
    badges = [Cell(Markup(macro("badge", row["verdict"]))) for row in rows]
    links = [Cell(Markup(f'<a href="#claim-{row["claim"]}">{row["claim"]}</a>')) for row in rows]
    view = with_cells(with_cells(view, "verdict", badges), "claim", links)
    statement = [Cell(row["the paper's claim"], "statement") for row in rows]
    basis = [Cell(row["data and models"], "basis") for row in rows]
    return with_cells(with_cells(view, "the paper's claim", statement), "data and models", basis)


@dataclass(frozen=True)
class ClaimView:
    id: str
    status: str
    experiment: str
    table: str
    statement: str
    summary: str
    link: str | None
    banner: banners.Banner
    evidence: TableView | None


def claim_views(
    verdicts: Sequence[Verdict],
    links: Mapping[str, str],
    incomplete: Sequence[RunResult],
    trained: dict[str, banners.Training],
) -> list[ClaimView]:
    views = []
    for claim, verdict in zip(CLAIMS, verdicts, strict=True):
        pairs = banners.pairs_of([verdict.evidence])
        evidence = verdict.evidence
        views.append(
            ClaimView(
                id=claim.id,
                status=verdict.status,
                experiment=claim.experiment,
                table=claim.table,
                statement=claim.statement,
                summary=verdict.summary,
                link=links.get(claim.table),
                banner=banners.banner(pairs, trained, failed_runs_of(claim, incomplete)),
                evidence=None if evidence.empty else table_view(evidence),
            )
        )
    return views


# experiments ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FigureView:
    """A figure of the page: its dialog id, caption, a line on its size and source, and its two images."""

    id: str
    caption: str
    detail: str
    image: EmbeddedImage


def seed_groups(runs: Sequence[RunResult]) -> list[list[RunResult]]:
    """Runs that differ only by their seed (``seed=<n>`` in the run name), each group in name order."""
    groups: dict[str, list[RunResult]] = {}
    for run in sorted(runs, key=lambda r: r.name):
        groups.setdefault(SEED.sub(r"\1seed=*", run.name), []).append(run)
    return list(groups.values())


def figure_views(runs: Sequence[RunResult], outputs: Path) -> tuple[list[FigureView], str]:
    """The figures of the first run of each seed group (thumbnail + full size) and a note on what is left out."""
    views, left_out = [], 0
    for group in seed_groups(runs):
        shown = group[0]
        left_out += sum(len(run.figures) for run in group[1:])
        for name, path in shown.figures.items():
            image = embed_image(path)
            where = path.relative_to(outputs).as_posix() if path.is_relative_to(outputs) else str(path)
            fmt = "lossless PNG" if image.full_format == "PNG" else "WebP of the PNG"
            views.append(
                FigureView(
                    id=f"fig-{len(views)}-{anchor(shown.experiment)}",
                    caption=f"{short_name(shown)} · {name}",
                    detail=f"{image.full_width}x{image.full_height} px, full size as {fmt}: {where}",
                    image=image,
                )
            )
    note = ""
    if left_out:
        note = (
            f"Click a figure to enlarge it. Shown: the figures of the first seed of each configuration; the "
            f"{left_out} figure(s) of the other seeds look alike and are in their runs' results/figures/."
        )
    elif views:
        note = "Click a figure to enlarge it."
    return views, note


def summary_view(runs: Sequence[RunResult]) -> TableView | None:
    """stage.json summaries, keys split at their last "/" into scope (layer, kernel) and metric, so runs of
    models with different layer names share the metric columns."""
    rows = []
    for run in runs:
        for key, value in run.summary.items():
            if not isinstance(value, int | float | str | bool) or key == "feature_key":
                continue
            scope, _, metric = key.rpartition("/")
            rows.append({"run": short_name(run), "scope": scope, "metric": metric, "value": value})
    if not rows:
        return None
    long = pd.DataFrame(rows)
    wide = long.pivot_table(
        index=["run", "scope"], columns="metric", values="value", aggfunc="first", sort=False
    )
    wide = wide.reset_index()
    wide.columns.name = None
    if wide.drop(columns=["run", "scope"]).isna().to_numpy().mean() > 0.25:  # too sparse: keep it long
        return table_view(long, "Summary metrics (stage.json), one row per value")
    return table_view(wide, "Summary metrics (stage.json)")


def _run_table(runs: Sequence[RunResult]) -> TableView:
    return table_view(
        pd.DataFrame(
            {
                "run": [short_name(run) for run in runs],
                "stage": [run.stage for run in runs],
                "wall time (s)": [_wall_time(run) for run in runs],
                "git commit": [_commit(run) for run in runs],
                "device": [run.metadata.get("device") for run in runs],
                "finished": [run.metadata.get("finished") for run in runs],
            }
        ),
        f"Runs ({len(runs)})",
    )


@dataclass(frozen=True)
class MetadataView:
    name: str
    facts: TableView
    config: str
    packages: TableView | None


def metadata_view(run: RunResult) -> MetadataView:
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
    return MetadataView(
        run.name,
        table_view(facts_table),
        config,
        table_view(packages, "Package versions") if not packages.empty else None,
    )


@dataclass(frozen=True)
class ExperimentView:
    name: str
    anchor: str
    stages: str
    banner: banners.Banner
    claims: list[tuple[str, str]]
    figures: list[FigureView]
    figure_note: str
    tables: list[TableView]
    unit_tables: str
    runs: TableView
    summary: TableView | None
    metadata: list[MetadataView]


def experiment_view(
    experiment: str,
    runs: list[RunResult],
    failed: Sequence[RunResult],
    verdicts: Mapping[str, Verdict],
    trained: dict[str, banners.Training],
    outputs: Path,
) -> ExperimentView:
    """One experiment: banner, claims, figures, tables (per-unit tables counted only), runs and metadata."""
    tables = combined_tables(runs)
    pairs = banners.pairs_of(tables.values())
    if not pairs:  # e.g. train runs: their tables name no dataset or backbone, their configs do
        pairs = set().union(*(banners.run_pairs(run) for run in runs))
    shown, units = [], []
    for name, table in sorted(tables.items()):
        if name.endswith(UNIT_TABLES):
            units.append(f"{name}.csv ({len(table)} rows)")
            continue
        table = table.assign(run=[n.split("/", 2)[-1] if n.count("/") >= 2 else n for n in table["run"]])
        shown.append(table_view(table, f"{name}.csv"))
    figures, note = figure_views(runs, outputs)
    return ExperimentView(
        name=experiment,
        anchor=anchor(experiment),
        stages=", ".join(sorted({run.stage for run in runs})),
        banner=banners.banner(pairs, trained, failed),
        claims=[(claim.id, verdicts[claim.id].status) for claim in CLAIMS if claim.table in tables],
        figures=figures,
        figure_note=note,
        tables=shown,
        unit_tables=", ".join(units),
        runs=_run_table(runs),
        summary=summary_view(runs),
        metadata=[metadata_view(run) for run in runs],
    )


def overview_view(complete: Sequence[RunResult]) -> TableView | None:
    """Runs and wall time per stage."""
    if not complete:
        return None
    times = pd.DataFrame(
        {"stage": [run.stage for run in complete], "wall": [_wall_time(run) for run in complete]}
    )
    per_stage = times.groupby("stage", sort=False)["wall"].agg(["count", "sum", "mean", "max"]).reset_index()
    per_stage.columns = ["stage", "runs", "total wall time (s)", "mean wall time (s)", "max wall time (s)"]
    return table_view(per_stage, "Wall time per stage")


def failures_view(incomplete: Sequence[RunResult]) -> TableView | None:
    """Runs that failed or did not finish, with their error."""
    if not incomplete:
        return None
    table = pd.DataFrame(
        {
            "run": [f"{run.name}/{run.results_dir.name}" for run in incomplete],
            "experiment": [run.experiment for run in incomplete],
            "stage": [run.stage for run in incomplete],
            "status": [run.status for run in incomplete],
            "error": [run.error or "" for run in incomplete],
        }
    )
    return table_view(table, f"{len(incomplete)} failed or unfinished run(s)", filterable=True)


@dataclass(frozen=True)
class PaperTableView:
    """A paper-style table with its data/model banner; ``models``: the banner's models line, shown folded so the
    first screen holds the verdicts and every paper table."""

    anchor: str
    banner: banners.Banner
    table: TableView
    models: str = ""


def paper_table_views(
    found: Iterable[PaperTable], trained: dict[str, banners.Training], incomplete: Sequence[RunResult]
) -> list[PaperTableView]:
    stages = {"table-f1": "retrieval", "table-correlation": "class_probability", "table-runtime": "matchers"}
    views = []
    for paper in found:
        failed = [run for run in incomplete if run.stage == stages.get(paper.key)]
        view = table_view(paper.table, paper.title, paper.note, filterable=True)
        banner = banners.banner(banners.pairs_of([paper.basis]), trained, failed)
        models = [line for line in banner.lines if line.startswith(MODELS_LINE)]
        shown = replace(banner, lines=[line for line in banner.lines if line not in models])
        views.append(PaperTableView(paper.key, shown, view, " ".join(models)))
    return views


# the report ----------------------------------------------------------------------------------------------------


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
    trained = banners.trainings(complete)
    experiments = _experiment_order(complete)
    runs_of = {exp: [run for run in complete if run.experiment == exp] for exp in experiments}
    links = {name: anchor(exp) for exp in experiments for run in runs_of[exp] for name in run.tables}
    failed_of = {exp: [run for run in incomplete if run.experiment == exp] for exp in experiments}
    nav = [
        ("verdicts", "Verdicts"),
        ("paper-tables", "Paper tables"),
        ("claims", "Claims"),
        ("overview", "Overview"),
    ]
    nav += [(anchor(exp), exp) for exp in experiments] + [("sweeps", "Sweeps")]
    nav += [("failed", f"Failed runs ({len(incomplete)})")] if incomplete else []
    failed_count = sum(run.status == "failed" for run in incomplete)
    generated = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return render(
        "report.html.j2",
        title=TITLE,
        subtitle=f"{inputs.outputs.resolve()} · generated {generated}",
        counts={
            "complete": len(complete),
            "experiments": len(experiments),
            "failed": failed_count,
            "unfinished": len(incomplete) - failed_count,
            "sweeps": len(inputs.sweeps),
        },
        tally=", ".join(
            f"{sum(v.status == status for v in inputs.verdicts)} {status}" for status in STATUSES
        ),
        nav=nav,
        scheme=SCHEME,
        verdicts=verdicts_view(inputs.verdicts, incomplete),
        paper_tables=paper_table_views(paper_tables(combined_tables(complete), by_id), trained, incomplete),
        claims=claim_views(inputs.verdicts, links, incomplete, trained),
        overview=overview_view(complete),
        experiments=[
            experiment_view(exp, runs_of[exp], failed_of[exp], by_id, trained, inputs.outputs)
            for exp in experiments
        ],
        sweeps=[
            table_view(
                pd.read_csv(sweep.path),
                f"{sweep.experiment}: {sweep.path.relative_to(inputs.outputs).as_posix()}",
            )
            for sweep in inputs.sweeps
        ],
        failed=failures_view(incomplete),
    )


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
    size = path.stat().st_size / 2**20
    print(
        f"report: {path} ({size:.1f} MB); verdicts: {path.parent / 'verdicts.csv'}, "
        f"evidence: {path.parent / 'claim_evidence.csv'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
