"""``make dashboard``: the W&B workspace and report of the pipeline's runs, as code (``wandb-workspaces``).

    python -m semrsm.reporting.dashboard --entity <you> [--project semrsm] [--outputs outputs] [--publish]

One section (workspace) or block (report) per claim, each panel on the layer-independent keys of
``semrsm.reporting.wandb_conventions``: C1 AUROC of same- vs different-image crops, semantic vs spatio-semantic;
C2/C3 F1@1 semantic vs spatio-semantic per kernel, grouped by backbone (and the gain per kernel); C4
Pearson/Spearman of similarity vs JSD, both RSMs; C5 runtime vs quality, one scatter per matcher (each point a
run's features at their largest spatial size); C6 CKA against spatial size (a line per run) and at the first
and last layer; training curves; the verdict table of the ``verdicts`` runs. Bars group the runs by
``choices.setup`` (``<backbone> on <dataset>``, a config label every run carries), averaging over seeds with
their min-max range.

Which kernels and matchers get panels: those the local runs under ``--outputs`` logged (their metrics.json,
the same summary as in W&B), else every kernel and matcher. The spec is always written to
``<outputs>/dashboard/dashboard.json`` (``workspace`` and ``report``, as W&B stores them, plus ``panels``: each
panel's title and the keys it plots); ``--publish`` also saves both to W&B, which needs ``wandb login`` (or
WANDB_API_KEY) and the network, and fails with a message saying so otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from semrsm.reporting.wandb_conventions import KERNELS, VARIANTS
from semrsm.storage import atomic_write_json

MATCHERS = ("hungarian", "lapjv", "greedy", "topk_greedy", "batch_optimal", "auction", "identity")
GROUP_BY = "choices.setup"  # "<backbone> on <dataset>": bars per model and data, seeds aggregated
HISTORY_KEYS = {  # keys logged as history (line charts), not summary
    "cka_by_size/spatial_size",
    "cka_by_size/cka",
    "epoch",
    "val_acc",
    "val_loss",
    "train_loss",
    "trainer/global_step",
}


@dataclass(frozen=True)
class PanelSpec:
    """One panel: kind (bar, scatter, line, table), title, the keys it plots (x first for scatter and line),
    the job type whose runs log them, and axis options."""

    kind: str
    title: str
    keys: tuple[str, ...]
    job_type: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SectionSpec:
    claim: str
    title: str
    text: str
    job_type: str
    panels: tuple[PanelSpec, ...]


def _bars(title: str, keys: Iterable[str], job_type: str, axis: str) -> PanelSpec:
    return PanelSpec("bar", title, tuple(keys), job_type, {"title_y": axis})


def sections(kernels: Sequence[str] = KERNELS, matchers: Sequence[str] = MATCHERS) -> list[SectionSpec]:
    """The dashboard's sections for ``kernels`` and ``matchers`` (those with results)."""
    retrieval = [
        _bars(
            f"F1@1, {kernel} kernel, semantic vs spatio-semantic (deepest evaluated layer)",
            (f"f1_at_1/{variant}/{kernel}/last" for variant in VARIANTS),
            "retrieval",
            "F1@1 (mean over queries)",
        )
        for kernel in kernels
    ]
    retrieval.append(
        _bars(
            "F1@1 gain of the semantic RSM per kernel (deepest evaluated layer)",
            (f"f1_gain/{kernel}/last" for kernel in kernels),
            "retrieval",
            "F1@1 semantic minus spatio-semantic",
        )
    )
    correlation = [
        _bars(
            f"{method.title()} correlation of similarity with JSD, semantic vs spatio-semantic (deepest layer)",
            (f"{method}/{variant}/last" for variant in VARIANTS),
            "class_probability",
            f"{method.title()} r (more negative: similarity follows the predictions)",
        )
        for method in ("pearson", "spearman")
    ]
    tradeoff = [
        PanelSpec(
            "scatter",
            f"{matcher}: CPU ms per pair vs quality at the largest spatial size",
            (f"features/ms_{matcher}", f"features/quality_{matcher}"),
            "matchers",
            {"log_x": True},  # x: median CPU ms per pair; y: quality ratio to the exact optimum
        )
        for matcher in matchers
    ]
    return [
        SectionSpec(
            "C1",
            "C1 translated crops: same-image vs different-image AUROC",
            "AUROC of separating crops of the same image from crops of different images by RSM value.",
            "translated_crops",
            (
                _bars(
                    "AUROC, semantic vs spatio-semantic (deepest evaluated layer)",
                    (f"auroc/{variant}/last" for variant in VARIANTS),
                    "translated_crops",
                    "AUROC",
                ),
                _bars(
                    "AUROC gain (deepest layer, mean over layers)",
                    ("auroc_gain/last", "auroc_gain/mean"),
                    "translated_crops",
                    "AUROC semantic minus spatio-semantic",
                ),
            ),
        ),
        SectionSpec(
            "C2/C3",
            "C2/C3 retrieval: F1@1 semantic vs spatio-semantic by backbone x kernel",
            "Leave-one-out retrieval; F1 of the object categories of query and retrieved image.",
            "retrieval",
            tuple(retrieval),
        ),
        SectionSpec(
            "C4",
            "C4 class probabilities: Pearson / Spearman of similarity vs JSD",
            "Correlation between representational similarity and the Jensen-Shannon divergence of the predicted "
            "class probabilities over image pairs.",
            "class_probability",
            tuple(correlation),
        ),
        SectionSpec(
            "C5",
            "C5 matchers: runtime vs quality",
            "Each point is one run's features at their largest spatial size; quality is the matched score "
            "relative to the exact optimum.",
            "matchers",
            tuple(tradeoff),
        ),
        SectionSpec(
            "C6",
            "C6 CKA of semantic vs spatio-semantic RSMs by spatial size",
            "CKA per layer against its spatial size (positions per sample); one line per run.",
            "layers_cka",
            (
                PanelSpec(
                    "line",
                    "CKA vs spatial size",
                    ("cka_by_size/spatial_size", "cka_by_size/cka"),
                    "layers_cka",
                    {"log_x": True, "title_x": "spatial size S (log)", "title_y": "linear CKA"},
                ),
                _bars(
                    "CKA at the first and last layer", ("cka/first", "cka/last"), "layers_cka", "linear CKA"
                ),
            ),
        ),
        SectionSpec(
            "training",
            "Training of the synthetic backbones",
            "Validation accuracy and loss per epoch of the models the train stage fits.",
            "train",
            (
                PanelSpec(
                    "line", "validation accuracy", ("epoch", "val_acc"), "train", {"title_y": "accuracy"}
                ),
                PanelSpec(
                    "line", "validation loss", ("epoch", "val_loss"), "train", {"title_y": "cross-entropy"}
                ),
            ),
        ),
        SectionSpec(
            "verdicts",
            "Verdicts on the paper's claims",
            "The claim table of each `make reproduce` invocation (its `verdicts` run).",
            "verdicts",
            (PanelSpec("table", "claim verdicts", ("verdicts",), "verdicts"),),
        ),
    ]


