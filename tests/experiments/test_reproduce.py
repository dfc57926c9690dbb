"""experiments/reproduce.py: suite loading, the smoke suite end to end with resume, the paper suite's asset check."""

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
EXPERIMENTS = REPO / "experiments"
sys.path.insert(0, str(EXPERIMENTS))

import reproduce  # noqa: E402
from huggingface_hub import constants  # noqa: E402
from suite import load_suite  # noqa: E402

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


@pytest.mark.slow
def test_smoke_suite_runs_every_stage_then_resumes_without_recomputing(tmp_path, monkeypatch, capsys):
    code, out = _reproduce(tmp_path, monkeypatch, capsys, "--suite", "smoke")
    assert code == 0, out[-4000:]
    outputs = tmp_path / "outputs" / "smoke"
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
