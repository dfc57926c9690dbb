"""The one entry point: runs the stage named by ``experiment.stage`` on the composed Hydra config.

    python experiments/run.py experiment=extract dataset=synthetic backbone=resnet18 backbone.pretrained=false
    python experiments/run.py -m hydra/launcher=joblib experiment=extract backbone=resnet18,resnet50

Results land in ``<run dir>/results`` (see ``semrsm.pipeline.stages``); ``--help`` lists every config option.
A ValueError, FileNotFoundError or NoSpaceError (bad option, missing data, weights or checkpoint, corrupt
file, full disk) is printed as its message alone; its traceback stays in ``<run dir>/results.failed/``.
"""

import logging
import warnings
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from semrsm.pipeline.config import StageError, register_resolvers
from semrsm.pipeline.stages import run_stage
from semrsm.storage import NoSpaceError

register_resolvers()
# Third-party noise that says nothing about the run: Lightning's own deprecation and its advertising tip.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=FutureWarning)
logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(
    lambda record: "Tip:" not in record.getMessage()
)


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        run_stage(cfg, run_dir)
    except (ValueError, FileNotFoundError, NoSpaceError) as error:
        failed = run_dir / "results.failed"
        where = f" (traceback in {failed / 'status.json'})" if (failed / "status.json").is_file() else ""
        raise StageError(f"{type(error).__name__}: {error}{where}") from error


if __name__ == "__main__":
    main()
