"""HTML building blocks of the report: sortable/filterable tables, embedded figures, verdict badges, the page.

Everything is inline (CSS, a few lines of JS, PNGs as base64 data URIs) and a Content-Security-Policy forbids
any network fetch, so the file opens offline anywhere.
"""

from __future__ import annotations

import base64
import html
import itertools
import math
import numbers
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

MAX_TABLE_ROWS = 1000
FILTER_MIN_ROWS = 5  # smaller tables get no filter box
LONG_CELL = 48  # characters; longer text cells are clipped with an ellipsis
FAIL_ROW = ' class="fail"'
_ids = itertools.count()

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"

STYLE = """
:root { --fg: #1f2933; --muted: #616e7c; --line: #d9e2ec; --bg: #f5f7fa; --accent: #2f5d8a; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
  background: var(--bg); }
header { background: #243b53; color: #fff; padding: 18px 32px; }
header h1 { margin: 0 0 4px; font-size: 22px; font-weight: 600; }
header p { margin: 0; color: #bcccdc; }
nav { padding: 8px 32px; background: #fff; border-bottom: 1px solid var(--line); position: sticky; top: 0;
  z-index: 2; }
nav a { margin-right: 16px; color: var(--accent); text-decoration: none; font-weight: 500; }
main { max-width: 1280px; margin: 0 auto; padding: 8px 32px 48px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 16px 20px;
  margin: 18px 0; }
h2 { margin: 0 0 12px; font-size: 19px; }
h3 { margin: 18px 0 8px; font-size: 15px; }
p.note, .muted { color: var(--muted); }
.badge { display: inline-block; min-width: 84px; text-align: center; padding: 2px 10px; border-radius: 12px;
  font-weight: 600; font-size: 12px; text-transform: uppercase; letter-spacing: .03em; }
.badge.confirmed { background: #e3f9e5; color: #18794e; }
.badge.refuted { background: #ffe3e3; color: #b42318; }
.badge.not-run { background: #e4e7eb; color: #52606d; }
.badge.inconclusive { background: #fff3c4; color: #8d6708; }
.badge.failed { background: #ffe3e3; color: #b42318; }
.claim { border-left: 4px solid var(--line); padding: 6px 12px; margin: 10px 0; }
.claim.confirmed { border-color: #3ebd93; }
.claim.refuted { border-color: #ef4e4e; }
.claim.inconclusive { border-color: #f7c948; }
.claim .statement { font-style: italic; color: var(--muted); }
.table-wrap { max-height: 460px; max-width: 100%; width: fit-content; overflow: auto;
  border: 1px solid var(--line); border-radius: 6px; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--line); text-align: left; white-space: nowrap; }
td.num { text-align: right; }
td.long { max-width: 30em; overflow: hidden; text-overflow: ellipsis; }
th { position: sticky; top: 0; background: #f0f4f8; cursor: pointer; user-select: none; }
th[aria-sort=ascending]::after { content: " \\25B2"; font-size: 10px; }
th[aria-sort=descending]::after { content: " \\25BC"; font-size: 10px; }
tr:hover td { background: #f7fafc; }
tr.fail td { background: #fff5f5; }
td.yes { color: #18794e; font-weight: 600; }
td.no { color: #b42318; font-weight: 600; }
.filter { margin: 4px 0 6px; padding: 4px 8px; width: 280px; border: 1px solid var(--line); border-radius: 4px; }
.count { margin-left: 8px; color: var(--muted); font-size: 12px; }
.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(380px, 1fr)); gap: 14px; }
figure { margin: 0; border: 1px solid var(--line); border-radius: 6px; padding: 8px; background: #fff; }
figure img { width: 100%; height: auto; display: block; }
figcaption { color: var(--muted); font-size: 12px; margin-top: 4px; word-break: break-all; }
details { margin: 6px 0; }
summary { cursor: pointer; color: var(--accent); }
pre { background: #f0f4f8; padding: 8px; border-radius: 4px; overflow: auto; max-height: 360px; }
"""

