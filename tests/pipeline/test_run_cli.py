"""experiments/run.py end to end (forked runs, see tests/cli_runs.py): the extract stage on the synthetic dataset
with a random-init ResNet18, and the one-paragraph errors of bad options."""

import json
from pathlib import Path

import numpy as np
import pytest
from cli_runs import run_env

from semrsm.pipeline.feature_store import FeatureSet

ARGS = [
    "experiment=extract",
    "dataset=synthetic",
    "backbone=resnet18",
    "backbone.pretrained=false",
    "dataset.num_classes=3",
    "dataset.train_per_class=1",
    "dataset.val_per_class=2",
    "features.batch_size=4",
    "features.progress_bar=false",
]


@pytest.fixture
def run(cli, tmp_path):
    return lambda *args: cli.run(list(args), cwd=tmp_path, env=run_env(tmp_path))


@pytest.mark.slow
def test_extract_stage_writes_features_and_logs_them(tmp_path, run):
    done = run(*ARGS)
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = (tmp_path / "outputs" / "runs" / "extract").iterdir()
    assert "backbone.pretrained=false" in run_dir.name and (run_dir / ".hydra" / "config.yaml").is_file()
    results = run_dir / "results"
    metrics = json.loads((results / "metrics.json").read_text())
    assert metrics["num_samples"] == metrics["computed_samples"] == 6 and metrics["num_layers"] == 4
    assert json.loads((results / "status.json").read_text())["status"] == "ok"
    table = (results / "tables" / "features.csv").read_text()
    assert "layer4,NCHW,6x512x7x7,float32" in table
    features = FeatureSet(metrics["feature_dir"])
    assert Path(metrics["feature_dir"]).parent == tmp_path / "outputs" / "cache" / "features"
    assert features.layer("layer1").shape == (6, 64, 56, 56) and features.logits.shape[0] == 6
    assert np.isfinite(features.layer("layer4")).all()


def test_unknown_option_fails_listing_choices(run):
    done = run("backbone=resnet19")
    assert (
        done.returncode != 0
        and "Available options in 'backbone'" in done.stderr
        and "resnet18" in done.stderr
    )


def test_missing_checkpoint_fails_fast_with_one_clean_paragraph(tmp_path, run):
    done = run("experiment=translated_crops", "logger=none")  # default: the trained ResNet18
    assert done.returncode == 1
    checkpoint = tmp_path / "outputs" / "checkpoints" / "resnet18_synthetic_seed0.pt"
    assert f"FileNotFoundError: No trained checkpoint for backbone 'resnet18' at {checkpoint}" in done.stderr
    assert "experiment=train" in done.stderr
    assert "Traceback" not in done.stderr and "InstantiationException" not in done.stderr
    assert not (tmp_path / "data").exists()  # it failed before generating any data
    (failed,) = (tmp_path / "outputs" / "runs" / "translated_crops").glob("*/results.failed")
    assert f"traceback in {failed / 'status.json'}" in done.stderr
    assert "Traceback" in json.loads((failed / "status.json").read_text())["traceback"]


def test_bad_option_fails_with_one_clean_paragraph(run):
    done = run("+experiment.layer=[layer4]", "logger=none")
    assert done.returncode == 1
    assert "ValueError: unknown key(s) experiment.layer; valid keys of experiment" in done.stderr
    assert "Traceback" not in done.stderr
