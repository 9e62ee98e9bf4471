import json
from pathlib import Path

BASIC = """\
suite: demo
table: null_table
defaults: {seed: 0}
methods:
  - double-echo
  - {name: strong, method: double-echo, options: {score: 80.0}}
benchmarks:
  - {name: coco-stuff, task: double-task, dataset: double-data, options: {offset: 2.0}}
  - {name: voc, task: double-task}
profiles:
  smoke: {benchmarks.coco-stuff.options.offset: 5.0, methods.strong.options.score: 70.0}
"""


def write(tmp_path: Path, text: str, name: str = "suite.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def records_by_cell(out: Path) -> dict[str, tuple]:
    """cell id -> (status, metrics, executor kind) of every record under ``out``."""
    found = {}
    for path in sorted(out.rglob("*.json")):
        record = json.loads(path.read_text())
        found[record["cell"]] = (record["status"], record["metrics"], record.get("executor", {}).get("kind"))
    return found