SCRIPT = """
function cellKey(row, column) {
  const cell = row.cells[column];
  return cell.dataset.v !== undefined ? parseFloat(cell.dataset.v) : cell.textContent.trim();
}
function compareKeys(a, b) {
  const aNum = typeof a === "number", bNum = typeof b === "number";
  if (aNum && bNum) return a - b;
  if (aNum !== bNum) return aNum ? -1 : 1;
  return a.localeCompare(b, undefined, {numeric: true});
}
function sortTable(table, column, header) {
  const direction = header.getAttribute("aria-sort") === "ascending" ? -1 : 1;
  table.querySelectorAll("th").forEach(th => th.removeAttribute("aria-sort"));
  header.setAttribute("aria-sort", direction > 0 ? "ascending" : "descending");
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  rows.sort((a, b) => direction * compareKeys(cellKey(a, column), cellKey(b, column)));
  rows.forEach(row => body.appendChild(row));
}
function filterTable(input) {
  const table = document.getElementById(input.dataset.table);
  const terms = input.value.toLowerCase().split(/\\s+/).filter(Boolean);
  let shown = 0;
  for (const row of table.tBodies[0].rows) {
    const text = row.textContent.toLowerCase();
    row.hidden = !terms.every(term => text.includes(term));
    if (!row.hidden) shown += 1;
  }
  input.nextElementSibling.textContent = shown + " of " + table.tBodies[0].rows.length + " rows";
}
document.querySelectorAll("table.sortable").forEach(table => {
  table.querySelectorAll("th").forEach((th, column) =>
    th.addEventListener("click", () => sortTable(table, column, th)));
});
document.querySelectorAll("input.filter").forEach(input =>
  input.addEventListener("input", () => filterTable(input)));
"""


def esc(value: Any) -> str:
    """HTML-escaped text of `value`."""
    return html.escape(str(value), quote=True)


def _cell(column: str, value: Any) -> str:
    if isinstance(value, np.generic):
        value = value.item()
    if column == "holds" and isinstance(value, bool):
        return f'<td class="{"yes" if value else "no"}">{"yes" if value else "no"}</td>'
    if isinstance(value, bool) or value is None:
        return f"<td>{esc('' if value is None else value)}</td>"
    if isinstance(value, numbers.Integral):
        return f'<td class="num" data-v="{int(value)}">{int(value)}</td>'
    if isinstance(value, numbers.Real):
        if math.isnan(value):
            return '<td class="num"></td>'
        text = f"{value:.4g}" if math.isfinite(value) else str(value)
        return f'<td class="num" data-v="{value!r}">{esc(text)}</td>'
    text = str(value)
    if len(text) > LONG_CELL:  # clipped on screen (full text in the tooltip, searchable by the filter)
        return f'<td class="long" title="{esc(text)}">{esc(text)}</td>'
    return f"<td>{esc(text)}</td>"


def html_table(table: pd.DataFrame, caption: str = "", max_rows: int = MAX_TABLE_ROWS) -> str:
    """`table` as a sortable (click a header) HTML table, filterable when longer than FILTER_MIN_ROWS rows.

    At most `max_rows` rows are shown. Numeric cells carry their exact value in `data-v` for sorting; rows of a
    `holds` column that is false, or an `outcome` column that says "contradicts", get class "fail".
    """
    table_id = f"t{next(_ids)}"
    shown = table.head(max_rows)
    header = "".join(f'<th title="sort by {esc(c)}">{esc(c)}</th>' for c in shown.columns)
    rows = []
    for record in shown.astype(object).itertuples(index=False):
        values = dict(zip(shown.columns, record, strict=True))
        failed = ("holds" in values and not values["holds"]) or values.get("outcome") == "contradicts"
        cells = "".join(_cell(column, value) for column, value in values.items())
        rows.append(f"<tr{FAIL_ROW if failed else ''}>{cells}</tr>")
    cut = f" (first {max_rows} of {len(table)} rows; see the CSV for all)" if len(table) > max_rows else ""
    title = f"<h3>{esc(caption)}{esc(cut)}</h3>" if caption or cut else ""
    label = f' aria-label="{esc(caption)}"' if caption else ""
    search = (
        f'<input class="filter" type="search" placeholder="filter rows" data-table="{table_id}">'
        f'<span class="count">{len(shown)} rows</span>'
        if len(shown) > FILTER_MIN_ROWS
        else ""
    )
    return (
        f'{title}{search}<div class="table-wrap"><table class="sortable" id="{table_id}"{label}><thead><tr>{header}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def figure_html(path: Path, caption: str) -> str:
    """The PNG at `path` embedded as a base64 data URI, with a caption."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        f'<figure><img alt="{esc(caption)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{esc(caption)}</figcaption></figure>"
    )


def badge(status: str) -> str:
    """A coloured verdict/status label."""
    return f'<span class="badge {esc(status.replace(" ", "-"))}">{esc(status)}</span>'


def page(title: str, subtitle: str, nav: list[tuple[str, str]], sections: list[str]) -> str:
    """The whole self-contained HTML document."""
    links = "".join(f'<a href="#{esc(anchor)}">{esc(label)}</a>' for anchor, label in nav)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>"
        f"<header><h1>{esc(title)}</h1><p>{esc(subtitle)}</p></header><nav>{links}</nav>"
        f"<main>{''.join(sections)}</main><script>{SCRIPT}</script></body></html>\n"
    )
