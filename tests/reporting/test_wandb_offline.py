"""Offline W&B runs as RunLogger writes them, read back from their .wandb files: group, job type, tags, labels,
summary, history and artifacts with lineage; the reader refuses broken files."""

import json

import pandas as pd
import pytest
import wandb

from semrsm.pipeline import lineage
from semrsm.reporting.run_logger import RunLogger
from semrsm.reporting.wandb_offline import find_offline_runs, read_offline_run, read_records


@pytest.fixture
def offline(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_DIR", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    return tmp_path


def _files(root):
    checkpoint = root / "checkpoints" / "resnet18_synthetic_seed0.pt"
    entry = root / "cache" / "features" / "abc123"
    rsm = root / "cache" / "rsm" / "def456.npz"
    for path, size in (
        (checkpoint, 2048),
        (entry / "manifest.json", 20),
        (entry / "layers.npy", 4096),
        (rsm, 512),
    ):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * size)
    return checkpoint, entry, rsm


def test_a_stage_run_reads_back_with_its_conventions_and_lineage(offline):
    checkpoint, entry, rsm = _files(offline)
    out = offline / "run" / "results"
    tags = ["dataset:synthetic", "backbone:resnet18_synthetic", "kernel:cosine", "data:synthetic"]
    logger = RunLogger(
        out,
        {"seed": 0, "note": "y" * 70_000},  # a config record longer than a 32 KiB block: split into chunks
        mode="offline",
        group="offline-20250101T000000Z-abcdef",
        job_type="retrieval",
        name="retrieval-test",
        tags=tags,
        labels={"dataset": "synthetic", "backbone": "resnet18_synthetic", "data": "synthetic"},
    )
    with logger, lineage.recording() as recorded:
        lineage.note_features(
            entry, "abc123", str(checkpoint), dataset="synthetic", backbone="resnet18_synthetic"
        )
        lineage.note_rsm(rsm, "def456", "abc123", layer="layer4", matcher="lapjv")
        logger.log_table("retrieval", pd.DataFrame({"layer": ["layer4"], "f1_at_1": [0.5]}))
        logger.log_history(
            [{"cka_by_size/spatial_size": s, "cka_by_size/cka": c} for s, c in ((4, 0.9), (16, 0.8))]
        )
        logger.log_metrics({"f1_gain/cosine/last": 0.25, "num_samples": 12})
        logger.log_lineage(recorded, results=out / "tables", name="retrieval-test")
    assert wandb.run is None
    wandb.teardown()  # the service writes the run file behind the run: flush it
    (run_dir,) = find_offline_runs(out)
    run = read_offline_run(run_dir)
    assert (run.group, run.job_type, run.name, run.tags) == (
        "offline-20250101T000000Z-abcdef",
        "retrieval",
        "retrieval-test",
        tags,
    )
    assert run.config["choices"]["backbone"] == "resnet18_synthetic" and len(run.config["note"]) == 70_000
    assert run.summary["f1_gain/cosine/last"] == 0.25 and run.summary["num_samples"] == 12
    assert [row["cka_by_size/spatial_size"] for row in run.history if "cka_by_size/cka" in row] == [4, 16]
    assert run.exit_code == 0
    artifacts = {a.type: a for a in run.logged_artifacts if a.type != "run_table"}
    assert set(artifacts) == {"model", "features", "rsm", "results"}
    model, features, matched, results = (artifacts[k] for k in ("model", "features", "rsm", "results"))
    assert model.name == "checkpoint-resnet18_synthetic_seed0"
    assert features.metadata["derived_from"] == [model.name] and features.metadata["key"] == "abc123"
    assert matched.metadata["derived_from"] == [features.name]
    assert results.metadata["derived_from"] == [matched.name]
    # references, not uploads: only the small manifest and the results table are stored in the artifacts
    assert model.entries["resnet18_synthetic_seed0.pt"]["ref"] == checkpoint.resolve().as_uri()
    assert all(e["ref"] for p, e in features.entries.items() if p != "manifest.json")
    assert (
        features.entries["manifest.json"]["ref"] is None and results.entries["retrieval.csv"]["ref"] is None
    )
    listed = {item["name"]: item["derived_from"] for item in json.loads((out / "artifacts.json").read_text())}
    assert listed[matched.name] == [features.name] and listed[results.name] == [matched.name]


def test_disabled_mode_lists_lineage_locally_without_wandb(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    checkpoint, entry, rsm = _files(tmp_path)
    out = tmp_path / "run"
    with RunLogger(out, {}, mode="disabled") as logger, lineage.recording() as recorded:
        lineage.note_features(entry, "abc123", str(checkpoint), backbone="r", dataset="d")
        logger.log_lineage(recorded, results=out / "tables", name="r")
    assert not (out / "wandb").exists()
    assert [a["type"] for a in json.loads((out / "artifacts.json").read_text())] == ["model", "features"]


def test_lineage_of_missing_files_raises_naming_them(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    with RunLogger(tmp_path / "run", {}, mode="disabled") as logger, lineage.recording() as recorded:
        lineage.note_rsm(tmp_path / "gone.npz", "k", "features-key", layer="layer1", matcher="lapjv")
        with pytest.raises(FileNotFoundError, match="gone.npz"):
            logger.log_lineage(recorded, results=tmp_path / "tables", name="r")
    assert lineage.note_rsm(tmp_path / "x.npz", "k", "f") is None  # outside a recording: nothing happens


def test_reader_refuses_foreign_truncated_and_corrupt_files(offline):
    with RunLogger(offline / "run", {"a": 1}, mode="offline", group="g", job_type="train") as logger:
        logger.log_metrics({"val_acc": 0.5})
    wandb.teardown()
    (path,) = (offline / "run" / "wandb").glob("offline-run-*/*.wandb")
    data = path.read_bytes()
    assert read_records(path)
    foreign = offline / "foreign.wandb"
    foreign.write_bytes(b"PK\x03\x04" + data[4:])
    with pytest.raises(ValueError, match="not a wandb run file"):
        read_records(foreign)
    truncated = offline / "truncated.wandb"
    truncated.write_bytes(data[:-3])
    with pytest.raises(ValueError, match="truncated"):
        read_records(truncated)
    corrupt = offline / "corrupt.wandb"
    corrupt.write_bytes(data[:20] + bytes([data[20] ^ 0xFF]) + data[21:])
    with pytest.raises(ValueError, match="checksum mismatch"):
        read_records(corrupt)
    with pytest.raises(FileNotFoundError, match="expected one .wandb file"):
        read_offline_run(offline)
