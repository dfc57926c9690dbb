"""`make reproduce`: run a suite of Hydra runs (experiments/suites/<suite>.yaml) one after another.

    python experiments/reproduce.py                   # SUITE=offline: synthetic data, trained models, every stage
    python experiments/reproduce.py --suite paper     # the paper's datasets and weights (lists what is missing)
    python experiments/reproduce.py --suite smoke     # every stage on minimal sizes (a couple of minutes)
    python experiments/reproduce.py --dry-run         # check assets and list the runs; compute nothing
    python experiments/reproduce.py paths.output_dir=/scratch/out   # overrides for every run

Before computing anything the suite's configs are composed (a bad override fails at once) and every dataset and
backbone weight it needs is checked; missing ones are listed with where to get them (exit code 2). Each run is
the stage experiments/run.py would run, in ``<paths.output_dir>/runs/<experiment>/<suite>.<run>``, executed in
this process inside a Hydra app context (the same config, result columns naming the chosen options): a suite of
dozens of runs then imports PyTorch and Lightning once instead of once per run (about 10 s each on 2 cores). A
run whose results are complete for the same config is not started again, so a killed reproduce resumes where it
stopped. At the end: where every table and figure is, the suite's tables concatenated under
``<paths.output_dir>/reproduce/<suite>/``, the HTML report (python -m semrsm.reporting.report), and a
``verdicts`` run with the claim table. Every W&B run of one invocation shares its group
(``<suite>-<time>-<hex>``; see semrsm.reporting.wandb_conventions).
"""

from __future__ import annotations

import argparse
import logging
import os
import time
import traceback
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from assets import missing_assets
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict
from suite import CONF_DIR, Run, Suite, load_suite

from semrsm.pipeline.config import register_resolvers
from semrsm.pipeline.stages import completed_summary, run_stage, stage_fingerprint, validate_config
from semrsm.reporting import report
from semrsm.reporting.aggregate import write_table
from semrsm.reporting.verdicts_run import log_verdicts
from semrsm.reporting.wandb_conventions import GROUP_ENV, new_group
from semrsm.storage import join_run_tables

EXIT_MISSING_ASSETS = 2


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}"


def _say(text: str) -> None:
    print(text, flush=True)


def is_complete(run: Run) -> bool:
    """Whether ``run`` has finished results for its current config (as experiments/run.py would skip it)."""
    return completed_summary(run.run_dir, stage_fingerprint(run.cfg)) is not None


def execute(run: Run) -> int:
    """Run ``run``'s stage in its run directory, in this process, with the job config and Hydra runtime
    (chosen options) that ``experiments/run.py`` would see; 0, or 1 after printing the error."""
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=list(run.overrides), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    try:
        run_stage(cfg, run.run_dir)
    except Exception as error:  # a failed run is reported, its traceback kept in results.failed/
        traceback.print_exc()
        _say(f"{type(error).__name__}: {error}")
        return 1
    finally:
        HydraConfig.instance().cfg = None
    return 0


def run_suite(suite: Suite) -> bool:
    """Run every incomplete run in order, a progress line per run; False at the first failure."""
    start, total = time.perf_counter(), len(suite.runs)
    for number, run in enumerate(suite.runs, 1):
        prefix = f"[{number:>{len(str(total))}}/{total}] {run.label}"
        if is_complete(run):
            _say(f"{prefix}: already complete, skipped ({run.run_dir / 'results'})")
            continue
        _say(f"{prefix}: running {' '.join(run.overrides)}")
        began = time.perf_counter()
        code = execute(run)
        elapsed, so_far = time.perf_counter() - began, _clock(time.perf_counter() - start)
        if code != 0:
            _say(
                f"{prefix}: FAILED (exit code {code}) after {elapsed:.1f} s; see {run.run_dir}/results.failed"
            )
            return False
        _say(f"{prefix}: done in {elapsed:.1f} s (suite {so_far})")
    _say(f"suite {suite.name}: all {total} runs complete in {_clock(time.perf_counter() - start)}")
    return True


def _files(results: Path, folder: str, suffix: str) -> list[Path]:
    return sorted((results / folder).glob(f"*{suffix}"))


