"""Running one stage on a tiny config, as the stage tests do: compose with the repo's conf/, run in a tmp root."""

from pathlib import Path

from hydra import compose, initialize_config_dir

from semrsm.pipeline.config import register_resolvers
from semrsm.pipeline.stages import run_stage

CONF = str(Path(__file__).resolve().parents[2] / "conf")


def run_tiny(root: Path, run_name: str, tiny: list[str], *overrides: str) -> tuple[dict, Path]:
    """Compose ``tiny`` + ``overrides`` (paths under ``root``), run the stage in ``root/run_name``; returns
    (summary, results directory)."""
    register_resolvers()
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("config", overrides=[f"paths.root_dir={root}", *tiny, *overrides])
    run_dir = root / run_name
    return run_stage(cfg, run_dir), run_dir / "results"


def rsm_cache_entries(root: Path) -> list[Path]:
    """The finished RSM cache entries under ``root``'s default cache dir."""
    return sorted((root / "outputs" / "cache" / "rsm").glob("*.npz"))
