"""Suite definitions for experiments/reproduce.py: a YAML file of Hydra runs, expanded into a list of runs.

A suite (``experiments/suites/<name>.yaml``)::

    description: one line shown when the suite starts
    overrides: [features.progress_bar=false]     # applied to every run, before the run's own
    runs:
      - name: retrieval-scenes                   # unique; part of the run directory's name
        overrides: [experiment=retrieval, dataset=synthetic_scenes, backbone=resnet18_synthetic]
        grid: {kernel: [cosine, linear, rbf]}    # optional: one run per combination, in this order

Each run is one ``python experiments/run.py <overrides>`` with its directory fixed to
``<paths.output_dir>/runs/<experiment>/<suite>.<name>[.<key>=<value>...]``, so a rerun of the suite finds it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import yaml
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from semrsm.pipeline.config import override_dirname, register_resolvers

REPO = Path(__file__).resolve().parents[1]
CONF_DIR = REPO / "conf"
SUITES_DIR = Path(__file__).resolve().parent / "suites"
SUITE_KEYS = {"description", "overrides", "runs"}
RUN_KEYS = {"name", "overrides", "grid"}


@dataclass(frozen=True)
class Run:
    """One Hydra run of a suite: its label, its overrides and its composed config."""

    label: str  # <suite>.<name>[.<key>=<value>...]
    overrides: tuple[str, ...]
    cfg: DictConfig

    @property
    def run_dir(self) -> Path:
        """``<paths.output_dir>/runs/<experiment.name>/<label>`` (the run's ``hydra.run.dir``)."""
        return Path(self.cfg.paths.output_dir) / "runs" / self.cfg.experiment.name / self.label


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    runs: tuple[Run, ...]


def suite_path(suite: str) -> Path:
    """``experiments/suites/<suite>.yaml`` for a suite name, else ``suite`` itself as a path to a YAML file."""
    named = SUITES_DIR / f"{suite}.yaml"
    if named.is_file():
        return named
    path = Path(suite)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path
    available = sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))
    raise FileNotFoundError(
        f"unknown suite {suite!r}: neither {named} nor a YAML file; available: {available}"
    )


def _string_list(value: object, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"{where} must be a list of key=value strings, got {value!r}")
    return value


def _expand_grid(grid: object, where: str) -> list[list[str]]:
    """Override lists of every combination of a ``{key: [values]}`` grid (one empty list when no grid)."""
    if grid is None:
        return [[]]
    if not isinstance(grid, dict) or not grid or not all(isinstance(v, list) and v for v in grid.values()):
        raise ValueError(f"{where}.grid must map keys to non-empty lists of values, got {grid!r}")
    keys = list(grid)
    return [
        [f"{key}={value}" for key, value in zip(keys, values, strict=True)]
        for values in itertools.product(*grid.values())
    ]


def load_suite(suite: str, extra_overrides: tuple[str, ...] = ()) -> Suite:
    """Read a suite and compose the config of each of its runs (``extra_overrides`` last, on every run).

    Composing validates every override before anything runs; a bad one raises naming the run."""
    path = suite_path(suite)
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(spec, dict) or set(spec) - SUITE_KEYS or not isinstance(spec.get("runs"), list):
        raise ValueError(f"{path}: a suite is a mapping with keys {sorted(SUITE_KEYS)} and a list of runs")
    common = _string_list(spec.get("overrides"), f"{path}: overrides")
    register_resolvers()
    runs, labels = [], set()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for index, entry in enumerate(spec["runs"]):
            where = f"{path}: runs[{index}]"
            if not isinstance(entry, dict) or set(entry) - RUN_KEYS or not isinstance(entry.get("name"), str):
                raise ValueError(f"{where} must be a mapping with a name and keys from {sorted(RUN_KEYS)}")
            own = _string_list(entry.get("overrides"), f"{where}.overrides")
            for point in _expand_grid(entry.get("grid"), where):
                label = ".".join([path.stem, entry["name"], *map(override_dirname, point)])
                if label in labels:
                    raise ValueError(f"{where}: run {label!r} appears twice in the suite")
                labels.add(label)
                overrides = (*common, *own, *point, *extra_overrides)
                try:
                    cfg = compose("config", overrides=list(overrides))
                except Exception as error:
                    raise ValueError(f"{where} ({label}): {error}") from error
                runs.append(Run(label, overrides, cfg))
    return Suite(path.stem, str(spec.get("description", "")), tuple(runs))