def _panel(spec: PanelSpec) -> Any:
    import wandb_workspaces.reports.v2 as wr

    options = dict(spec.options)
    if spec.kind == "bar":
        return wr.BarPlot(
            title=spec.title,
            metrics=list(spec.keys),
            orientation="v",
            groupby=wr.Config(GROUP_BY),
            groupby_aggfunc="mean",
            groupby_rangefunc="minmax",
            **options,
        )
    if spec.kind == "scatter":
        x, y = spec.keys
        return wr.ScatterPlot(title=spec.title, x=wr.SummaryMetric(x), y=wr.SummaryMetric(y), **options)
    if spec.kind == "line":
        x, *ys = spec.keys
        return wr.LinePlot(title=spec.title, x=x, y=list(ys), **options)
    if spec.kind == "table":
        return wr.WeavePanelSummaryTable(table_name=spec.keys[0])
    raise ValueError(f"unknown panel kind {spec.kind!r}")


def _runset_filter(job_type: str) -> str:
    return f"JobType = '{job_type}'"


def build_workspace(entity: str, project: str, specs: Sequence[SectionSpec]) -> Any:
    """The ``wandb_workspaces`` Workspace: one open section per claim."""
    import wandb_workspaces.workspaces as ws
    from wandb_workspaces import expr

    return ws.Workspace(
        entity=entity,
        project=project,
        name="semrsm: claims of Wald et al. (NeurIPS 2024)",
        sections=[
            ws.Section(name=s.title, panels=[_panel(p) for p in s.panels], is_open=True) for s in specs
        ],
        settings=ws.WorkspaceSettings(x_axis="Step"),
        runset_settings=ws.RunsetSettings(
            groupby=[expr.Metric("Group")],
            pinned_columns=["run:state", "tags:__ALL__", "config:choices.setup.value"],
        ),
    )


