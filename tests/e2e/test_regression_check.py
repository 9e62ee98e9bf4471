"""The stored smoke reference catches a deliberately broken method: DeOP with patch severance switched off
fails the check that the intact DeOP passes (the same cell, the same stored figures)."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.check import run_check

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "results" / "reference" / "smoke-cpu.yaml"
CELL = "coco-stuff/default/deop"


@pytest.fixture(scope="module")
def deop_reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("regress")
    data = yaml.safe_load(REFERENCE.read_text())
    data["checks"] = [c for c in data["checks"] if c["cell"] == CELL]
    assert len(data["checks"]) == 4  # hiou, seen, unseen, pAcc of the DeOP cell
    path = tmp / "deop-only.yaml"
    path.write_text(yaml.safe_dump(data))
    return tmp, path


def _run(tmp: Path, name: str, *extra: str) -> Path:
    out = tmp / name
    cmd = [sys.executable, "-m", "harness", "run", "suites/smoke.yaml", "--only", CELL, "--no-progress",
           "--out", str(out), "--cache-dir", str(tmp / "cache"), "--data-root", str(tmp / "data"), *extra]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    return out


def test_intact_deop_matches_the_stored_reference(deop_reference):
    tmp, reference = deop_reference
    code, text = run_check(_run(tmp, "intact"), reference)
    assert code == 0, text


def test_deop_without_severance_fails_the_check(deop_reference):
    tmp, reference = deop_reference
    code, text = run_check(_run(tmp, "broken", "--set", "methods.deop.options.ps=none"), reference)
    assert code == 1 and "FAIL" in text
