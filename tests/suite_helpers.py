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