def summarize(suite: Suite) -> Path:
    """Print where every table and figure is; concatenate each table over the suite's runs (column ``run``)
    into ``<output_dir>/reproduce/<suite>/<table>.csv`` (and .md); returns that directory."""
    target = Path(suite.runs[0].cfg.paths.output_dir) / "reproduce" / suite.name
    runs = []
    _say(f"\nResults of suite {suite.name}:")
    for run in suite.runs:
        results = run.run_dir / "results"
        _say(f"  {run.label}: {results}")
        tables = _files(results, "tables", ".csv")
        for table in tables:
            _say(f"    table  {table}")
        for figure in _files(results, "figures", ".png"):
            _say(f"    figure {figure}")
        runs.append((run.label, {table.stem: table for table in tables}))
    target.mkdir(parents=True, exist_ok=True)
    _say(f"Tables of the whole suite (one row set per run, column 'run'): {target}")
    for name, table in sorted(join_run_tables(runs).items()):
        csv_path, _ = write_table(table, target / name)
        _say(f"  {csv_path}")
    return target


def build_report(output_dir: Path) -> int:
    """Build the HTML report of ``output_dir`` (as ``python -m semrsm.reporting.report`` would)."""
    return report.main(["--outputs", str(output_dir)])


def main(argv: list[str] | None = None) -> int:
    """Command line; exit code 0 when the suite completed, 1 on a failed run, 2 on missing assets."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default=os.environ.get("SUITE", "offline"), help="offline | paper | smoke")
    parser.add_argument("--dry-run", action="store_true", help="check assets and list the runs only")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides applied to every run, e.g. paths.*")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    # Third-party noise that says nothing about the run (as experiments/run.py silences it)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=FutureWarning)
    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(
        lambda r: "Tip:" not in r.getMessage()
    )

    suite = load_suite(args.suite, tuple(args.overrides))
    for run in suite.runs:
        validate_config(run.cfg)
    _say(f"suite {suite.name}: {len(suite.runs)} runs. {suite.description}".rstrip())
    missing = missing_assets(suite.runs)
    if missing:
        _say(f"\nsuite {suite.name} cannot run, {len(missing)} asset(s) missing (nothing was computed):")
        for asset in missing:
            _say(f"  - {asset.describe()}")
        return EXIT_MISSING_ASSETS
    if args.dry_run:
        for run in suite.runs:
            state = "complete" if is_complete(run) else "to run"
            _say(f"  {run.label} [{state}]: {' '.join(run.overrides)}")
        return 0
    with invocation_group_env(suite.name) as group:
        _say(f"wandb group of this invocation: {group}")
        if not run_suite(suite):
            return 1
        summarize(suite)
        code = build_report(Path(suite.runs[0].cfg.paths.output_dir))
        verdicts_run(suite, group)
    return code


@contextmanager
def invocation_group_env(suite: str) -> Iterator[str]:
    """``SEMRSM_WANDB_GROUP`` set to this invocation's W&B group (``<suite>-<time>-<hex>``, or the one already
    set) while the suite runs, so every stage run and the verdicts run share it; restored afterwards."""
    before = os.environ.get(GROUP_ENV)
    group = before or new_group(suite)
    os.environ[GROUP_ENV] = group
    try:
        yield group
    finally:
        if before is None:
            os.environ.pop(GROUP_ENV, None)
        else:
            os.environ[GROUP_ENV] = before


def verdicts_run(suite: Suite, group: str) -> Path:
    """Log the ``verdicts`` run of this invocation (the claim table judged on the suite's runs) into
    ``<output_dir>/reproduce/<suite>/verdicts``, with the suite's logger settings; returns that directory."""
    first = suite.runs[0].cfg
    out_dir = Path(first.paths.output_dir) / "reproduce" / suite.name / "verdicts"
    logger = first.logger
    log_verdicts(
        [run.run_dir / "results" for run in suite.runs],
        first.paths.output_dir,
        out_dir,
        group=group,
        mode=logger.mode,
        project=logger.project,
        config={"suite": suite.name},
    )
    _say(f"verdicts run (wandb group {group}, job type verdicts): {out_dir}")
    return out_dir


if __name__ == "__main__":
    raise SystemExit(main())
