"""The shared stage runner: publication on success only, failure records, skip when complete, validation."""

import json

import pytest

from semrsm.pipeline.stages import available_stages, register_stage, run_stage

CALLS = []


@register_stage("test_ok", options=("value",))
def _ok(cfg, ctx):
    CALLS.append(cfg.experiment.value)
    (ctx.output_dir / "result.txt").write_text("done")
    return {"value": cfg.experiment.value}


@register_stage("test_fail")
def _fail(cfg, ctx):
    (ctx.output_dir / "half_written.txt").write_text("partial")
    raise RuntimeError("stage exploded")


@pytest.fixture(autouse=True)
def _clear_calls():
    CALLS.clear()


def test_successful_stage_publishes_results_and_is_skipped_when_rerun(tmp_path, compose):
    cfg = compose("experiment.stage=test_ok", "+experiment.value=3")
    summary = run_stage(cfg, tmp_path / "run")
    results = tmp_path / "run" / "results"
    assert summary["value"] == 3 and summary["stage_wall_time_s"] >= 0
    assert (results / "result.txt").read_text() == "done"
    assert json.loads((results / "status.json").read_text())["status"] == "ok"
    assert json.loads((results / "metrics.json").read_text())["value"] == 3
    assert json.loads((results / "stage.json").read_text())["stage"] == "test_ok"
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["results"]
    assert run_stage(cfg, tmp_path / "run") == summary and CALLS == [3]  # complete: not run again
    run_stage(compose("experiment.stage=test_ok", "+experiment.value=3", "force=true"), tmp_path / "run")
    run_stage(compose("experiment.stage=test_ok", "+experiment.value=4"), tmp_path / "run")  # config changed
    assert CALLS == [3, 3, 4]


def test_failed_stage_leaves_no_results_and_records_the_error(tmp_path, compose):
    run_dir = tmp_path / "run"
    run_stage(compose("experiment.stage=test_ok", "+experiment.value=1"), run_dir)
    with pytest.raises(RuntimeError, match="stage exploded"):
        run_stage(compose("experiment.stage=test_fail"), run_dir)
    status = json.loads((run_dir / "results.failed" / "status.json").read_text())
    assert status["status"] == "failed" and "stage exploded" in status["error"]
    assert (run_dir / "results" / "result.txt").exists()  # the earlier complete results are untouched
    assert sorted(p.name for p in run_dir.iterdir()) == ["results", "results.failed"]


def test_unknown_stage_and_misspelt_stage_option_are_rejected(tmp_path, compose):
    with pytest.raises(ValueError, match=r"unknown stage 'nope'.*available stages: \[.*'extract'"):
        run_stage(compose("experiment.stage=nope"), tmp_path)
    with pytest.raises(ValueError, match=r"experiment\.valeu \(did you mean experiment\.value\?\)"):
        run_stage(compose("experiment.stage=test_ok", "+experiment.valeu=1"), tmp_path)
    with pytest.raises(ValueError, match=r"features\.dtype must be one of"):
        run_stage(compose("features.dtype=float64"), tmp_path)
    assert not any(tmp_path.glob("results*"))


def test_builtin_stages_are_registered():
    assert "extract" in available_stages()


def test_register_stage_refuses_a_second_function_for_a_name():
    with pytest.raises(ValueError, match="already registered"):
        register_stage("test_ok")(lambda cfg, ctx: {})
