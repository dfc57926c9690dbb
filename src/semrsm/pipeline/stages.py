"""The stage registry and the one runner every stage goes through.

A stage is ``fn(cfg, ctx) -> dict of scalar summary metrics``, registered by name in a module
``semrsm/pipeline/stage_<name>.py`` (found automatically)::

    @dataclass
    class RetrievalOptions(StageOptions):  # the keys under ``experiment``, typed, with their range checks
        top_k: int = 3

    @register_stage("retrieval", options=RetrievalOptions)
    def retrieval(cfg: DictConfig, ctx: RunContext) -> dict: ...

``run_stage`` dispatches on ``cfg.experiment.stage``: it validates the config, takes the run directory's lock
(a second identical run waits for the first, then finds its results), skips a stage whose results for the same
config are complete (unless ``force``), opens the configured logger on a temporary results directory, runs the
stage, logs its summary and wall time, and publishes ``<run_dir>/results`` only on success. A failed
stage leaves ``<run_dir>/results.failed`` (with status.json and the traceback) and the logger's wandb run
finished; ``results`` is never half-written.

When a launcher started several processes of one run (``torchrun``, SLURM ``srun``: ``RANK`` or
``SLURM_PROCID`` above 0), only rank zero locks, logs and publishes; the other ranks run the stage for its
distributed part (e.g. the Trainer of ``rsm_tiles``) with a disabled logger and leave nothing behind.
"""

from __future__ import annotations

import importlib
import logging
import os
import pkgutil
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, make_dataclass
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from semrsm.pipeline import lineage
from semrsm.pipeline.config import (
    check_schema,
    file_identities,
    validate_config_keys,
    validate_features,
    validate_rsm,
)
from semrsm.pipeline.stage_common import config_choice
from semrsm.reporting.wandb_conventions import invocation_group, run_choices, run_tags
from semrsm.storage import (
    CorruptFileError,
    atomic_write_json,
    content_hash,
    file_lock,
    publish_dir,
    read_json,
)

log = logging.getLogger(__name__)

# Importing these registers the built-in stages: every ``semrsm.pipeline.stage_<name>`` module, so a new stage is
# one new module and needs no edit here or in experiments/run.py.
STAGE_MODULE_PREFIX = "stage_"
# Settings that change neither a stage's inputs nor its results: they do not invalidate finished results (``rsm``:
# how a matching is spread over tiles and processes; the engine's results do not depend on it).
VOLATILE_KEYS = ("logger", "force", "hydra", "rsm")
VOLATILE_FEATURE_KEYS = ("num_workers", "progress_bar", "batch_size", "shard_size")
# The layout of the stages' tables: raised when their columns change (2: ``semantic``/``spatio_semantic`` replaced
# ``invariant``/``non_invariant``), so results finished by an older version are computed again, not misread.
RESULTS_FORMAT = 2


@dataclass
class StageOptions:
    """The ``experiment`` block of a stage without options of its own; a stage with options registers a subclass
    adding them (typed; ranges checked in ``__post_init__``, messages starting with the field name)."""

    name: str
    stage: str


@dataclass(frozen=True)
class RunContext:
    """What a stage may use besides the config: where to write, how to log, where the caches live."""

    run_dir: Path
    output_dir: Path  # the stage's results directory (temporary until the stage succeeds)
    logger: Any  # semrsm.reporting.run_logger.RunLogger (or anything with its interface)
    cache_dir: Path
    force: bool


StageFn = Callable[[DictConfig, RunContext], Mapping[str, Any]]
ChoicesFn = Callable[[DictConfig], Mapping[str, Sequence[str]]]
DEFAULT_USES = ("dataset", "backbone")


