"""Aggregate one-result-file-per-job outputs (e.g. a Hydra multirun directory) into one table.

Each job writes only its own files; aggregation reads them all afterwards, so parallel jobs never share a file.
A job's Hydra overrides (`<job dir>/.hydra/overrides.yaml`) become columns, so every row says which sweep
point it came from. Command line: `python -m semrsm.reporting.aggregate ROOT [--pattern metrics.json]`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from semrsm.storage import atomic_path, atomic_write_text

JOB_COLUMN = "job"
_SCALARS = (str, int, float, bool, type(None))


def _natural_key(path: Path) -> list[Any]:
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in path.parts]


def parse_override(override: str) -> tuple[str, Any]:
    """Split one Hydra override `key=value` (`+`/`++` prefixes dropped, `~key` = None) into (key, value)."""
    if override.startswith("~"):
        return override[1:].split("=", 1)[0], None
    if "=" not in override:
        raise ValueError(f"override {override!r} is not of the form key=value")
    key, raw = override.lstrip("+").split("=", 1)
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return key, raw
    return key, value if isinstance(value, _SCALARS) else raw


def read_overrides(job_dir: str | os.PathLike) -> dict[str, Any]:
    """The Hydra overrides of a job directory as {key: value}; {} when it has no .hydra/overrides.yaml."""
    path = Path(job_dir) / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return {}
    overrides = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    if not isinstance(overrides, list):
        raise ValueError(f"{path} must hold a list of overrides, got {type(overrides).__name__}")
    return dict(parse_override(str(item)) for item in overrides)


def _job_dir(result: Path, root: Path) -> Path:
    """Nearest directory from the result file up to `root` that has .hydra/overrides.yaml, else the file's dir."""
    for directory in [result.parent, *result.parent.parents]:
        if (directory / ".hydra" / "overrides.yaml").is_file():
            return directory
        if directory == root:
            break
    return result.parent


def _finished(result: Path, root: Path) -> bool:
    """False when the nearest status.json (RunLogger's) from the result file up to `root` is not "ok"."""
    for directory in [result.parent, *result.parent.parents]:
        status = directory / "status.json"
        if status.is_file():
            return json.loads(status.read_text(encoding="utf-8")).get("status") == "ok"
        if directory == root:
            break
    return True


def _read_result(path: Path) -> pd.DataFrame:
    if path.suffix == ".csv":
        return pd.read_csv(path)
    if path.suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            data = [data]
        if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
            raise ValueError(f"{path} must hold a JSON object or a list of objects")
        return pd.json_normalize(data, sep=".")
    raise ValueError(f"unsupported result file type {path.suffix!r} (expected .csv or .json): {path}")


def _with_overrides(result: pd.DataFrame, overrides: dict[str, Any], job: str, path: Path) -> pd.DataFrame:
    table = result.copy()
    for key, value in reversed(overrides.items()):
        if key in table.columns:
            if not (table[key].astype(str) == str(value)).all():
                raise ValueError(f"{path}: column {key!r} disagrees with the job's override {key}={value!r}")
            table = table.drop(columns=key)
        table.insert(0, key, value)
    table.insert(0, JOB_COLUMN, job)
    return table


def collect_results(
    root: str | os.PathLike, pattern: str = "metrics.json", exclude: tuple[str, ...] = ()
) -> pd.DataFrame:
    """Read every file matching `pattern` (a glob relative to any directory) under `root` into one table.

    Columns: `job` (the job directory relative to `root`), the job's overrides, then the file's columns (CSV) or
    keys (JSON object or list of objects). Skipped: files inside hidden directories (.hydra), paths in
    `exclude` (relative to `root`), and results of unfinished or failed runs (nearest status.json not "ok").
    Raises FileNotFoundError when `root` is missing or nothing matches.
    """
    base = Path(root)
    if not base.is_dir():
        raise FileNotFoundError(f"results directory does not exist: {base}")
    files = sorted(
        (
            path
            for path in base.rglob(pattern)
            if path.is_file()
            and not any(part.startswith(".") for part in path.relative_to(base).parts)
            and path.relative_to(base).as_posix() not in exclude
            and _finished(path, base)
        ),
        key=_natural_key,
    )
    if not files:
        raise FileNotFoundError(f"no result files matching {pattern!r} under {base}")
    tables = []
    for path in files:
        job_dir = _job_dir(path, base)
        job = job_dir.relative_to(base).as_posix()
        tables.append(_with_overrides(_read_result(path), read_overrides(job_dir), job, path))
    return pd.concat(tables, ignore_index=True, sort=False)


def _markdown_cell(value: Any) -> Any:
    if isinstance(value, str):
        return re.sub(r"\s+", " ", value).replace("|", "\\|")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None  # tabulate's missingval: blank
    return value


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table by pandas' ``DataFrame.to_markdown`` (tabulate): floats to 4
    significant digits, NaN blank, ``|`` escaped and whitespace runs collapsed inside text cells."""
    cells = table.astype(object).map(_markdown_cell)
    cells = cells.astype(object).where(cells.notna(), None)  # map() infers dtypes again: NaN back to None
    cells.columns = [_markdown_cell(str(column)) for column in table.columns]
    return cells.to_markdown(index=False, tablefmt="pipe", floatfmt=".4g", missingval="") + "\n"


def write_table(table: pd.DataFrame, stem: str | os.PathLike) -> tuple[Path, Path]:
    """Atomically write `table` as `<stem>.csv` and `<stem>.md`; returns both paths."""
    csv_path, markdown_path = Path(f"{stem}.csv"), Path(f"{stem}.md")
    with atomic_path(csv_path) as temporary:
        table.to_csv(temporary, index=False)
    atomic_write_text(markdown_path, to_markdown(table))
    return csv_path, markdown_path


def aggregate(
    root: str | os.PathLike, pattern: str = "metrics.json", name: str = "aggregate"
) -> pd.DataFrame:
    """Collect results under `root` and write them to `<root>/<name>.csv` and `.md` (never read back in)."""
    table = collect_results(root, pattern, exclude=(f"{name}.csv", f"{name}.md"))
    write_table(table, Path(root) / name)
    return table


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: aggregate ROOT into ROOT/<name>.csv and .md and print the Markdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", help="directory holding one result file per job (e.g. a multirun sweep dir)")
    parser.add_argument("--pattern", default="metrics.json", help="result file glob (default: metrics.json)")
    parser.add_argument(
        "--name", default="aggregate", help="output file stem inside ROOT (default: aggregate)"
    )
    args = parser.parse_args(argv)
    table = aggregate(args.root, args.pattern, args.name)
    print(to_markdown(table), end="")
    print(f"wrote {Path(args.root) / args.name}.csv and .md ({len(table)} rows)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
