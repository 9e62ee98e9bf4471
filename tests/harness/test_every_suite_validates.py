"""Every committed suite, under every profile it names, passes the checks a run makes before it starts (method
options resolve, task options are known). Table 1 once failed here: its speed cells received the segmentation
defaults of the shared profiles."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.runner import check_plan, plan
from harness.suite import load_suite

SUITES = sorted(p for p in (Path(__file__).resolve().parents[2] / "suites").glob("*.yaml")
                if not p.name.startswith("_"))


def _profiles(path: Path) -> list[str]:
    return sorted(load_suite(path).profiles) or ["paper"]


@pytest.mark.parametrize("path,profile", [(p, prof) for p in SUITES for prof in _profiles(p)],
                         ids=lambda v: v.stem if isinstance(v, Path) else v)
def test_suite_validates_under_profile(path, profile):
    cells = plan(load_suite(path, profile=profile))
    assert cells
    check_plan(cells)
    for cell in cells:  # a speed cell takes no segmentation schedule
        if cell.benchmark.task == "speed":
            assert "train" not in cell.task_options and "convention" not in cell.task_options


def test_a_default_no_task_takes_is_named(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("suite: s\ndefaults: {sed: 1}\nmethods: [deop]\n"
                    "benchmarks:\n  - {name: speed, task: speed, options: {classes: synthetic_coco}}\n")
    with pytest.raises(ConfigError, match=r"defaults \['sed'\] are options of no task"):
        plan(load_suite(path))