@dataclass(frozen=True)
class Stage:
    name: str
    run: StageFn
    options: type[StageOptions]
    uses: tuple[str, ...] = DEFAULT_USES
    choices: ChoicesFn | None = None

    def used_choices(self, cfg: DictConfig) -> dict[str, list[str]]:
        """The config choices this stage's run of ``cfg`` uses, group -> names (Hydra's option names, e.g.
        ``resnet18_synthetic``): the ``uses`` groups' chosen options, replaced by what ``choices`` returns
        (a stage computing several kernels or comparing several matchers lists them)."""
        used = {group: [config_choice(cfg, group)] for group in self.uses}
        if self.choices is not None:
            used.update({group: list(names) for group, names in self.choices(cfg).items()})
        return used


_STAGES: dict[str, Stage] = {}


def register_stage(
    name: str,
    options: type[StageOptions] | Iterable[str] = StageOptions,
    uses: Sequence[str] = DEFAULT_USES,
    choices: ChoicesFn | None = None,
) -> Callable[[StageFn], StageFn]:
    """Decorator registering ``fn`` as stage ``name``; ``options`` the schema of its ``experiment`` block (a
    ``StageOptions`` subclass, or the names of untyped options); ``uses``
    the config groups whose choice it uses (its W&B tags), ``choices`` a function of the config giving the
    names it uses where that is not the group's one choice (e.g. every kernel of ``experiment.kernels``)."""
    unknown = set(uses) - {"dataset", "backbone", "kernel", "matcher"}
    if unknown:
        raise ValueError(f"stage {name!r}: uses names unknown config groups {sorted(unknown)}")

    if isinstance(options, type) and issubclass(options, StageOptions):
        schema = options
    else:
        schema = make_dataclass(f"{name}_options", [(key, Any) for key in options], bases=(StageOptions,))

    def decorate(fn: StageFn) -> StageFn:
        if name in _STAGES and _STAGES[name].run is not fn:
            raise ValueError(f"stage {name!r} is already registered by {_STAGES[name].run.__module__}")
        _STAGES[name] = Stage(name, fn, schema, tuple(uses), choices)
        return fn

    return decorate


def available_stages() -> dict[str, Stage]:
    """All registered stages (importing the built-in stage modules first)."""
    package = importlib.import_module("semrsm.pipeline")
    names = sorted(
        m.name for m in pkgutil.iter_modules(package.__path__) if m.name.startswith(STAGE_MODULE_PREFIX)
    )
    for name in names:
        importlib.import_module(f"semrsm.pipeline.{name}")
    return dict(_STAGES)


def get_stage(name: str) -> Stage:
    stages = available_stages()
    if name not in stages:
        raise ValueError(f"unknown stage {name!r} (experiment.stage); available stages: {sorted(stages)}")
    return stages[name]


def validate_config(cfg: DictConfig) -> Stage:
    """Checks Hydra does not make: a registered stage, its ``experiment`` block against the stage's schema, no
    misspelt keys elsewhere, the shared ``features`` and ``rsm`` blocks against theirs."""
    stage = get_stage(cfg.experiment.stage)
    check_schema(cfg.experiment, stage.options, "experiment")
    validate_config_keys(cfg)
    validate_features(cfg)
    validate_rsm(cfg)
    return stage


def stage_fingerprint(cfg: DictConfig) -> str:
    """Hash of everything in ``cfg`` that can change a stage's results, including the size and modification
    time of every file it names (a retrained checkpoint at the same path invalidates finished results)."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    for key in VOLATILE_KEYS:
        plain.pop(key, None)
    for key in VOLATILE_FEATURE_KEYS:
        plain.get("features", {}).pop(key, None)
    return content_hash({"config": plain, "files": file_identities(plain), "format": RESULTS_FORMAT})


def completed_summary(run_dir: Path, fingerprint: str) -> dict[str, Any] | None:
    """The summary of a finished stage in ``run_dir`` made with the same config, else None (also when its
    record is corrupt: a warning names it, and the stage runs again)."""
    marker = run_dir / "results" / "stage.json"
    if not marker.is_file():
        return None
    try:
        record = read_json(marker)
    except CorruptFileError as error:
        log.warning("%s; running the stage again", error)
        return None
    if not isinstance(record, dict) or record.get("fingerprint") != fingerprint:
        return None
    return record.get("summary")


def launcher_rank() -> int:
    """This process's global rank when a launcher started several processes of one run (torchrun sets
    ``RANK``, SLURM's srun ``SLURM_PROCID``); 0 otherwise."""
    for variable in ("RANK", "SLURM_PROCID"):
        if os.environ.get(variable, "").isdigit():
            return int(os.environ[variable])
    return 0


