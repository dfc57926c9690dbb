"""One logged run: wandb (mirror) plus local JSON/CSV/PNG files in the run's output directory (source of truth).

Local layout under `out_dir`:
    config.yaml, config.json   the run's configuration
    metadata.json              git commit, package versions, host, python, torch, device, start/end, wall time
    status.json                running -> ok | failed (with the error and traceback)
    metrics.json               every scalar passed to `log_metrics` (NaN/inf stored as null)
    tables/<name>.csv          every table passed to `log_table`
    figures/<name>.png         every figure passed to `log_figure`
    artifacts.json             every artifact logged (`log_artifact_path`, `log_lineage`): name, type, paths,
                               parents
    wandb/                     the wandb run directory, unless WANDB_DIR is set

W&B conventions (group, job type, tags, the ``choices`` labels, summary keys) are in
``semrsm.reporting.wandb_conventions``; the stage runner passes them in.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import pandas as pd
import wandb
import yaml
from matplotlib.figure import Figure
from pytorch_lightning.loggers import WandbLogger

from semrsm.reporting.metadata import git_info, run_metadata
from semrsm.reporting.wandb_conventions import artifact_name
from semrsm.storage import atomic_path, atomic_write_json, atomic_write_text, to_jsonable

MODES = ("online", "offline", "disabled")
CHECKSUM_LIMIT = 2**30  # referenced files up to 1 GiB are checksummed (read, not uploaded)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def resolve_mode(mode: str) -> str:
    """The wandb mode to use: the WANDB_MODE environment variable if set, else `mode`; one of MODES."""
    from_env = os.environ.get("WANDB_MODE")
    chosen = from_env or mode
    if chosen not in MODES:
        source = "environment variable WANDB_MODE" if from_env else "mode"
        raise ValueError(f"{source} must be one of {MODES}, got {chosen!r}")
    return chosen


def _check_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"{what} must match {_NAME.pattern} (letters, digits, _ . -), got {name!r}")
    return name


def _plain_config(config: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(config, Mapping):
        raise ValueError(f"config must be a mapping, got {type(config).__name__}")
    return to_jsonable(config)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class RunLogger:
    """Context manager for one run: starts wandb on enter, finishes it on exit (exit code 1 on an exception).

    `mode` is "offline" (default, no account needed), "online" (needs `wandb login` or WANDB_API_KEY; never
    prompts) or "disabled"; the WANDB_MODE environment variable overrides it. The wandb directory is WANDB_DIR
    if set, else `out_dir`. Local files are written atomically and are the source of truth. Tables, figures and
    history go to the run through Lightning's ``WandbLogger`` (rank zero only under a launcher), the summary
    metrics to the run's summary.
    """

    def __init__(
        self,
        out_dir: str | os.PathLike,
        config: Mapping[str, Any],
        mode: str = "offline",
        project: str = "semrsm",
        group: str | None = None,
        job_type: str | None = None,
        name: str | None = None,
        tags: Sequence[str] = (),
        labels: Mapping[str, str] | None = None,
        artifact_file_limit_mb: float = 20.0,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.config = _plain_config(config)
        self.mode = resolve_mode(mode)
        if isinstance(tags, str) or not all(isinstance(tag, str) and tag for tag in tags):
            raise ValueError(f"tags must be a sequence of non-empty strings, got {tags!r}")
        self.project, self.group, self.job_type, self.name, self.tags = (
            project,
            group,
            job_type,
            name,
            list(tags),
        )
        if labels is not None and not all(isinstance(v, str) for v in dict(labels).values()):
            raise ValueError(f"labels must map names to strings, got {labels!r}")
        self.labels = dict(labels or {})
        if not isinstance(artifact_file_limit_mb, int | float) or artifact_file_limit_mb < 0:
            raise ValueError(f"artifact_file_limit_mb must be a number >= 0, got {artifact_file_limit_mb!r}")
        self.artifact_file_limit = int(artifact_file_limit_mb * 2**20)
        self._metrics: dict[str, Any] = {}
        self._artifacts: list[dict[str, str]] = []
        self._metadata: dict[str, Any] = {}
        self._run: Any = None
        self._lightning: WandbLogger | None = None  # Lightning's logger on the run: tables, figures, history
        self._started: float | None = None

    @property
    def metrics(self) -> dict[str, Any]:
        """A copy of every metric logged so far."""
        return dict(self._metrics)

    def __enter__(self) -> RunLogger:
        if self._started is not None:
            raise RuntimeError("a RunLogger can be entered only once; create a new one per run")
        self._started = time.perf_counter()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.out_dir / "config.yaml", yaml.safe_dump(self.config, sort_keys=False))
        atomic_write_json(self.out_dir / "config.json", self.config)
        self._metadata = {
            **run_metadata(),
            "wandb": {
                "mode": self.mode,
                "project": self.project,
                "group": self.group,
                "job_type": self.job_type,
            },
            "name": self.name,
            "tags": self.tags,
            "choices": self.labels,
            "started": _now(),
        }
        atomic_write_json(self.out_dir / "metadata.json", self._metadata)
        atomic_write_json(
            self.out_dir / "status.json", {"status": "running", "started": self._metadata["started"]}
        )
        try:
            self._run = self._start_wandb()
            self._lightning = WandbLogger(experiment=self._run, log_model=False)
        except BaseException as error:
            self._write_final_status(error)
            raise
        return self

    def _start_wandb(self) -> Any:
        if self.mode == "online" and not wandb.login(prompt=False, verify=False):
            raise RuntimeError(
                "wandb mode 'online' needs credentials: run `wandb login` or set WANDB_API_KEY, "
                "or use mode=offline (sync later with `wandb sync`)"
            )
        root = git_info()["root"]
        settings = wandb.Settings(
            console="off", silent=True, **({"git_root": root} if root else {"disable_git": True})
        )
        return wandb.init(
            project=self.project,
            group=self.group,
            job_type=self.job_type,
            name=self.name,
            tags=self.tags,
            config={**self.config, "choices": self.labels} if self.labels else self.config,
            dir=os.environ.get("WANDB_DIR") or str(self.out_dir),
            mode=self.mode,
            reinit="finish_previous",
            settings=settings,
        )

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        try:
            self._write_final_status(exc)
        finally:
            run, self._run = self._run, None
            if run is not None:
                run.finish(exit_code=0 if exc is None else 1)
        return False

    def _write_final_status(self, error: BaseException | None) -> None:
        """status.json "ok" or "failed" (with the error): never left saying "running". If it cannot be
        written (a full disk), the "running" file is removed and the write error raised."""
        finished = _now()
        wall_time = time.perf_counter() - self._started
        self._metadata.update(finished=finished, wall_time_s=wall_time)
        status: dict[str, Any] = {"status": "ok" if error is None else "failed", "finished": finished}
        if error is not None:
            status["error"] = f"{type(error).__name__}: {error}"
            status["traceback"] = "".join(traceback.format_exception(error))
        try:
            atomic_write_json(self.out_dir / "status.json", status)
            atomic_write_json(self.out_dir / "metadata.json", self._metadata)
        except OSError:
            (self.out_dir / "status.json").unlink(missing_ok=True)
            if error is None:
                raise

    def _active_run(self) -> Any:
        if self._run is None:
            raise RuntimeError("RunLogger is not active: use it as `with RunLogger(...) as logger:`")
        return self._run

    def log_metrics(self, metrics: Mapping[str, Any]) -> None:
        """Record scalar metrics (numbers, bools, strings): wandb summary and local metrics.json."""
        run = self._active_run()
        scalars: dict[str, Any] = {}
        for key, value in metrics.items():
            if not isinstance(key, str) or not key:
                raise ValueError(f"metric names must be non-empty strings, got {key!r}")
            scalar = value.item() if hasattr(value, "item") and getattr(value, "ndim", 0) == 0 else value
            if not isinstance(scalar, bool | int | float | str):
                raise ValueError(f"metric {key!r} must be a scalar, got {type(value).__name__}")
            scalars[key] = scalar
        self._metrics.update(scalars)
        atomic_write_json(self.out_dir / "metrics.json", self._metrics)
        run.summary.update(scalars)

    def log_table(self, name: str, table: pd.DataFrame) -> Path:
        """Write `table` to tables/<name>.csv and log it as a wandb.Table; returns the CSV path."""
        self._active_run()
        _check_name(name, "table name")
        if not isinstance(table, pd.DataFrame):
            raise ValueError(f"table {name!r} must be a pandas DataFrame, got {type(table).__name__}")
        path = self.out_dir / "tables" / f"{name}.csv"
        with atomic_path(path) as temporary:
            table.to_csv(temporary, index=False)
        self._lightning.log_table(key=name, dataframe=table)
        return path

    def log_figure(self, name: str, figure: Figure) -> Path:
        """Save `figure` to figures/<name>.png and log it as a wandb.Image; returns the PNG path."""
        self._active_run()
        _check_name(name, "figure name")
        if not isinstance(figure, Figure):
            raise ValueError(f"figure {name!r} must be a matplotlib Figure, got {type(figure).__name__}")
        path = self.out_dir / "figures" / f"{name}.png"
        with atomic_path(path) as temporary:
            figure.savefig(temporary, format="png")
        self._lightning.log_metrics({name: wandb.Image(str(path))})
        return path

    def log_history(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Log ``rows`` (scalar dicts) as successive history steps of the wandb run, for line charts against
        one of their keys (e.g. CKA against spatial size). Locally the stage's tables hold the same values."""
        self._active_run()
        for row in rows:
            if not isinstance(row, Mapping) or not row:
                raise ValueError(f"history rows must be non-empty mappings of scalars, got {row!r}")
            for key, value in row.items():
                if not isinstance(key, str) or not key or not isinstance(value, bool | int | float | str):
                    raise ValueError(f"history row {dict(row)!r}: {key!r} must name a scalar")
            self._lightning.log_metrics(dict(row))

    def lightning_logger(self) -> Any:
        """A Lightning ``WandbLogger`` writing into this run (history scalars, native line charts), or None
        when wandb is disabled."""
        self._active_run()
        return None if self.mode == "disabled" else self._lightning

    def _artifact(self, name: str, artifact_type: str, metadata: Mapping[str, Any] | None = None) -> Any:
        _check_name(name, "artifact name")
        return wandb.Artifact(name=name, type=artifact_type, metadata=to_jsonable(dict(metadata or {})))

    def _add_path(self, artifact: Any, source: Path, reference: bool) -> None:
        """Add ``source`` to ``artifact``: a file:// reference (nothing copied; a file's checksum is computed
        up to CHECKSUM_LIMIT, beyond that and for directories the path identifies it: the caches' paths hold
        their content keys) or the file itself."""
        if reference:
            hashed = source.is_file() and source.stat().st_size <= CHECKSUM_LIMIT
            artifact.add_reference(source.resolve().as_uri(), name=source.name, checksum=hashed)
        elif source.is_dir():
            artifact.add_dir(str(source))
        else:
            artifact.add_file(str(source))

    def _record_artifact(self, entry: dict[str, Any]) -> None:
        self._artifacts.append(entry)
        atomic_write_json(self.out_dir / "artifacts.json", self._artifacts)

    def log_artifact_path(self, path: str | os.PathLike, name: str, artifact_type: str = "result") -> None:
        """Log an existing file or directory as a wandb artifact and list it in artifacts.json."""
        run = self._active_run()
        _check_name(name, "artifact name")
        source = Path(path)
        if not source.exists():
            raise FileNotFoundError(f"artifact path does not exist: {source}")
        if self.mode != "disabled":
            artifact = self._artifact(name, artifact_type)
            self._add_path(artifact, source, reference=False)
            run.log_artifact(artifact)
        self._record_artifact({"name": name, "type": artifact_type, "path": str(source.resolve())})

    def log_lineage(self, lineage: Any, results: str | os.PathLike, name: str) -> None:
        """Log the artifacts of a stage run: every item of ``lineage`` (``semrsm.pipeline.lineage.Lineage``:
        checkpoint, feature store entry, RSM cache entries; referenced, not uploaded) and a ``results``
        artifact of the CSV tables under ``results`` (stored when at most the artifact file limit, else
        referenced), whose parents are the RSM entries (else the features, else the checkpoint). Each
        artifact's metadata names its parents (``derived_from``). All are logged as the run's outputs (an
        artifact another run logged with the same content is the same version): wandb cannot record input
        artifacts of an offline run, so the chain lives in ``derived_from``, the same online and offline."""
        run = self._active_run()
        items = list(lineage.items.values())
        parents = next(
            (lineage.names(kind) for kind in ("rsm", "features", "model") if lineage.names(kind)), []
        )
        tables = sorted(Path(results).glob("*.csv")) if Path(results).is_dir() else []
        for item in items:
            missing = [str(p) for p in item.references + item.files if not p.exists()]
            if missing:
                raise FileNotFoundError(f"artifact {item.name}: {missing} do(es) not exist")
            self._record_artifact(
                {
                    "name": item.name,
                    "type": item.type,
                    "path": [str(p) for p in item.references],
                    "derived_from": list(item.parents),
                }
            )
            if self.mode == "disabled":
                continue
            artifact = self._artifact(
                item.name, item.type, {**item.metadata, "derived_from": list(item.parents)}
            )
            for path in item.references:
                self._add_path(artifact, path, reference=True)
            for path in item.files:
                self._add_path(artifact, path, reference=False)
            run.log_artifact(artifact)
        if not tables:
            return
        results_name = artifact_name("results", name)
        self._record_artifact(
            {
                "name": results_name,
                "type": "results",
                "path": [str(p) for p in tables],
                "derived_from": parents,
            }
        )
        if self.mode == "disabled":
            return
        artifact = self._artifact(results_name, "results", {"derived_from": parents})
        for table in tables:
            self._add_path(artifact, table, reference=table.stat().st_size > self.artifact_file_limit)
        run.log_artifact(artifact)
