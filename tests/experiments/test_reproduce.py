"""experiments/reproduce.py: suite loading, the smoke suite end to end with resume, the paper suite's asset check."""

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
import wandb

REPO = Path(__file__).resolve().parents[2]
EXPERIMENTS = REPO / "experiments"
sys.path.insert(0, str(EXPERIMENTS))

import reproduce  # noqa: E402
from huggingface_hub import constants  # noqa: E402
from suite import load_suite  # noqa: E402

from semrsm.reporting import dashboard  # noqa: E402
from semrsm.reporting import wandb_conventions as conventions  # noqa: E402
from semrsm.reporting.claims import CLAIMS  # noqa: E402
from semrsm.reporting.wandb_offline import find_offline_runs, read_offline_run  # noqa: E402

STAGE_TABLES = {
    "train": "history",
    "translated_crops": "crops_separation",
    "retrieval": "retrieval",
    "class_probability": "class_probability",
    "layers_cka": "layers_cka",
    "matchers": "matchers",
}


def _reproduce(root: Path, monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """reproduce.main in this process (as ``python experiments/reproduce.py`` runs it, without the start-up of a
    second PyTorch process): its exit code and what it printed."""
    monkeypatch.setenv("SEMRSM_ROOT", str(root))
    monkeypatch.chdir(root)
    capsys.readouterr()
    code = reproduce.main(list(args))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _write_suite(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_grid_runs_get_their_own_directories(tmp_path, monkeypatch):
    monkeypatch.setenv("SEMRSM_ROOT", str(tmp_path))
    suite = _write_suite(
        tmp_path / "mini.yaml",
        "overrides: [logger=none]\n"
        "runs:\n"
        "  - name: cka\n"
        "    overrides: [experiment=layers_cka]\n"
        "    grid: {kernel: [cosine, rbf], matcher: [hungarian, batch_optimal]}\n",
    )
    runs = load_suite(suite, ("seed=3",)).runs
    assert [run.label for run in runs] == [
        "mini.cka.kernel=cosine.matcher=hungarian",
        "mini.cka.kernel=cosine.matcher=batch_optimal",
        "mini.cka.kernel=rbf.matcher=hungarian",
        "mini.cka.kernel=rbf.matcher=batch_optimal",
    ]
    assert runs[2].cfg.kernel.name == "rbf" and runs[2].cfg.seed == 3 and runs[2].overrides[-1] == "seed=3"
    assert runs[0].run_dir == tmp_path / "outputs" / "runs" / "layers_cka" / runs[0].label


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("runs: [{name: a, overides: []}]\n", "must be a mapping with a name"),
        ("runs: [{name: a, overrides: [kernel=cosine]}, {name: a, overrides: []}]\n", "appears twice"),
        ("runs: [{name: a, overrides: [kernel=cosin]}]\n", r"runs\[0\] \(mini.a\).*cosin"),
        ("runs: [{name: a, grid: {kernel: []}}]\n", "grid must map keys to non-empty lists"),
        ("runs: [{name: a, overrides: kernel=cosine}]\n", "must be a list of key=value strings"),
        ("tests: []\n", "a suite is a mapping"),
    ],
)
def test_bad_suites_raise_naming_the_problem(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        load_suite(_write_suite(tmp_path / "mini.yaml", text))


def test_unknown_suite_lists_the_available_ones():
    with pytest.raises(FileNotFoundError, match=r"unknown suite 'nope'.*offline.*paper.*smoke"):
        load_suite("nope")


def test_paper_suite_lists_every_missing_asset_before_computing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))  # an empty weight cache
    code, out = _reproduce(tmp_path, monkeypatch, capsys, "--suite", "paper")
    assert code == 2, out[-3000:]
    assert "nothing was computed" in out
    assets = ("tiny-imagenet-200", "egoobjects", "cityscapes", "imagenet", "sam_vit_b_01ec64.pth")
    for asset in (*assets, "dinov2_vitg14_linear_head.pth"):
        assert asset in out, asset
    for backbone in ("dinov2_giant", "clip", "bit50", "clipseg", "resnet101", "convnextv2_base", "vit_l32"):
        assert f"backbone {backbone} (needed by" in out, backbone
    # the TinyImageNet ResNet18 checkpoint is written by the suite's own train run: not an asset
    assert "resnet18_tinyimagenet_seed0.pt" not in out
    assert not (tmp_path / "outputs" / "runs").exists() and not (tmp_path / "outputs" / "cache").exists()


