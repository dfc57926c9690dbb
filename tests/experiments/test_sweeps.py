"""Hydra multiruns of experiments/run.py (forked runs, see tests/cli_runs.py): one aggregated table per sweep at
multirun end (the joblib launcher runs in tests/experiments/test_rsm_tiles.py); a rerun reuses finished jobs; the
cluster launcher configs compose."""

from pathlib import Path

import pandas as pd
import pytest
from cli_runs import CliServer, Completed, run_env
from hydra import compose, initialize_config_dir

from semrsm.pipeline.config import register_resolvers
from semrsm.pipeline.stages import VOLATILE_FEATURE_KEYS, VOLATILE_KEYS

REPO = Path(__file__).resolve().parents[2]
TINY_SYNTHETIC = [
    "dataset=synthetic",
    "dataset.num_classes=2",
    "dataset.train_per_class=1",
    "dataset.val_per_class=3",
    "features.progress_bar=false",
    "logger=none",
]


def _multirun(cli: CliServer, root: Path, *args: str) -> Completed:
    done = cli.run(["-m", *args], cwd=root, env=run_env(root), timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return done


def _job_dirs(sweep: Path) -> list[Path]:
    return sorted(path.parent for path in sweep.glob("*/.hydra"))


@pytest.mark.slow
def test_sweep_2x2_aggregates_into_one_table_and_its_rerun_reuses_finished_jobs(cli, tmp_path):
    args = [
        "experiment=layers_cka",
        "backbone=resnet18_tinyimagenet",
        "backbone.num_classes=2",
        "experiment.layers=[layer3,layer4]",
        "kernel=cosine,rbf",
        "matcher=hungarian,batch_optimal",
        *TINY_SYNTHETIC,
    ]
    _multirun(cli, tmp_path, *args)
    sweep = tmp_path / "outputs" / "multirun" / "layers_cka"
    jobs = _job_dirs(sweep)
    assert len(jobs) == 4 and all((job / "results" / "stage.json").is_file() for job in jobs)

    summary = pd.read_csv(sweep / "aggregate.csv")
    assert len(summary) == 4
    assert set(zip(summary["kernel"], summary["matcher"], strict=True)) == {
        (kernel, matcher) for kernel in ("cosine", "rbf") for matcher in ("hungarian", "batch_optimal")
    }
    assert (summary["stage_wall_time_s"] > 0).all()
    rows = pd.read_csv(sweep / "layers_cka.csv")
    assert len(rows) == 8 and set(rows["layer"]) == {"layer3", "layer4"}
    assert rows["cka"].between(-1e-6, 1 + 1e-6).all()
    assert rows.groupby(["kernel", "matcher"]).size().tolist() == [2, 2, 2, 2]
    assert (sweep / "layers_cka.md").is_file()

    stamps = {job: (job / "results" / "stage.json").stat().st_mtime_ns for job in jobs}
    again = _multirun(cli, tmp_path, *args)
    assert again.stdout.count("already complete") + again.stderr.count("already complete") == 4
    assert stamps == {job: (job / "results" / "stage.json").stat().st_mtime_ns for job in _job_dirs(sweep)}
    pd.testing.assert_frame_equal(pd.read_csv(sweep / "layers_cka.csv"), rows)


@pytest.mark.slow
def test_retrieval_sweep_over_backbones_and_kernels(cli, tmp_path):
    _multirun(
        cli,
        tmp_path,
        "experiment=retrieval",
        "backbone=resnet18,vit_tiny",
        "backbone.pretrained=false",
        "kernel=cosine,rbf",
        "matcher=batch_optimal",
        "dataset.num_images=8",
        "dataset.image_size=64",
        "experiment.queries_shown=0",
        "features.progress_bar=false",
        "logger=none",
    )
    sweep = tmp_path / "outputs" / "multirun" / "retrieval"
    assert len(_job_dirs(sweep)) == 4
    table = pd.read_csv(sweep / "retrieval.csv")
    # one row per job x {spatio-semantic, semantic} on the last layer
    assert len(table) == 8 and table.groupby(["backbone", "kernel", "matcher"]).size().eq(2).all()
    assert set(table["semantic"]) == {True, False} and table["f1_at_1"].between(0, 1).all()
    assert len(pd.read_csv(sweep / "aggregate.csv")) == 4


@pytest.mark.filterwarnings("ignore:.*validated against ConfigStore schema")
@pytest.mark.parametrize("launcher", ["joblib", "submitit_slurm", "ray"])
def test_launcher_configs_compose_with_the_aggregation_callback(launcher):
    register_resolvers()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[f"hydra/launcher={launcher}", "experiment=retrieval"],
            return_hydra_config=True,
        )
    assert cfg.hydra.launcher._target_.startswith(f"hydra_plugins.hydra_{launcher.split('_')[0]}_launcher.")
    assert cfg.hydra.callbacks.aggregate._target_ == "semrsm.reporting.hydra_callback.AggregateResults"
    assert "hydra.launcher.n_jobs" in cfg.hydra.job.config.override_dirname.exclude_keys


def test_directory_names_leave_out_every_key_that_does_not_invalidate_results():
    """Two commands differing only in a volatile key share a run directory, where the second finds the first's
    results complete: so every volatile key stays out of the directory name."""
    register_resolvers()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("config", return_hydra_config=True)
    excluded = set(cfg.hydra.job.config.override_dirname.exclude_keys)
    volatile = {key for key in VOLATILE_KEYS if key != "hydra"}
    assert volatile | {f"features.{key}" for key in VOLATILE_FEATURE_KEYS} <= excluded
