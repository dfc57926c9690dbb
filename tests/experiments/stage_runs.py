"""Running one stage on a tiny config, as the stage tests do: compose with the repo's conf/, run in a tmp root."""

from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir

from semrsm.pipeline.config import register_resolvers
from semrsm.pipeline.feature_store import FeatureSet, ShardedFeatureWriter
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


def tiny_feature_set(root: Path, num_samples: int, tokens: int) -> FeatureSet:
    """A finished feature store entry of random features: "conv" (N, 4, 3, 3) ReLU maps, "tokens" (N, T, 3)."""
    rng = np.random.default_rng(0)
    arrays = {
        "conv": np.maximum(rng.normal(size=(num_samples, 4, 3, 3)), 0).astype(np.float32),
        "tokens": rng.normal(size=(num_samples, tokens, 3)).astype(np.float32),
    }
    layouts = {"conv": "NCHW", "tokens": "NTD"}
    writer = ShardedFeatureWriter(root / "features", {"test": 1}, num_samples, layouts)
    samples = [{"id": f"s{i}", "label": 0, "objects": [], "meta": {}} for i in range(num_samples)]
    writer.add(np.arange(num_samples), arrays, samples)
    return writer.finalize()
