"""Config smoke tests: every option of every group composes and resolves; cheap ones instantiate; unknown
options and misspelt keys fail naming the valid choices."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException, MissingConfigException
from hydra.utils import instantiate
from omegaconf import OmegaConf
from omegaconf.errors import ConfigAttributeError

from semrsm.models import build_backbone
from semrsm.pipeline.config import build, override_dirname, register_resolvers
from semrsm.pipeline.stages import validate_config
from semrsm.similarity import get_matcher
from semrsm.similarity.kernels import check_kernel, check_sigma

CONF = Path(__file__).resolve().parents[1] / "conf"
GROUPS = ("paths", "dataset", "backbone", "kernel", "matcher", "experiment", "logger")
OPTIONS = [(group, path.stem) for group in GROUPS for path in sorted((CONF / group).glob("*.yaml"))]
LAUNCHERS = sorted(path.stem for path in (CONF / "hydra" / "launcher").glob("*.yaml"))
REAL_DATA = ("cityscapes", "egoobjects", "imagenet_val", "tinyimagenet")
CHEAP_BACKBONES = ("resnet18", "resnet18_tinyimagenet", "vit_tiny")

register_resolvers()


def _compose(tmp_path, *overrides, hydra=False):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(
            "config", overrides=[f"paths.root_dir={tmp_path}", *overrides], return_hydra_config=hydra
        )


def test_every_group_has_options():
    assert {group for group, _ in OPTIONS} == set(GROUPS)
    assert {"joblib", "submitit_slurm", "ray"} <= set(LAUNCHERS)


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_option_composes_resolves_and_validates(tmp_path, group, option):
    cfg = _compose(tmp_path, f"{group}={option}")
    plain = OmegaConf.to_container(cfg, resolve=True)
    assert set(plain) >= {*GROUPS, "features", "seed", "force"}
    assert OmegaConf.is_struct(cfg)
    validate_config(cfg)


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_every_launcher_composes_only_when_selected(tmp_path, launcher):
    cfg = _compose(tmp_path, f"hydra/launcher={launcher}", hydra=True)
    assert cfg.hydra.launcher._target_.startswith("hydra_plugins.")
    assert "BasicLauncher" in _compose(tmp_path, hydra=True).hydra.launcher._target_


@pytest.mark.parametrize("logger", ["none", "wandb"])
def test_loggers_instantiate(tmp_path, logger):
    cfg = _compose(tmp_path, f"logger={logger}")
    run_logger = instantiate(cfg.logger, _partial_=True)(out_dir=tmp_path / "out", config={"a": 1})
    # null: the stage runner fills in the invocation's group and the stage (semrsm.reporting.wandb_conventions)
    assert run_logger.group is None and run_logger.job_type is None and run_logger.tags == []


@pytest.mark.parametrize("backbone", CHEAP_BACKBONES)
def test_cheap_backbones_instantiate_with_random_init(tmp_path, backbone):
    cfg = _compose(tmp_path, f"backbone={backbone}", "backbone.pretrained=false")
    model = build(cfg.backbone)
    assert model.layers and set(model.layers) <= set(model.layouts)


@pytest.mark.parametrize("option", [o for g, o in OPTIONS if g == "matcher"])
def test_matcher_configs_are_valid_engine_matchers(tmp_path, option):
    matcher = OmegaConf.to_container(_compose(tmp_path, f"matcher={option}").matcher)
    get_matcher(matcher.pop("name")).check_options(matcher)


@pytest.mark.parametrize("option", [o for g, o in OPTIONS if g == "kernel"])
def test_kernel_configs_are_valid_engine_kernels(tmp_path, option):
    kernel = OmegaConf.to_container(_compose(tmp_path, f"kernel={option}").kernel)
    check_kernel(kernel.pop("name"))
    assert set(kernel) <= {"sigma"}
    check_sigma(kernel.get("sigma"))


@pytest.mark.parametrize("dataset", REAL_DATA)
def test_real_datasets_name_the_missing_path(tmp_path, dataset):
    cfg = _compose(tmp_path, f"dataset={dataset}")
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "data")):
        build(cfg.dataset)


@pytest.mark.parametrize("group", ["dataset", "backbone", "kernel", "matcher", "experiment", "logger"])
def test_unknown_group_option_lists_the_choices(tmp_path, group):
    with pytest.raises(MissingConfigException, match=rf"Available options in '{group}':") as error:
        _compose(tmp_path, f"{group}=no_such_option")
    assert all(option in str(error.value) for g, option in OPTIONS if g == group)


def test_unknown_launcher_lists_the_choices(tmp_path):
    with pytest.raises(MissingConfigException, match=r"(?s)Available options in 'hydra/launcher'.*joblib"):
        _compose(tmp_path, "hydra/launcher=jobllib", hydra=True)


@pytest.mark.parametrize(
    "override", ["features.dtyp=float16", "experiment.stgae=extract", "backbone.pretrianed=false"]
)
def test_misspelt_key_override_fails(tmp_path, override):
    with pytest.raises(ConfigCompositionException, match=f"Could not override '{override.split('=')[0]}'"):
        _compose(tmp_path, override)


def test_composed_config_is_struct(tmp_path):
    cfg = _compose(tmp_path)
    with pytest.raises(ConfigAttributeError):
        _ = cfg.features.dtyp


def test_added_misspelt_key_fails_validation_with_the_valid_keys(tmp_path):
    with pytest.raises(ValueError, match=r"features\.dtyp \(did you mean features\.dtype\?\).*valid keys"):
        validate_config(_compose(tmp_path, "+features.dtyp=float16"))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("+forse=true", r"unknown key\(s\) forse \(did you mean force\?\); valid keys of the config"),
        ("+kernel.sigm=1", r"kernel\.sigm; valid keys of kernel: \['name'\]"),
        ("+kernel.sigm=1 kernel=rbf", r"kernel\.sigm \(did you mean kernel\.sigma\?\)"),
        ("+matcher.windw=4 matcher=batch_optimal", r"matcher\.windw \(did you mean matcher\.window\?\)"),
        ("+paths.cache=/x", r"paths\.cache \(did you mean paths\.cache_dir\?\)"),
        ("+dataset.num_clases=3", r"dataset\.num_clases \(did you mean dataset\.num_classes\?\)"),
        ("+logger.projekt=x", r"logger\.projekt \(did you mean logger\.project\?\)"),
        ("dataset=synthetic_crops +dataset.base.splt=train", r"dataset\.base\.splt \(did you mean"),
    ],
)
def test_keys_added_with_plus_are_checked_in_every_group(tmp_path, override, message):
    with pytest.raises(ValueError, match=message):
        validate_config(_compose(tmp_path, *override.split()))


def test_added_backbone_options_are_checked_by_the_backbone_builder():
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['img_sise'\] for backbone 'resnet18'"):
        build_backbone("resnet18", pretrained=False, img_sise=64)


def test_paths_follow_root_and_environment(tmp_path, monkeypatch):
    paths = _compose(tmp_path).paths
    assert paths.output_dir == f"{tmp_path}/outputs" and paths.cache_dir == f"{tmp_path}/outputs/cache"
    monkeypatch.setenv("SEMRSM_DATA", "/elsewhere/data")
    assert _compose(tmp_path).paths.data_dir == "/elsewhere/data"


def test_run_dir_names():
    assert override_dirname("") == "default"
    assert (
        override_dirname("backbone=resnet18,paths.data_dir=/a b/c")
        == "backbone=resnet18,paths.data_dir=_a_b_c"
    )
    long_a, long_b = "x=" + "a" * 300, "x=" + "a" * 299 + "b"
    assert len(override_dirname(long_a)) == 200 and override_dirname(long_a) != override_dirname(long_b)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["experiment=retrieval", "experiment.top_k=three"],
            r"experiment\.top_k: Value 'three' of type 'str' could not be converted to Integer",
        ),
        (["features.shard_size=0"], r"features\.shard_size must be an integer >= 1, got 0"),
        (
            ["rsm.num_tiles=1.5"],
            r"rsm\.num_tiles: Value '1\.5' of type 'float' could not be converted to Integer",
        ),
        (["+rsm.trainer.gpus=1"], r"unknown key\(s\) rsm\.trainer\.gpus; valid keys of rsm\.trainer"),
        (
            ["~experiment.debiased", "experiment=layers_cka"],
            r"experiment\.debiased: .*missing mandatory value",
        ),
    ],
)
def test_blocks_are_checked_against_their_dataclass_schemas(tmp_path, overrides, message):
    """Types, ranges, nested unknown keys and missing keys of the schema-checked blocks (the YAML files hold the
    defaults; a schema holds none, so a key deleted from the YAML is reported, not silently defaulted)."""
    with pytest.raises(ValueError, match=message):
        validate_config(_compose(tmp_path, *overrides))