SMOKE_LAYERS = ("layer1", "layer2", "layer3", "layer4", "blocks.0", "blocks.1")
SMOKE_MATCHERS = [
    "identity",
    "greedy",
    "batch_optimal",
    "lapjv",
]  # the smoke matchers run's list + its reference


def _scalar_keys(run) -> set[str]:
    """The run's scalar summary keys: not wandb's own (``_``) and not the parts of a logged table or image."""
    media = {key.split("/")[0] for key in run.summary if key.endswith("/_type")}  # its fields: <name>/<field>
    return {
        key
        for key in run.summary
        if not key.startswith("_") and not (key.count("/") == 1 and key.split("/")[0] in media)
    }


def _check_wandb_runs(outputs: Path, out: str) -> None:
    """The offline W&B runs of one smoke invocation follow the conventions (semrsm.reporting.wandb_conventions),
    carry the artifact chain, and log every key the dashboard's panels plot."""
    runs = [read_offline_run(path) for path in find_offline_runs(outputs)]
    by_type: dict[str, list] = {}
    for run in runs:
        by_type.setdefault(run.job_type, []).append(run)
        assert run.exit_code == 0, run.path
    assert sorted(by_type) == sorted([*STAGE_TABLES, "verdicts"]) and len(by_type["train"]) == 2
    (group,) = {run.group for run in runs}
    assert group.startswith("smoke-") and f"wandb group of this invocation: {group}" in out
    stage_runs = [run for run in runs if run.job_type != "verdicts"]
    for run in stage_runs:
        assert "data:synthetic" in run.tags and run.config["choices"]["data"] == "synthetic", run.name
        assert {t for t in run.tags if t.startswith("backbone:")} <= {
            "backbone:resnet18_synthetic",
            "backbone:vit_tiny_synthetic",
        }, run.tags
        assert not [k for k in _scalar_keys(run) if set(k.split("/")) & set(SMOKE_LAYERS)], run.name
    for run in by_type["train"]:
        assert not [t for t in run.tags if t.startswith(("kernel:", "matcher:"))], run.tags
        assert {"train_loss", "val_loss", "val_acc", "epoch"} <= run.history_keys  # Lightning's WandbLogger
        assert set(conventions.SUMMARY_KEYS["train"]) <= _scalar_keys(run)
    (matchers,) = by_type["matchers"]
    assert [t for t in matchers.tags if t.startswith(("kernel:", "matcher:"))] == [
        f"matcher:{name}" for name in SMOKE_MATCHERS
    ]
    assert set(conventions.matcher_keys(SMOKE_MATCHERS)) <= _scalar_keys(matchers)
    for stage in ("translated_crops", "class_probability", "layers_cka"):
        (run,) = by_type[stage]
        assert {"kernel:cosine", "matcher:lapjv"} <= set(run.tags)
        assert set(conventions.SUMMARY_KEYS[stage]) <= _scalar_keys(run), stage
    (retrieval,) = by_type["retrieval"]
    assert set(conventions.retrieval_keys(["cosine"])) <= _scalar_keys(retrieval)
    # lineage: checkpoint -> features -> RSM cache entries -> results table (references, small files stored)
    artifacts = {}
    for artifact in retrieval.logged_artifacts:
        artifacts.setdefault(artifact.type, []).append(artifact)
    (checkpoint,), (features,), (results,) = artifacts["model"], artifacts["features"], artifacts["results"]
    assert checkpoint.name == "checkpoint-vit_tiny_synthetic_seed0"
    assert features.metadata["derived_from"] == [checkpoint.name]
    assert {a.metadata["matcher"] for a in artifacts["rsm"]} == {"identity", "lapjv"}
    assert all(a.metadata["derived_from"] == [features.name] for a in artifacts["rsm"])
    assert sorted(results.metadata["derived_from"]) == sorted(a.name for a in artifacts["rsm"])
    assert set(results.entries) == {"retrieval.csv", "retrieval_queries.csv"}
    assert all(entry["ref"] for artifact in artifacts["rsm"] for entry in artifact.entries.values())
    train = {a.type: a for a in by_type["train"][0].logged_artifacts}
    assert train["results"].metadata["derived_from"] == [train["model"].name]
    (verdicts,) = by_type["verdicts"]
    assert {f"verdict/{claim.id}" for claim in CLAIMS} <= set(verdicts.summary)
    assert (
        verdicts.summary["verdict/C1"] == "confirmed" and verdicts.summary["verdicts/_type"] == "table-file"
    )
    # every key a dashboard panel plots is logged by a run of the panel's job type
    spec, _, _ = dashboard.dashboard_spec("e", "p", dashboard.sections(["cosine"], SMOKE_MATCHERS))
    for panel in spec["panels"]:
        logged = set().union(*(set(run.summary) | run.history_keys for run in by_type[panel["job_type"]]))
        keys = [f"{key}/_type" for key in panel["keys"]] if panel["kind"] == "table" else panel["keys"]
        assert set(keys) <= logged, panel