def run_stage(cfg: DictConfig, run_dir: str | Path) -> dict[str, Any]:
    """Run the stage ``cfg.experiment.stage`` with results under ``<run_dir>/results``; returns its summary."""
    stage = validate_config(cfg)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if (rank := launcher_rank()) > 0:
        return _run_follower(cfg, stage, run_dir, rank)
    waiting = f"another run of stage {stage.name} is using {run_dir}; waiting for it to finish"
    with file_lock(run_dir, waiting=waiting):
        return _run_locked(cfg, stage, run_dir)


def _run_follower(cfg: DictConfig, stage: Stage, run_dir: Path, rank: int) -> dict[str, Any]:
    """``run_stage`` on a rank above zero: the same decision to skip as rank zero (complete results), else the
    stage with a disabled logger in a scratch directory that is removed afterwards; nothing is published."""
    if not cfg.force and (done := completed_summary(run_dir, stage_fingerprint(cfg))) is not None:
        return done
    scratch = run_dir / f"results.rank{rank}-{os.getpid()}"
    make_logger = instantiate(cfg.logger, _partial_=True)
    logger = make_logger(
        out_dir=scratch, config={}, name=f"{cfg.experiment.name}-rank{rank}", mode="disabled"
    )
    try:
        with logger:
            return dict(
                stage.run(
                    cfg, RunContext(run_dir, scratch, logger, Path(cfg.paths.cache_dir), bool(cfg.force))
                )
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _run_locked(cfg: DictConfig, stage: Stage, run_dir: Path) -> dict[str, Any]:
    """``run_stage`` once the run directory's lock is held: no other process is working in ``run_dir``."""
    fingerprint = stage_fingerprint(cfg)
    if not cfg.force and (done := completed_summary(run_dir, fingerprint)) is not None:
        log.info("stage %s already complete in %s (force=true reruns it)", stage.name, run_dir / "results")
        return done
    for stale in run_dir.glob("results.partial-*"):  # left by a killed run (the lock rules out a live one)
        shutil.rmtree(stale, ignore_errors=True)
    work = run_dir / f"results.partial-{os.getpid()}"
    used = stage.used_choices(cfg)
    make_logger = instantiate(cfg.logger, _partial_=True)
    name = cfg.logger.get("name") or f"{cfg.experiment.name}-{run_dir.name}"
    logger = make_logger(
        out_dir=work,
        config=OmegaConf.to_container(cfg, resolve=True),
        name=name,
        group=cfg.logger.get("group") or invocation_group(cfg.experiment.name),
        job_type=cfg.logger.get("job_type") or stage.name,
        tags=run_tags(used, cfg.logger.get("tags") or ()),
        labels=run_choices(used),
    )
    context = RunContext(run_dir, work, logger, Path(cfg.paths.cache_dir), bool(cfg.force))
    start = time.perf_counter()
    try:
        with logger, lineage.recording() as recorded:
            summary = {**stage.run(cfg, context), "stage_wall_time_s": time.perf_counter() - start}
            logger.log_metrics(summary)
            logger.log_lineage(recorded, results=work / "tables", name=name)
            record = {"stage": stage.name, "fingerprint": fingerprint, "summary": summary}
            atomic_write_json(work / "stage.json", record)
    except BaseException:
        publish_dir(work, run_dir / "results.failed")
        raise
    publish_dir(work, run_dir / "results")
    shutil.rmtree(run_dir / "results.failed", ignore_errors=True)
    log.info("stage %s done in %.1f s: %s", stage.name, summary["stage_wall_time_s"], run_dir / "results")
    return summary
