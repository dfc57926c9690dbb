"""The one entry point: runs the stage named by ``experiment.stage`` on the composed Hydra config.

    python experiments/run.py experiment=extract dataset=synthetic backbone=resnet18 backbone.pretrained=false
    python experiments/run.py -m hydra/launcher=joblib experiment=extract backbone=resnet18,resnet50

Results land in ``<run dir>/results`` (see ``semrsm.pipeline.stages``); ``--help`` lists every config option.
"""

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from semrsm.pipeline.config import register_resolvers
from semrsm.pipeline.stages import run_stage

register_resolvers()


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run_stage(cfg, HydraConfig.get().runtime.output_dir)


if __name__ == "__main__":
    main()
