"""Hydra adapter: one W&B group per sweep, and aggregating a sweep's per-job result files when it ends.

Enabled for every multirun in conf/hydra/default.yaml:
    hydra:
      callbacks:
        aggregate:
          _target_: semrsm.reporting.hydra_callback.AggregateResults

A multirun that stops on a failed job skips the callback; aggregate by hand then:
``python -m semrsm.reporting.aggregate outputs/multirun/<experiment> --pattern 'results/tables/<table>.csv'``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from semrsm.reporting.aggregate import aggregate
from semrsm.reporting.wandb_conventions import GROUP_ENV, new_group

log = logging.getLogger(__name__)


class AggregateResults(Callback):
    """At multirun start, name the sweep's W&B group (``<experiment>-sweep-<time>-<hex>`` in
    ``SEMRSM_WANDB_GROUP``, which the jobs' stage runs use, in this process or in launcher workers started
    after it; a group already set, e.g. by ``make reproduce`` or by hand, is kept). At multirun end, write `<sweep dir>/<name>.csv` and `.md` from every job's `pattern` file and, if `tables`,
    `<sweep dir>/<table>.csv` and `.md` from every job's `tables/<table>.csv` (one table per logged table name)."""

    def __init__(self, pattern: str = "metrics.json", name: str = "aggregate", tables: bool = True) -> None:
        self.pattern = pattern
        self.name = name
        self.tables = tables

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Set the sweep's W&B group for its jobs unless one is set."""
        if not os.environ.get(GROUP_ENV):
            experiment = OmegaConf.select(config, "experiment.name", default="sweep")
            self._group_set = os.environ[GROUP_ENV] = new_group(f"{experiment}-sweep")
            log.info("wandb group of this sweep: %s", self._group_set)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Aggregate the files of every job under hydra.sweep.dir (and unset the sweep's W&B group)."""
        if getattr(self, "_group_set", None) and os.environ.get(GROUP_ENV) == self._group_set:
            del os.environ[GROUP_ENV]
        root = Path(config.hydra.sweep.dir)
        written = {self.name: len(aggregate(root, self.pattern, self.name))}
        if self.tables:
            names = sorted({path.stem for path in root.glob("**/tables/*.csv")} - {self.name})
            for table in names:
                try:
                    written[table] = len(aggregate(root, f"tables/{table}.csv", table))
                except FileNotFoundError:  # only failed or unfinished jobs logged this table
                    log.info("sweep table %s: no finished job logged it", table)
                except ValueError as error:  # one inconsistent table must not cost the sweep its other tables
                    log.warning("sweep table %s not written: %s", table, error)
        for name, rows in written.items():
            log.info("sweep table %s: %d rows", root / f"{name}.csv", rows)
