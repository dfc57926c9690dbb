"""Hydra adapter: aggregate a sweep's per-job result files when the multirun ends.

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
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from semrsm.reporting.aggregate import aggregate

log = logging.getLogger(__name__)


class AggregateResults(Callback):
    """At multirun end, write `<sweep dir>/<name>.csv` and `.md` from every job's `pattern` file and, if `tables`,
    `<sweep dir>/<table>.csv` and `.md` from every job's `tables/<table>.csv` (one table per logged table name)."""

    def __init__(self, pattern: str = "metrics.json", name: str = "aggregate", tables: bool = True) -> None:
        self.pattern = pattern
        self.name = name
        self.tables = tables

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Aggregate the files of every job under hydra.sweep.dir."""
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
