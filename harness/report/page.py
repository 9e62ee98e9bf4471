"""The report page: one HTML document with inline CSS and JavaScript, no external resource of any kind.

The script makes every ``table.sortable`` sortable by clicking a header (numbers by value, "-" last; a link's
``#sort=TABLE_ID:COLUMN[:desc]`` opens the page sorted) and marks the
body ``data-ready="1"`` when it has run; a script error is written into ``data-errors`` as well as the console, so
a headless browser's DOM dump shows both (`tests/report`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from ..errors import RecordError
from ..results import atomic_write_text, load_records
from . import sections
from .sections import esc

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em auto;max-width:1400px;color:#1b1b1b;
padding:0 1em}
h1{font-size:1.5em}h2{border-bottom:2px solid #ccd;padding-bottom:.2em;margin-top:2em}h3{margin-bottom:.3em}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:.85em}
th,td{border:1px solid #ccd;padding:.25em .5em;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}
thead th{background:#eef0f8;cursor:pointer;position:sticky;top:0}
thead th.asc::after{content:" \\25B2"}thead th.desc::after{content:" \\25BC"}
table.provenance th{background:#eef0f8;text-align:left}table.provenance td{text-align:left;white-space:normal}
tbody tr:nth-child(even){background:#fafafe}
ul.notes{padding-left:1.2em}li.warning{color:#B00020;font-weight:600}li.note{color:#333}
p.note{color:#444;font-size:.9em}img.chart{max-width:100%;border:1px solid #dde;margin:.5em 0}
nav a{margin-right:1em}div.scroll{overflow-x:auto}small{color:#666;font-weight:normal}
"""

SCRIPT = r"""
(function(){
  function number(text){var v=parseFloat(text);return isNaN(v)?-Infinity:v;}
  function sortBy(table,col,th){
    var body=table.tBodies[0],rows=Array.prototype.slice.call(body.rows);
    var asc=!th.classList.contains('asc');
    var numeric=rows.every(function(r){var t=r.cells[col].textContent.trim();return t==='-'||!isNaN(parseFloat(t));});
    rows.sort(function(a,b){
      var x=a.cells[col].textContent.trim(),y=b.cells[col].textContent.trim();
      var c=numeric?number(x)-number(y):x.localeCompare(y);
      return asc?c:-c;});
    rows.forEach(function(r){body.appendChild(r);});
    Array.prototype.forEach.call(th.parentNode.children,function(h){h.classList.remove('asc','desc');});
    th.classList.add(asc?'asc':'desc');
  }
  document.querySelectorAll('table.sortable').forEach(function(table){
    Array.prototype.forEach.call(table.tHead.rows[0].cells,function(th,col){
      th.addEventListener('click',function(){sortBy(table,col,th);});});
  });
  // a link can carry a sorted view: #sort=TABLE_ID:COLUMN[:desc]
  var m=/^#sort=([\w-]+):(\d+)(:desc)?$/.exec(window.location.hash);
  var target=m&&document.getElementById(m[1]);
  if(target&&target.tHead.rows[0].cells[+m[2]]){
    var th=target.tHead.rows[0].cells[+m[2]];sortBy(target,+m[2],th);if(m[3]){sortBy(target,+m[2],th);}}
  document.body.dataset.sortable=String(document.querySelectorAll('table.sortable').length);
  document.body.dataset.ready='1';
})();
"""

ERROR_TRAP = ("window.addEventListener('error',function(e){var b=document.body||document.documentElement;"
              "b.dataset.errors=(b.dataset.errors||'')+e.message+';';});")


def build_report(run_dirs: list[str | Path]) -> str:
    """The HTML text of the report over the records of every run directory (each loaded and verified as
    `table` and `check` load them)."""
    runs: dict[str, list[dict]] = {}
    for directory in run_dirs:
        records = load_records(directory)
        if not records:
            raise RecordError(f"{directory} holds no records; run a suite first (python -m harness run).")
        runs[str(directory)] = records
    everything = [r for records in runs.values() for r in records]
    tables = "\n".join(sections.paper_tables(run, records, i) for i, (run, records) in enumerate(runs.items()))
    flags = [f"{run}: {line}" for run, records in runs.items() for line in sections.problems(records)]
    per_class = "\n".join(sections.per_class(records, i) for i, records in enumerate(runs.values()))
    body = f"""
<h1>deop-harness report</h1>
<p class="note">Written {esc(datetime.now(UTC).isoformat(timespec="seconds"))} from {len(everything)} records in
{len(runs)} run(s): {esc(", ".join(runs))}.</p>
<nav><a href="#tables">Tables</a><a href="#flags">Flags and warnings</a><a href="#per-class">Per-class IoU</a>
<a href="#speed">Speed</a><a href="#provenance">Provenance</a></nav>
<h2 id="tables">Tables</h2>
<p class="note">Cells: ours (paper, ours - paper) ± half the 95% bootstrap interval over images; n/a where a record
has no per-image evidence (an earlier run). Click a header to sort.</p>
{tables}
<h2 id="flags">Flags and warnings</h2>
{sections._notes(flags, all_warnings=True) if flags else '<p>No failed cells and no flagged speed figures.</p>'}
<h2 id="per-class">Per-class IoU</h2>
{per_class}
<h2 id="speed">Speed</h2>
{sections.speed(everything)}
<h2 id="provenance">Provenance</h2>
{sections.provenance(runs)}
"""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>deop-harness report</title>'
            f"<script>{ERROR_TRAP}</script><style>{STYLE}</style></head>\n<body>{body}"
            f"<script>{SCRIPT}</script></body></html>\n")


def write_report(run_dirs: list[str | Path], path: str | Path) -> Path:
    path = Path(path)
    atomic_write_text(path, build_report(run_dirs))
    return path