@pytest.mark.slow
def test_smoke_suite_runs_every_stage_then_resumes_without_recomputing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WANDB_MODE", "offline")  # the runs' W&B records are checked too (no account needed)
    monkeypatch.delenv("WANDB_DIR", raising=False)
    monkeypatch.delenv(conventions.GROUP_ENV, raising=False)
    code, out = _reproduce(tmp_path, monkeypatch, capsys, "--suite", "smoke")
    assert code == 0, out[-4000:]
    outputs = tmp_path / "outputs" / "smoke"
    wandb.teardown()  # wandb's service writes the offline run files behind the runs: flush them
    _check_wandb_runs(outputs, out)
    stage_files = sorted((outputs / "runs").glob("*/smoke.*/results/stage.json"))
    stages = {json.loads(path.read_text())["stage"] for path in stage_files}
    assert stages == set(STAGE_TABLES) and len(stage_files) == 7
    assert out.count(": done in ") == 7 and "[7/7] smoke.matchers-resnet18" in out
    suite_tables = outputs / "reproduce" / "smoke"
    for table in STAGE_TABLES.values():
        combined = pd.read_csv(suite_tables / f"{table}.csv")
        assert len(combined) > 0 and combined["run"].str.startswith("smoke.").all()
        assert f"{suite_tables / table}.csv" in out
    assert "figure " in out and (outputs / "report" / "index.html").is_file()

    # a run killed mid-way leaves only a partial results directory: the rerun recomputes it and nothing else
    killed = outputs / "runs" / "layers_cka" / "smoke.layers-cka-resnet18"
    (killed / "results").rename(killed / "results.partial-1")
    stamps = {path: path.stat().st_mtime_ns for path in stage_files if killed not in path.parents}
    code, again = _reproduce(tmp_path, monkeypatch, capsys, "--suite", "smoke")
    assert code == 0, again[-4000:]
    assert again.count("already complete, skipped") == 6
    assert again.count(": done in ") == 1 and "smoke.layers-cka-resnet18: done in" in again
    assert stamps == {path: path.stat().st_mtime_ns for path in stamps}
    assert (killed / "results" / "stage.json").is_file() and not (killed / "results.partial-1").exists()
