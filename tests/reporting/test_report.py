import base64
import io
import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from reporting.report_tree import EXPECTED, write_outputs_tree

from semrsm.reporting.paper_tables import SPARSE_LIMIT, pivot
from semrsm.reporting.report import build_report, collect, main, render_report
from semrsm.reporting.report_html import Estimate, html_table
from semrsm.reporting.report_images import FULL_PNG_LIMIT, THUMB_WIDTH, embed_image
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


def block(html: str, anchor: str) -> str:
    """The <div id=anchor> of a paper table, up to the next one."""
    start = html.index(f'<div id="{anchor}">')
    end = html.find('<div id="table-', start + 1)
    return html[start : end if end > 0 else len(html)]


def rows(html: str) -> list[list[str]]:
    """The cell texts of every body row of the first table in ``html``."""
    body = html[html.index("<tbody>") : html.index("</tbody>")]
    return [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body)]


def test_scan_finds_finished_and_failed_runs(outputs):
    runs = find_runs(outputs)
    complete = sorted(run.name for run in runs if run.complete)
    assert complete == [
        "multirun/retrieval/backbone=resnet18",
        "multirun/retrieval/backbone=vit_tiny",
        "runs/class_probability/default",
        "runs/matchers/default",
        "runs/train/resnet18_synthetic.seed=0",
        "runs/translated_crops/dataset=synthetic_crops",
    ]
    (failed,) = [run for run in runs if not run.complete]
    assert failed.experiment == "layers_cka" and failed.status == "failed" and "layer3" in failed.error
    tables = combined_tables(runs)
    assert set(tables) == {
        "history",
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
    anchors = ("verdicts", "paper-tables", "claims", "overview", "exp-train", "exp-translated_crops")
    for anchor in (*anchors, "exp-retrieval", "exp-matchers", "sweeps", "failed"):
        assert f'<section id="{anchor}">' in report
    # the verdicts, then the three paper tables, before anything else
    order = [
        report.index(f'id="{a}"')
        for a in ("verdicts", "table-f1", "table-correlation", "table-runtime", "claims")
    ]
    assert order == sorted(order)
    assert "Content-Security-Policy" in report and "default-src 'none'" in report
    assert not re.search(r"""(src|href)=["'](?!data:|#)""", report), "every src/href must be inline or local"


def test_claim_verdicts_match_the_tree(report):
    claims = section(report, "claims")
    for claim, status in EXPECTED.items():
        match = re.search(rf'<div class="claim ([\w-]+)" id="claim-{claim}">', claims)
        assert match and match.group(1) == status.replace(" ", "-"), claim
    assert "1 of 2 configuration(s) support, 1 contradict" in claims
    assert "synthetic/resnet18/layer4/linear/hungarian: pearson_semantic -0.120" in claims
    assert "pearson_difference +0.080" in claims
    assert claims.count('<tr class="fail">') == 1  # C4's contradicting row, highlighted in its evidence
    assert "Rests on: synthetic stand-in data + real pretrained (resnet18)" in claims
    header = report[: report.index("</header>")]
    assert "claims: 3 confirmed, 1 refuted, 0 inconclusive, 2 not run" in header
    verdicts = section(report, "verdicts")
    assert [row[1] for row in rows(verdicts)] == [
        f'<span class="badge {s.replace(" ", "-")}">{s}</span>' for s in EXPECTED.values()
    ]
    assert "1/2 configurations support, 1 contradict · Δ Pearson -0.110 to +0.080" in verdicts
    assert rows(verdicts)[1][-1] == ("synthetic data: resnet18, vit_tiny (pretrained) on synthetic_scenes")
    c6 = rows(verdicts)[5]
    assert (
        c6[0] == '<a href="#claim-C6">C6</a>'
        and c6[-1] == "no finished results; 1 run(s) failed or unfinished"
    )


def test_banners_name_the_data_the_models_and_the_failed_runs(report):
    c1 = report[report.index('id="claim-C1"') : report.index('id="claim-C2"')]
    assert (
        "synthetic_crops (overlapping crops of generated images, a synthetic stand-in for TinyImageNet crops)"
        in c1
    )
    assert (
        "resnet18_synthetic (trained here on synthetic data: 3 epoch(s), 600 training images, seed(s) 0, "
        "validation accuracy 0.71)" in c1
    )
    c2 = report[report.index('id="claim-C2"') : report.index('id="claim-C3"')]
    assert '<div class="banner synthetic" data-banner>' in c2
    assert "a synthetic stand-in for EgoObjects" in c2 and "vit_tiny (real pretrained weights)" in c2
    c6 = report[report.index('id="claim-C6"') : report.index("</section>", report.index('id="claim-C6"'))]
    assert (
        "1 run(s) failed or unfinished and are not in these numbers: runs/layers_cka/default (failed)" in c6
    )
    header = report[: report.index("</header>")]
    assert '<a href="#failed"><b>1 failed</b></a>' in header and "0 unfinished" in header
    runtime = block(report, "table-runtime")
    assert "Data: synthetic (generated 10-class images" in runtime
    for anchor in (
        "exp-train",
        "exp-translated_crops",
        "exp-retrieval",
        "exp-class_probability",
        "exp-matchers",
    ):
        assert "data-banner>" in section(report, anchor)[:400], anchor


def test_paper_tables_pivot_with_intervals(report):
    f1 = block(report, "table-f1")
    assert '<th colspan="3" class="group-start">cosine · F1@1</th>' in f1 and "rbf · F1@1" in f1
    resnet, vit = rows(f1)
    assert 'title="sort by  · data"' not in f1  # every row synthetic: the banner says so, no data column
    resnet, vit = [["synthetic", *row] for row in (resnet, vit)]
    assert resnet[:4] == ["synthetic", "synthetic_scenes", "resnet18", "layer4"]
    # cosine: 0.41 -> 0.53, gain 0.12 with a tight interval over 40 queries (green); rbf: 0.38 -> 0.50
    assert resnet[4:6] == ["0.410", "0.530"] and re.fullmatch(r"0\.120 \[0\.1\d\d, 0\.1\d\d\]", resnet[6])
    assert resnet[7:10] == ["0.380", "0.500", resnet[9]] and resnet[10:] == ["40", "1"]
    assert vit[5] == "0.460" and vit[6].startswith("0.050 [")
    assert f1.count('class="num yes"') == 4  # every gain interval lies above 0
    table1 = block(report, "table-correlation")
    assert "cosine · Pearson r" in table1 and "linear · Spearman ρ" in table1
    (row,) = rows(table1)
    assert row[:3] == ["synthetic", "resnet18", "layer4"]
    cells = row[3:]
    assert cells[:3] == ["-0.310", cells[1], cells[2]] and cells[1].startswith("-0.420 [")
    assert cells[2].startswith("-0.110 [")  # cosine: Δ Pearson = -0.42 - (-0.31)
    assert cells[8].startswith("0.080 [") and cells[-2:] == ["20", "1"]  # linear: Δ Pearson +0.08 contradicts
    assert table1.count('class="num no"') == 2  # linear: Δ Pearson and Δ Spearman above 0 (semantic r < 0)
    runtime = block(report, "table-runtime")
    small, large = rows(runtime)
    assert small[:3] == ["features:synthetic/resnet18", "layer1", "64"] and large[2] == "196"
    assert (small[3], large[3]) == ("", "from S=64")  # layer1's maps resized to S=196
    assert small[4:8] == ["0.010", "2.000", "0.300", "0.100"]  # identity, hungarian, batch_optimal, greedy ms
    assert small[10:12] == ["", ""]  # C5 does not judge S=64 <= window 128
    assert large[10].startswith("0.97") and " [" in large[11]
    assert "median CPU ms per pair" in runtime and "speed-up vs exact [95 % CI]" in runtime


def test_sparse_pivots_keep_the_key_as_a_row_key():
    dense = pd.DataFrame(
        {
            "model": ["a", "a", "b", "b"],
            "kernel": ["cosine", "rbf"] * 2,
            "f1": [Estimate(v) for v in (1, 2, 3, 4)],
        }
    )
    table, pivoted = pivot(dense, ["model"], "kernel", [("F1", "f1")])
    assert pivoted and list(table.columns) == [("", "model"), ("cosine · F1", "f1"), ("rbf · F1", "f1")]
    assert [str(v) for v in table[("rbf · F1", "f1")]] == ["2.000", "4.000"]
    sparse = pd.DataFrame(
        {
            "model": ["a", "b", "c", "d"],
            "kernel": ["cosine", "rbf", "linear", "cosine"],
            "f1": [Estimate(1.0)] * 4,
        }
    )
    table, pivoted = pivot(sparse, ["model"], "kernel", [("F1", "f1")])
    empty = 1 - 4 / (4 * 3)
    assert empty > SPARSE_LIMIT and not pivoted
    assert list(table.columns) == [("", "model"), ("", "kernel"), ("F1", "f1")] and len(table) == 4


def test_experiment_tables_figures_and_metadata(outputs, report):
    crops = section(report, "exp-translated_crops")
    assert "<h3>crops_separation.csv</h3>" in crops and crops.count("<td>spatio_semantic</td>") == 2
    assert (
        "crops_bootstrap.csv (2002 rows)" in crops and "<h3>crops_bootstrap.csv" not in crops
    )  # counted only
    thumbs = re.findall(r'<img alt="([^"]+)" src="data:image/webp;base64,([^"]+)" width="(\d+)"', crops)
    full = re.findall(
        r'<img class="full" alt="([^"]+)" src="data:image/png;base64,([^"]+)" width="(\d+)"', crops
    )
    assert sorted(alt.split(" · ")[1] for alt, *_ in thumbs) == ["distributions_layer1", "rsm_layer1"]
    figures = outputs / "runs" / "translated_crops" / "dataset=synthetic_crops" / "results" / "figures"
    for alt, data, width in full:  # small PNGs travel as they are, full size
        original = (figures / f"{alt.split(' · ')[1].removesuffix(' (full size)')}.png").read_bytes()
        assert base64.b64decode(data) == original and int(width) == Image.open(io.BytesIO(original)).width
    for _, data, width in thumbs:
        assert Image.open(io.BytesIO(base64.b64decode(data))).format == "WEBP" and int(width) <= THUMB_WIDTH
    assert crops.count('<dialog class="lightbox"') == 2 and crops.count('data-dialog="fig-') == 2
    assert "git commit" in crops and "numpy" in crops and "stage wall time (s)" in crops
    assert "dataset:\n  name: synthetic" in crops  # the run's configuration as YAML
    retrieval = section(report, "exp-retrieval")
    assert retrieval.count("<figure>") == 2 and "Runs (2)" in retrieval
    assert '<td class="num" data-v="0.53">0.53</td>' in retrieval  # resnet18 cosine semantic F1@1
    assert "<td>backbone=vit_tiny</td>" in retrieval  # run paths whole (their section names the experiment)
    assert "text-overflow" not in report  # long cells wrap, never cut


def test_overview_sweeps_and_failures(report):
    overview = section(report, "overview")
    assert "6 finished run(s) in 5 experiment(s); 1 failed and 0 unfinished run(s); 1 aggregated" in overview
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
    pd.read_csv(table).drop(columns="spearman_semantic").to_csv(table, index=False)
    with pytest.raises(ValueError, match="class_probability_bootstrap.*spearman_semantic"):
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
    assert 'caption &amp; more <span class="muted">(first 2 of 3 rows; see the CSV for all)</span>' in html
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
    assert "MB); verdicts:" in printed
    assert set(evidence["claim"]) == {"C1", "C2", "C4", "C5"} and {"data", "model", "outcome"} <= set(
        evidence.columns
    )


def test_large_figures_are_downscaled_and_travel_as_webp(tmp_path):
    rng = np.random.default_rng(0)
    noisy = tmp_path / "noisy.png"
    Image.fromarray(rng.integers(0, 255, (900, 1200, 3), dtype=np.uint8)).save(noisy)
    assert noisy.stat().st_size > FULL_PNG_LIMIT
    image = embed_image(noisy)
    full = Image.open(io.BytesIO(base64.b64decode(image.full_uri.split(",", 1)[1])))
    thumb = Image.open(io.BytesIO(base64.b64decode(image.thumb_uri.split(",", 1)[1])))
    assert (image.full_format, full.format, full.size) == ("WEBP", "WEBP", (1200, 900))
    assert thumb.size == (THUMB_WIDTH, 420) == (image.thumb_width, image.thumb_height)
    small = tmp_path / "small.png"
    Image.new("RGB", (200, 100), "white").save(small)
    kept = embed_image(small)
    assert kept.full_format == "PNG" and kept.thumb_width == 200  # never upscaled
    with pytest.raises(FileNotFoundError, match="missing.png"):
        embed_image(tmp_path / "missing.png")
    (tmp_path / "bad.png").write_text("not an image")
    with pytest.raises(ValueError, match="bad.png is not a readable image"):
        embed_image(tmp_path / "bad.png")
