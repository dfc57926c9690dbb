"""Hydra adapter: aggregate a sweep's per-job result files when the multirun ends.

Enable it in a config:
    hydra:
      callbacks:
        aggregate:
          _target_: semrsm.reporting.hydra_callback.AggregateResults
          pattern: metrics.json
"""

from __future__ import annotations

from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from semrsm.reporting.aggregate import aggregate


class AggregateResults(Callback):
    """At multirun end, write `<sweep dir>/<name>.csv` and `.md` from every job's `pattern` file."""

    def __init__(self, pattern: str = "metrics.json", name: str = "aggregate") -> None:
        self.pattern = pattern
        self.name = name

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Aggregate the files of every job under hydra.sweep.dir."""
        aggregate(config.hydra.sweep.dir, self.pattern, self.name)