def build_report(entity: str, project: str, specs: Sequence[SectionSpec], online: bool = False) -> Any:
    """The ``wandb_workspaces`` Report: per claim a heading, a sentence and a panel grid over the runs of the
    claim's stage (a runset filtered by job type). Serializing a runset that names its entity and project
    looks the project up on the server, so offline (``online=False``) the runsets name none: they then show
    the report's own project, which is the same one."""
    import wandb_workspaces.reports.v2 as wr

    blocks: list[Any] = [
        wr.P(
            "Semantic (permutation-invariant) vs spatio-semantic RSMs, reproduced by semrsm. Runs of one "
            "`make reproduce` share a W&B group; every panel compares backbones on layer-independent keys."
        )
    ]
    for spec in specs:
        where = {"entity": entity, "project": project} if online else {}
        runset = wr.Runset(name=spec.job_type, filters=_runset_filter(spec.job_type), **where)
        blocks += [
            wr.H2(spec.title),
            wr.P(spec.text),
            wr.PanelGrid(runsets=[runset], panels=[_panel(p) for p in spec.panels]),
        ]
    return wr.Report(
        entity=entity,
        project=project,
        title="semrsm: Decoupling Semantic Similarity from Spatial Alignment",
        description="Claims C1-C6 of Wald et al. (NeurIPS 2024), judged on this pipeline's runs.",
        blocks=blocks,
    )


def logged_choices(outputs: str | os.PathLike) -> tuple[list[str], list[str], set[str]]:
    """(kernels, matchers, summary keys) found in the metrics.json of the runs under ``outputs``, each
    in the order of KERNELS / MATCHERS; empty when there are none."""
    keys: set[str] = set()
    for path in sorted(Path(outputs).glob("*/**/results/metrics.json")):
        try:
            keys |= set(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError, TypeError):
            continue  # a run being written or broken: the report lists it; no panel depends on it
    kernels = [k for k in KERNELS if any(key.startswith(f"f1_gain/{k}/") for key in keys)]
    matchers = [m for m in MATCHERS if f"features/quality_{m}" in keys]
    return kernels, matchers, keys


def panel_keys(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return spec["panels"]


def dashboard_spec(
    entity: str, project: str, specs: Sequence[SectionSpec]
) -> tuple[dict[str, Any], Any, Any]:
    """(JSON-ready spec, Workspace, Report): the workspace and report as W&B stores them, plus every panel's
    claim, kind, title, job type and keys."""
    workspace, report = build_workspace(entity, project, specs), build_report(entity, project, specs)
    spec = {
        "entity": entity,
        "project": project,
        "workspace": workspace._to_model().model_dump(by_alias=True, exclude_none=True, mode="json"),
        "report": report._to_model().model_dump(by_alias=True, exclude_none=True, mode="json"),
        "panels": [
            {"claim": s.claim, "kind": p.kind, "title": p.title, "job_type": p.job_type, "keys": list(p.keys)}
            for s in specs
            for p in s.panels
        ],
    }
    return spec, workspace, report


PUBLISH_HELP = (
    "to publish: `wandb login` (or set WANDB_API_KEY), upload the runs with `make sync`, then "
    "`make dashboard ENTITY={entity} PUBLISH=1` (python -m semrsm.reporting.dashboard --entity {entity} --publish)"
)


def publish(workspace: Any, report: Any) -> tuple[str, str]:
    """Save the workspace and the report to W&B; RuntimeError saying what is missing when not logged in."""
    import wandb

    if not wandb.login(prompt=False, verify=False):
        raise RuntimeError("publishing needs W&B credentials: run `wandb login` or set WANDB_API_KEY")
    workspace.save()
    report.save()
    return workspace.url, report.url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the W&B workspace and report of the semrsm runs.")
    parser.add_argument("--entity", default=os.environ.get("WANDB_ENTITY") or "semrsm", help="W&B entity")
    parser.add_argument("--project", default="semrsm", help="W&B project (default: semrsm)")
    parser.add_argument("--outputs", default="outputs", help="runs to take kernels and matchers from")
    parser.add_argument("--out", default=None, help="spec JSON (default: <outputs>/dashboard/dashboard.json)")
    parser.add_argument("--publish", action="store_true", help="also save both to W&B (login and network)")
    args = parser.parse_args(argv)
    kernels, matchers, _ = logged_choices(args.outputs) if Path(args.outputs).is_dir() else ([], [], set())
    specs = sections(kernels or KERNELS, matchers or MATCHERS)
    spec, workspace, report = dashboard_spec(args.entity, args.project, specs)
    out = Path(args.out) if args.out else Path(args.outputs) / "dashboard" / "dashboard.json"
    atomic_write_json(out, spec)
    print(
        f"dashboard spec: {out} ({len(spec['panels'])} panels in {len(specs)} sections; kernels "
        f"{', '.join(kernels or KERNELS)}; matchers {', '.join(matchers or MATCHERS)})"
    )
    if not args.publish:
        print(PUBLISH_HELP.format(entity=args.entity))
        return 0
    try:
        urls = publish(workspace, build_report(args.entity, args.project, specs, online=True))
    except Exception as error:  # no login, no network, no such entity: say so; the spec is written
        print(f"not published: {type(error).__name__}: {error}\n{PUBLISH_HELP.format(entity=args.entity)}")
        return 1
    print(f"workspace: {urls[0]}\nreport: {urls[1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
