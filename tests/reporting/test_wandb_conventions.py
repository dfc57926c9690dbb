"""W&B conventions: tags of the choices a stage uses, groups, artifact names, layer-independent summaries."""

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from semrsm.pipeline.config import register_resolvers
from semrsm.pipeline.stages import get_stage
from semrsm.reporting import wandb_conventions as conventions

CONF = str(Path(__file__).resolve().parents[2] / "conf")


def _cfg(*overrides):
    register_resolvers()
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose("config", overrides=list(overrides))


def test_tags_name_only_the_choices_used_with_full_names_and_the_data_kind():
    used = {"dataset": ["synthetic_scenes"], "backbone": ["resnet18_synthetic"], "kernel": ["cosine", "rbf"]}
    tags = conventions.run_tags(used, extra=["nightly", "kernel:rbf"])
    assert tags == [
        "dataset:synthetic_scenes",
        "backbone:resnet18_synthetic",
        "kernel:cosine",
        "kernel:rbf",
        "data:synthetic",
        "nightly",
    ]
    assert conventions.run_choices(used) == {
        "dataset": "synthetic_scenes",
        "backbone": "resnet18_synthetic",
        "kernel": "cosine+rbf",
        "data": "synthetic",
        "setup": "resnet18_synthetic on synthetic_scenes",
    }
    assert "data:real" in conventions.run_tags({"dataset": ["photo_views"], "backbone": ["mobilenet_v2"]})


@pytest.mark.parametrize(
    ("used", "message"),
    [
        ({"backbone": ["resnet18"]}, "must include dataset"),
        ({"dataset": ["synthetic"], "optimizer": ["adamw"]}, "only name"),
        ({"dataset": ["synthetic"], "kernel": []}, "non-empty names"),
    ],
)
def test_bad_choices_raise_naming_the_problem(used, message):
    with pytest.raises(ValueError, match=message):
        conventions.run_tags(used)


def test_stages_tag_what_they_use(tmp_path):
    paths = f"paths.root_dir={tmp_path}"
    train = get_stage("train").used_choices(_cfg(paths, "experiment=train"))
    assert train == {"dataset": ["synthetic"], "backbone": ["resnet18"]}  # no Hydra app: the config's name
    retrieval = _cfg(paths, "experiment=retrieval", "experiment.kernels=[linear,rbf]", "matcher=greedy")
    assert get_stage("retrieval").used_choices(retrieval)["kernel"] == ["linear", "rbf"]
    assert get_stage("retrieval").used_choices(retrieval)["matcher"] == ["greedy"]
    matchers = _cfg(paths, "experiment=matchers", "experiment.matchers=[identity,greedy]", "matcher=auction")
    used = get_stage("matchers").used_choices(matchers)
    assert "kernel" not in used and used["matcher"] == ["identity", "greedy", "auction", "lapjv"]
    assert "kernel" not in get_stage("rsm_tiles").used_choices(_cfg(paths, "experiment=rsm_tiles"))


def test_groups_come_from_the_invocation(monkeypatch):
    monkeypatch.delenv(conventions.GROUP_ENV, raising=False)
    first, second = conventions.invocation_group("retrieval"), conventions.invocation_group("retrieval")
    assert first.startswith("retrieval-") and first != second
    monkeypatch.setenv(conventions.GROUP_ENV, "offline-20250101T000000Z-abcdef")
    assert conventions.invocation_group("retrieval") == "offline-20250101T000000Z-abcdef"
    monkeypatch.setenv(conventions.GROUP_ENV, "bad group/name")
    with pytest.raises(ValueError, match="wandb group"):
        conventions.invocation_group("retrieval")


def test_artifact_names_are_safe_and_distinct():
    assert conventions.artifact_name("results", "retrieval-backbone=vit,kernel=rbf") == (
        "results-retrieval-backbone_vit_kernel_rbf"
    )
    long_a, long_b = "x" * 200 + "a", "x" * 200 + "b"
    a, b = conventions.artifact_name("rsm", long_a), conventions.artifact_name("rsm", long_b)
    assert len(a) == conventions.MAX_ARTIFACT_NAME and a != b
    with pytest.raises(ValueError, match="empty name"):
        conventions.artifact_name("///", "")


def test_layer_statistics_use_the_deepest_layer_and_the_mean():
    assert conventions.layer_statistics("auroc_gain", [0.1, 0.2, 0.6]) == {
        "auroc_gain/last": 0.6,
        "auroc_gain/mean": pytest.approx(0.3),
    }
    with pytest.raises(ValueError, match="no layer values"):
        conventions.layer_statistics("auroc_gain", [])


def test_a_sweep_names_one_group_for_its_jobs_and_keeps_a_given_one(tmp_path, monkeypatch):
    from omegaconf import OmegaConf

    from semrsm.reporting.hydra_callback import AggregateResults

    monkeypatch.delenv(conventions.GROUP_ENV, raising=False)
    config = OmegaConf.create(
        {"experiment": {"name": "retrieval"}, "hydra": {"sweep": {"dir": str(tmp_path)}}}
    )
    callback = AggregateResults(pattern="results/metrics.json", tables=False)
    callback.on_multirun_start(config)
    group = conventions.invocation_group("retrieval")
    assert group.startswith("retrieval-sweep-") and conventions.invocation_group("retrieval") == group
    (tmp_path / "job" / "results").mkdir(parents=True)
    (tmp_path / "job" / "results" / "metrics.json").write_text('{"f1_gain/min": 0.1}')
    callback.on_multirun_end(config)
    assert conventions.GROUP_ENV not in os.environ  # the next invocation gets its own
    monkeypatch.setenv(conventions.GROUP_ENV, "offline-20250101T000000Z-abcdef")  # e.g. set by make reproduce
    callback.on_multirun_start(config)
    callback.on_multirun_end(config)
    assert conventions.invocation_group("x") == "offline-20250101T000000Z-abcdef"
