import json

import numpy as np
import pandas as pd
import pytest
import wandb
import yaml
from matplotlib.figure import Figure
from omegaconf import OmegaConf

from semrsm.reporting.run_logger import RunLogger, resolve_mode


def _figure():
    figure = Figure(figsize=(2, 1.5), dpi=50)
    figure.add_subplot().plot([0, 1], [1, 0])
    return figure


def _read(path):
    return json.loads(path.read_text())


CONFIG = {"experiment": "retrieval", "kernel": "cosine", "layers": ("layer3", "layer4"), "seed": np.int64(3)}


def test_disabled_mode_writes_every_local_file_and_finishes(tmp_path):
    out = tmp_path / "run"
    with RunLogger(
        out, CONFIG, mode="disabled", group="retrieval", job_type="retrieval", name="r0"
    ) as logger:
        assert _read(out / "status.json")["status"] == "running"
        logger.log_metrics({"f1_at_1": np.float64(0.25), "n": 10, "undefined": float("nan")})
        logger.log_metrics({"f1_at_1": 0.5})
        table_path = logger.log_table("scores", pd.DataFrame({"kernel": ["cosine", "rbf"], "f1": [0.1, 0.2]}))
        figure_path = logger.log_figure("heatmap", _figure())
        logger.log_artifact_path(table_path, name="scores-table")
    assert wandb.run is None
    assert _read(out / "status.json")["status"] == "ok"
    assert _read(out / "metrics.json") == {"f1_at_1": 0.5, "n": 10, "undefined": None}
    assert logger.metrics["f1_at_1"] == 0.5
    expected_config = {
        "experiment": "retrieval",
        "kernel": "cosine",
        "layers": ["layer3", "layer4"],
        "seed": 3,
    }
    assert _read(out / "config.json") == expected_config
    assert yaml.safe_load((out / "config.yaml").read_text()) == expected_config
    pd.testing.assert_frame_equal(
        pd.read_csv(table_path), pd.DataFrame({"kernel": ["cosine", "rbf"], "f1": [0.1, 0.2]})
    )
    assert figure_path == out / "figures" / "heatmap.png" and figure_path.stat().st_size > 0
    metadata = _read(out / "metadata.json")
    assert {"git", "packages", "hostname", "python", "torch", "device", "wall_time_s"} <= set(metadata)
    assert metadata["packages"]["numpy"] == np.__version__ and metadata["wall_time_s"] >= 0
    assert _read(out / "artifacts.json")[0]["name"] == "scores-table"
    assert not list(out.rglob("*.tmp*")), "temporary files must not be left behind"


def test_exception_marks_run_failed_reraises_and_finishes_wandb(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ZeroDivisionError):
        with RunLogger(out, {"a": 1}, mode="disabled") as logger:
            logger.log_metrics({"partial": 1.0})
            raise ZeroDivisionError("boom")
    assert wandb.run is None
    status = _read(out / "status.json")
    assert status["status"] == "failed"
    assert status["error"] == "ZeroDivisionError: boom" and "Traceback" in status["traceback"]
    assert _read(out / "metrics.json") == {"partial": 1.0}
    assert "wall_time_s" in _read(out / "metadata.json")


def test_offline_mode_creates_offline_run_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_root"))
    (tmp_path / "wandb_root").mkdir()
    with RunLogger(tmp_path / "run", {"a": 1}, mode="offline", group="g", tags=["test"]) as logger:
        logger.log_metrics({"x": 1.0})
        logger.log_figure("fig", _figure())
    assert wandb.run is None
    assert list((tmp_path / "wandb_root" / "wandb").glob("offline-run-*"))
    assert _read(tmp_path / "run" / "status.json")["status"] == "ok"


def test_omegaconf_config_is_resolved(tmp_path):
    with RunLogger(tmp_path, OmegaConf.create({"a": "${b}", "b": 2}), mode="disabled"):
        pass
    assert _read(tmp_path / "config.json") == {"a": 2, "b": 2}


def test_environment_overrides_mode(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert resolve_mode("online") == "disabled"
    monkeypatch.setenv("WANDB_MODE", "bogus")
    with pytest.raises(ValueError, match="WANDB_MODE"):
        resolve_mode("offline")
    monkeypatch.delenv("WANDB_MODE")
    assert resolve_mode("offline") == "offline"
    with pytest.raises(ValueError, match="'shared'"):
        resolve_mode("shared")


def test_online_without_credentials_fails_fast_instead_of_prompting(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setattr(wandb, "login", lambda **kwargs: False)
    with pytest.raises(RuntimeError, match="wandb login"):
        with RunLogger(tmp_path / "run", {}, mode="online"):
            pass
    assert _read(tmp_path / "run" / "status.json")["status"] == "failed"
    assert wandb.run is None


def test_bad_input_raises(tmp_path):
    with pytest.raises(ValueError, match="tags"):
        RunLogger(tmp_path, {}, mode="disabled", tags="single-string")
    with pytest.raises(ValueError, match="config must be a mapping"):
        RunLogger(tmp_path, ["not", "a", "mapping"], mode="disabled")
    logger = RunLogger(tmp_path, {}, mode="disabled")
    with pytest.raises(RuntimeError, match="not active"):
        logger.log_metrics({"x": 1.0})
    with logger:
        with pytest.raises(ValueError, match="must be a scalar"):
            logger.log_metrics({"x": [1, 2]})
        with pytest.raises(ValueError, match="table name"):
            logger.log_table("../escape", pd.DataFrame({"a": [1]}))
        with pytest.raises(ValueError, match="DataFrame"):
            logger.log_table("t", {"a": [1]})
        with pytest.raises(ValueError, match="matplotlib Figure"):
            logger.log_figure("f", "not a figure")
        with pytest.raises(FileNotFoundError, match="missing.txt"):
            logger.log_artifact_path(tmp_path / "missing.txt", name="missing")
    with pytest.raises(RuntimeError, match="only once"):
        with logger:
            pass
