"""make dashboard: the workspace and report spec built offline, its panels on the conventions' keys."""

import json

import pytest
import wandb

from semrsm.reporting import dashboard
from semrsm.reporting import wandb_conventions as conventions


def spec_keys(spec: dict) -> set[str]:
    """Every run key the workspace's panels plot, read from the serialized W&B workspace itself."""
    keys = set()
    for section in spec["workspace"]["spec"]["section"]["panelBankConfig"]["sections"]:
        for panel in section["panels"]:
            config = panel["config"]
            keys |= set(config.get("metrics", []))
            for axis in ("xAxis", "yAxis"):
                if axis in config:
                    keys.add(config[axis].removeprefix("summary:"))
    return keys


def test_spec_is_written_offline_and_says_how_to_publish(tmp_path, capsys):
    assert (
        dashboard.main(
            ["--outputs", str(tmp_path / "none"), "--out", str(tmp_path / "d.json"), "--entity", "me"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "wandb login" in out and "--entity me --publish" in out
    spec = json.loads((tmp_path / "d.json").read_text())
    assert spec["entity"] == "me" and spec["workspace"]["entity"] == "me"
    sections = spec["workspace"]["spec"]["section"]["panelBankConfig"]["sections"]
    assert [s["name"].split(" ")[0] for s in sections] == [
        "C1",
        "C2/C3",
        "C4",
        "C5",
        "C6",
        "Training",
        "Verdicts",
    ]
    # per claim: F1@1 per kernel (3) + gain, Pearson and Spearman, one scatter per matcher, CKA by size
    kinds = [(p["claim"], p["kind"]) for p in spec["panels"]]
    assert kinds.count(("C2/C3", "bar")) == len(conventions.KERNELS) + 1
    assert kinds.count(("C5", "scatter")) == len(dashboard.MATCHERS)
    assert ("C6", "line") in kinds and ("verdicts", "table") in kinds
    report = json.dumps(spec["report"])
    assert '"name": "jobType"' in report and "f1_at_1/semantic/rbf/last" in report  # runsets by job type


def test_every_panel_key_is_in_the_conventions_vocabulary():
    spec, _, _ = dashboard.dashboard_spec("e", "p", dashboard.sections())
    vocabulary = {
        *conventions.retrieval_keys(conventions.KERNELS),
        *conventions.correlation_keys(),
        *conventions.matcher_keys(dashboard.MATCHERS),
        *(key for keys in conventions.SUMMARY_KEYS.values() for key in keys),
        *dashboard.HISTORY_KEYS,
    }
    keys = spec_keys(spec)
    assert keys and keys <= vocabulary, keys - vocabulary
    assert keys == {key for panel in spec["panels"] for key in panel["keys"] if panel["kind"] != "table"}


def test_publishing_without_credentials_fails_with_the_way_to_log_in(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(wandb, "login", lambda **kwargs: False)
    code = dashboard.main(["--outputs", str(tmp_path), "--entity", "me", "--publish"])
    assert code == 1
    assert "not published" in capsys.readouterr().out
    assert (tmp_path / "dashboard" / "dashboard.json").is_file()  # the spec is written anyway


def test_panels_follow_the_kernels_and_matchers_of_the_local_runs(tmp_path):
    results = tmp_path / "runs" / "retrieval" / "r" / "results"
    results.mkdir(parents=True)
    (results / "metrics.json").write_text(
        json.dumps({"f1_gain/linear/last": 0.1, "features/quality_greedy": 0.9})
    )
    assert dashboard.logged_choices(tmp_path)[:2] == (["linear"], ["greedy"])
    with pytest.raises(ValueError, match="unknown panel kind"):
        dashboard._panel(dashboard.PanelSpec("pie", "t", ("a",), "train"))
