// Sortable tables (click a header of the last header row), filter boxes, and click-to-enlarge figures.
function cellKey(row, column) {
  const cell = row.cells[column];
  return cell.dataset.v !== undefined ? parseFloat(cell.dataset.v) : cell.textContent.trim();
}
function compareKeys(a, b) {
  const aNum = typeof a === "number" && !isNaN(a), bNum = typeof b === "number" && !isNaN(b);
  if (aNum && bNum) return a - b;
  if (aNum !== bNum) return aNum ? -1 : 1;
  return String(a).localeCompare(String(b), undefined, {numeric: true});
}
document.querySelectorAll("table.sortable").forEach(table => {
  const headers = table.querySelectorAll("thead tr:last-child th");
  headers.forEach((th, column) => th.addEventListener("click", () => {
    const direction = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
    headers.forEach(other => other.removeAttribute("aria-sort"));
    th.setAttribute("aria-sort", direction > 0 ? "ascending" : "descending");
    const rows = Array.from(table.tBodies[0].rows);
    rows.sort((a, b) => direction * compareKeys(cellKey(a, column), cellKey(b, column)));
    rows.forEach(row => table.tBodies[0].appendChild(row));
  }));
});
document.querySelectorAll("input.filter").forEach(input => input.addEventListener("input", () => {
  const rows = document.getElementById(input.dataset.table).tBodies[0].rows;
  const terms = input.value.toLowerCase().split(/\s+/).filter(Boolean);
  let shown = 0;
  for (const row of rows) {
    row.hidden = !terms.every(term => row.textContent.toLowerCase().includes(term));
    shown += row.hidden ? 0 : 1;
  }
  input.nextElementSibling.textContent = shown + " of " + rows.length + " rows";
}));
document.querySelectorAll("button.thumb").forEach(button => button.addEventListener("click", () =>
  document.getElementById(button.dataset.dialog).showModal()));
document.querySelectorAll("dialog.lightbox").forEach(dialog => dialog.addEventListener("click", event => {
  if (event.target === dialog) dialog.close();  // a click on the backdrop closes it
}));
