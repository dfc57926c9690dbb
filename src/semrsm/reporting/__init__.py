"""Reporting: the wandb + local-files run logger, figures, and aggregation of per-job results."""

from semrsm.reporting.aggregate import aggregate, collect_results, read_overrides, to_markdown, write_table
from semrsm.reporting.run_logger import RunLogger

__all__ = ["RunLogger", "aggregate", "collect_results", "read_overrides", "to_markdown", "write_table"]
