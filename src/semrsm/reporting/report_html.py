"""The report's HTML: Jinja2 templates (``templates/``) fed with small view objects built here.

The page, its components (``macros.html.j2``: verdict badge, data/model banner, sortable table, figure with its
click-to-enlarge dialog), its stylesheet (``report.css``) and script (``report.js``) are template files; this module
only turns DataFrames and values into view objects. Everything ends up inline in one HTML file and a
Content-Security-Policy forbids any network fetch, so the file opens offline anywhere.
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import jinja2
import numpy as np
import pandas as pd
from markupsafe import Markup

MAX_TABLE_ROWS = 1000
FILTER_MIN_ROWS = 5  # smaller tables get no filter box, unless asked for
LONG_CELL = 48  # characters; longer text cells wrap (never cut)
FAIL_ROW = "fail"
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"
_ids = itertools.count()


@dataclass(frozen=True)
class Estimate:
    """A number with an optional 95 % interval, shown as ``0.123 [0.101, 0.145]`` and sorted by its value;
    ``outcome`` (supports/contradicts) colours the cell."""

    value: float
    low: float = math.nan
    high: float = math.nan
    outcome: str | None = None
    digits: int = 3

    def __str__(self) -> str:
        if math.isnan(self.value):
            return ""
        text = f"{self.value:.{self.digits}f}"
        if math.isnan(self.low) or math.isnan(self.high):
            return text
        return f"{text} [{self.low:.{self.digits}f}, {self.high:.{self.digits}f}]"


@dataclass(frozen=True)
class Cell:
    text: str
    css: str = ""
    sort: str | None = None  # exact numeric value for sorting
    title: str = ""


@dataclass(frozen=True)
class Row:
    cells: list[Cell]
    css: str = ""


@dataclass(frozen=True)
class Header:
    text: str
    title: str
    css: str = ""


@dataclass(frozen=True)
class Group:
    label: str
    span: int
    start: bool


@dataclass(frozen=True)
class TableView:
    """What ``macros.table`` renders: a sortable table with optional column groups and a filter box."""

    id: str
    columns: list[Header]
    rows: list[Row]
    caption: str = ""
    label: str = ""
    note: str = ""
    cut: str = ""
    groups: list[Group] = field(default_factory=list)
    filterable: bool = False
    css: str = ""


def _cell(column: str, value: Any, group_start: bool = False) -> Cell:
    edge = " group-start" if group_start else ""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, Estimate):
        css = {"supports": " yes", "contradicts": " no"}.get(value.outcome or "", "")
        sort = None if math.isnan(value.value) else repr(value.value)
        title = "" if math.isnan(value.low) else "estimate [95 % bootstrap interval]"
        return Cell(str(value), f"num{css}{edge}", sort, title)
    if (
        column in ("holds", "outcome")
        and isinstance(value, bool | str)
        and value in (True, False, "supports", "contradicts")
    ):
        good = value in (True, "supports")
        text = ("yes" if value else "no") if isinstance(value, bool) else value
        return Cell(text, ("yes" if good else "no") + edge)
    if isinstance(value, bool) or value is None:
        return Cell("" if value is None else str(value), edge.strip())
    if isinstance(value, numbers.Integral):
        return Cell(str(int(value)), "num" + edge, str(int(value)))
    if isinstance(value, numbers.Real):
        if math.isnan(value):
            return Cell("", "num" + edge)
        text = f"{value:.4g}" if math.isfinite(value) else str(value)
        return Cell(text, "num" + edge, repr(value))
    text = str(value)
    return Cell(text, ("long" if len(text) > LONG_CELL else "") + edge)


def _label(column: Any) -> str:
    return " · ".join(str(part) for part in column) if isinstance(column, tuple) else str(column)


def table_view(
    table: pd.DataFrame,
    caption: str = "",
    note: str = "",
    max_rows: int = MAX_TABLE_ROWS,
    filterable: bool | None = None,
    css: str = "",
) -> TableView:
    """``table`` as a TableView: numbers right-aligned with their exact value for sorting, Estimate cells with
    their interval, long text wrapped (never cut), at most ``max_rows`` rows. Two-level columns (a MultiIndex,
    or tuples) become a group header row over the column names; a top level of "" leaves the column ungrouped.
    Rows whose ``holds`` is false or whose ``outcome`` is "contradicts" get class ``fail``."""
    shown = table.head(max_rows)
    columns = list(shown.columns)
    grouped = bool(columns) and all(isinstance(column, tuple) and len(column) == 2 for column in columns)
    groups, starts = [], set()
    if grouped:
        for label, run in itertools.groupby(enumerate(columns), key=lambda item: item[1][0]):
            run = list(run)
            start = bool(label) and run[0][0] > 0
            if start:
                starts.add(run[0][0])
            groups.append(Group(str(label), len(run), start))
    names = [column[1] if grouped else column for column in columns]
    headers = [
        Header(str(name), _label(column), "group-start" if index in starts else "")
        for index, (name, column) in enumerate(zip(names, columns, strict=True))
    ]
    rows = []
    for record in shown.astype(object).itertuples(index=False):
        values = dict(zip(names, record, strict=True))  # for the row's holds/outcome (names may repeat)
        failed = ("holds" in values and values["holds"] is False) or values.get("outcome") == "contradicts"
        cells = [
            _cell(str(name), value, index in starts)
            for index, (name, value) in enumerate(zip(names, record, strict=True))
        ]
        rows.append(Row(cells, FAIL_ROW if failed else ""))
    cut = f"(first {max_rows} of {len(table)} rows; see the CSV for all)" if len(table) > max_rows else ""
    return TableView(
        id=f"t{next(_ids)}",
        columns=headers,
        rows=rows,
        caption=caption,
        label=caption,
        note=note,
        cut=cut,
        groups=groups if grouped else [],
        filterable=len(shown) > FILTER_MIN_ROWS if filterable is None else filterable,
        css=css,
    )


def with_cells(view: TableView, column: str, cells: Sequence[Cell]) -> TableView:
    """``view`` with the cells of ``column`` replaced (e.g. by markup such as verdict badges)."""
    index = [header.text for header in view.columns].index(column)
    rows = [
        Row([cell if i != index else cells[r] for i, cell in enumerate(row.cells)], row.css)
        for r, row in enumerate(view.rows)
    ]
    return TableView(**{**view.__dict__, "rows": rows})


@cache
def environment() -> jinja2.Environment:
    """The Jinja2 environment of the report templates (autoescaping on; ``static(name)`` inlines a file)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("semrsm.reporting", "templates"),
        autoescape=jinja2.select_autoescape(["html", "html.j2"], default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )

    def static(name: str) -> Markup:
        source, _, _ = env.loader.get_source(env, name)
        return Markup(source)

    env.globals["static"] = static
    return env


def render(template: str, **context: Any) -> str:
    """Render ``templates/<template>`` with ``context`` (and the CSP)."""
    return environment().get_template(template).render(csp=Markup(CSP), **context)


def macro(name: str, *args: Any) -> str:
    """One component of ``macros.html.j2`` rendered on its own (e.g. ``macro("table", view)``)."""
    return str(getattr(environment().get_template("macros.html.j2").module, name)(*args))


def html_table(table: pd.DataFrame, caption: str = "", max_rows: int = MAX_TABLE_ROWS) -> str:
    """``table`` rendered as the report's sortable table component (see ``table_view``)."""
    return macro("table", table_view(table, caption, max_rows=max_rows))
