import base64
import json
import re
import shutil

import pandas as pd
import pytest
from reporting.report_tree import EXPECTED, write_outputs_tree

from semrsm.reporting.report import build_report, collect, main, render_report
from semrsm.reporting.report_html import html_table
from semrsm.reporting.report_scan import combined_tables, find_runs


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    return write_outputs_tree(tmp_path_factory.mktemp("tree") / "outputs")


@pytest.fixture(scope="module")
def report(outputs):
    return build_report(outputs).read_text(encoding="utf-8")


def section(html: str, anchor: str) -> str:
    start = html.index(f'<section id="{anchor}">')
    return html[start : html.index("</section>", start)]


def test_scan_finds_finished_and_failed_runs(outputs):
    runs = find_runs(outputs)
    complete = sorted(run.name for run in runs if run.complete)
    assert complete == [
        "multirun/retrieval/backbone=resnet18",
        "multirun/retrieval/backbone=vit_tiny",
        "runs/class_probability/default",
        "runs/matchers/default",
        "runs/translated_crops/dataset=synthetic_crops",
    ]
    (failed,) = [run for run in runs if not run.complete]
    assert failed.experiment == "layers_cka" and failed.status == "failed" and "layer3" in failed.error
    tables = combined_tables(runs)
    assert set(tables) == {
        "crops_separation",
        "crops_bootstrap",
        "retrieval",
        "retrieval_queries",
        "class_probability",
        "class_probability_bootstrap",
        "matchers",
        "matchers_pairs",
    }
    assert tables["retrieval"].columns[0] == "run" and len(tables["retrieval"]) == 8
    assert set(tables["retrieval"]["run"]) == {complete[0], complete[1]}


def test_report_is_one_file_with_every_section(outputs, report):
    assert (outputs / "report" / "index.html").is_file()
    for anchor in ("claims", "overview", "exp-translated_crops", "exp-retrieval", "exp-matchers", "sweeps"):
        assert f'<section id="{anchor}">' in report
    assert "Content-Security-Policy" in report and "default-src 'none'" in report
    assert not re.search(r"""(src|href)=["'](?!data:|#)""", report), "every src/href must be inline or local"


def test_claim_verdicts_match_the_tree(report):
    claims = section(report, "claims")
    for claim, status in EXPECTED.items():
        match = re.search(rf'<div class="claim ([\w-]+)" id="claim-{claim}">', claims)
        assert match and match.group(1) == status.replace(" ", "-"), claim
    assert "1 of 2 configuration(s) support, 1 contradict" in claims
    assert "synthetic/resnet18/layer4/linear/hungarian: pearson_invariant -0.120" in claims
    assert "pearson_difference +0.080" in claims
    assert claims.count('<tr class="fail">') == 1  # C4's contradicting row, highlighted in its evidence
    assert "3 confirmed, 1 refuted, 0 inconclusive, 2 not run" in claims
    assert "Rests on: synthetic stand-in data + real pretrained (resnet18)" in claims


def test_experiment_tables_figures_and_metadata(report):
    crops = section(report, "exp-translated_crops")
    assert "<h3>crops_separation.csv</h3>" in crops and crops.count("<td>spatio_semantic</td>") == 2
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([^"]+)"', crops)
    assert sorted(alt.split(" · ")[1] for alt, _ in images) == ["distributions_layer1.png", "rsm_layer1.png"]
    assert all(base64.b64decode(data).startswith(b"\x89PNG\r\n\x1a\n") for _, data in images)
    assert "git commit" in crops and "numpy" in crops and "stage wall time (s)" in crops
    assert "dataset:\n  name: synthetic" in crops  # the run's configuration as YAML
    retrieval = section(report, "exp-retrieval")
    assert retrieval.count("<figure>") == 2 and "Runs (2)" in retrieval
    assert '<td class="num" data-v="0.53">0.53</td>' in retrieval  # resnet18 cosine invariant F1@1


def test_overview_sweeps_and_failures(report):
    overview = section(report, "overview")
    assert "5 finished run(s) in 4 experiment(s); 1 failed or unfinished run(s); 1 aggregated" in overview
    assert (
        '<td>retrieval</td><td class="num" data-v="2">2</td><td class="num" data-v="3.0">3</td>' in overview
    )
    sweeps = section(report, "sweeps")
    assert "multirun/retrieval/aggregate.csv" in sweeps and "<td>backbone=vit_tiny</td>" in sweeps
    failed = section(report, "failed")
    assert (
        "runs/layers_cka/default/results.failed" in failed and "RuntimeError: feature store missing" in failed
    )


def test_unfinished_and_malformed_runs(outputs, tmp_path):
    copy = shutil.copytree(outputs, tmp_path / "outputs")
    status = copy / "runs" / "matchers" / "default" / "results" / "status.json"
    status.write_text(json.dumps({"status": "running"}))
    inputs = collect(copy)
    assert [run.name for run in inputs.incomplete if run.status == "running"] == ["runs/matchers/default"]
    assert {v.claim: v.status for v in inputs.verdicts}["C5"] == "not run"

    tables = copy / "runs" / "class_probability" / "default" / "results" / "tables"
    table = tables / "class_probability_bootstrap.csv"
    pd.read_csv(table).drop(columns="spearman_invariant").to_csv(table, index=False)
    with pytest.raises(ValueError, match="class_probability_bootstrap.*spearman_invariant"):
        collect(copy)


def test_empty_and_missing_outputs(tmp_path):
    html = render_report(collect(tmp_path))
    assert "0 finished run(s)" in html and "Nothing to report yet" in html and "6 not run" in html
    with pytest.raises(FileNotFoundError, match="missing"):
        build_report(tmp_path / "missing")


def test_html_table_escapes_formats_and_truncates():
    table = pd.DataFrame({"name": ["<script>x</script>", "b", "c"], "value": [0.123456, float("nan"), 7]})
    html = html_table(table, "caption & more", max_rows=2)
    assert "<script>x" not in html and "&lt;script&gt;x&lt;/script&gt;" in html
    assert "caption &amp; more (first 2 of 3 rows; see the CSV for all)" in html
    assert '<td class="num" data-v="0.123456">0.1235</td>' in html and '<td class="num"></td>' in html
    assert "<td>c</td>" not in html


def test_cli_writes_the_report_and_prints_verdicts(outputs, tmp_path, capsys):
    out = tmp_path / "site" / "report.html"
    assert main(["--outputs", str(outputs), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert out.is_file() and f"report: {out}" in printed
    assert (
        "C4      refuted: Rule: with invariance, Pearson and Spearman" in printed
        and "C6      not run" in printed
    )
    verdicts = pd.read_csv(out.parent / "verdicts.csv")
    assert verdicts["status"].tolist() == [EXPECTED[c] for c in verdicts["claim"]]
    evidence = pd.read_csv(out.parent / "claim_evidence.csv")
    assert set(evidence["claim"]) == {"C1", "C2", "C4", "C5"} and {"data", "model", "outcome"} <= set(
        evidence.columns
    )
