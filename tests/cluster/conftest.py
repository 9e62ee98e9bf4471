"""The cluster and executor tests (~5 min on 2 cores) run when HARNESS_CLUSTER_TESTS=1, as .ci/run sets after it
starts a Slurm (`.ci/slurm.sh start`); the default `pytest -q` skips them, saying so. Those that need Slurm skip
without one, saying so too. The jobs Slurm starts inherit this environment, so the project and the test doubles are put on
their PYTHONPATH."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONF = Path(os.environ.get("HARNESS_SLURM_DIR", "/tmp/harness-slurm")) / "slurm.conf"


def slurm_problem() -> str | None:
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        return "no Slurm here (sbatch/sinfo not on PATH): start one with `.ci/slurm.sh start`"
    env = dict(os.environ)
    if "SLURM_CONF" not in env and DEFAULT_CONF.exists():
        env["SLURM_CONF"] = str(DEFAULT_CONF)
    done = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, env=env)
    states = done.stdout.split()
    if done.returncode != 0 or not any(s.rstrip("*") in ("idle", "mix", "alloc", "comp") for s in states):
        return (f"Slurm is installed but no node is up (sinfo: {done.stderr.strip() or states}); start the test "
                f"cluster with `.ci/slurm.sh start`")
    return None


@pytest.fixture(autouse=True)
def _cluster_tests_asked_for():
    if os.environ.get("HARNESS_CLUSTER_TESTS") != "1":
        pytest.skip("cluster/executor tests (~5 min): run `.ci/slurm.sh start` then "
                    "`HARNESS_CLUSTER_TESTS=1 pytest -q tests/cluster` (.ci/run does)")


@pytest.fixture
def slurm(monkeypatch):
    problem = slurm_problem()
    if problem:
        pytest.skip(problem)
    if "SLURM_CONF" not in os.environ and DEFAULT_CONF.exists():
        monkeypatch.setenv("SLURM_CONF", str(DEFAULT_CONF))
    path = [str(ROOT), str(ROOT / "tests"), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(path))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
