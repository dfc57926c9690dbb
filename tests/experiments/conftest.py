"""Composing a config as ``experiments/run.py`` sees it: inside a Hydra app, with its runtime (the chosen config
options) set, and the ``hydra`` node removed from the job's config."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from semrsm.pipeline.config import register_resolvers

CONF = str(Path(__file__).resolve().parents[2] / "conf")


@pytest.fixture
def compose_in_app():
    """``compose_in_app(*overrides)`` -> the job config of a Hydra app run with ``overrides``."""

    def make(*overrides):
        register_resolvers()
        with initialize_config_dir(config_dir=CONF, version_base="1.3"):
            cfg = compose("config", overrides=list(overrides), return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            del cfg["hydra"]
        return cfg

    yield make
    HydraConfig.instance().cfg = None
