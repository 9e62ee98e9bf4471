"""`harness run --executor slurm` against a real single-node Slurm (issue 25): the smoke suite's records are
those of a local run (metrics and confusion matrices), a job cancelled mid-stage is finished by re-running the
command with the same records, two runs submitted at once build each shared stage once, and a request the cluster
cannot meet is refused before anything is queued. Two cells of the smoke suite keep it cheap (~15 s locally)."""

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from harness.__main__ import main

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
SUITE = str(ROOT / "suites" / "smoke.yaml")
ONLY = "coco-stuff/*/baseline,coco-stuff/*/deop"
CELLS = ("coco-stuff/default/baseline", "coco-stuff/default/deop")


def run(out: Path, base: Path, *flags: str, only: str = ONLY) -> int:
    (base / "data").mkdir(exist_ok=True)
    return main(["run", SUITE, "--only", only, "--out", str(out), "--cache-dir", str(base / "cache"),
                 "--data-root", str(base / "data"), "--no-progress", *flags])


def records(out: Path) -> dict:
    found = {}
    for cell in CELLS:
        path = out / f"{cell}.json"
        if path.exists():
            record = json.loads(path.read_text())
            found[cell] = (record, np.load(path.with_name(record["confusion_file"])))
    return found


def assert_same_records(got: dict, expected: dict, cells=CELLS) -> None:
    for cell in cells:
        (record, confusion), (ref, ref_confusion) = got[cell], expected[cell]
        assert record["status"] == "ok" and record["metrics"] == ref["metrics"], cell
        np.testing.assert_array_equal(confusion, ref_confusion)
        # (stage hashes are keyed by the data root's fingerprint, which differs between the tests' folders)


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    base = tmp_path_factory.mktemp("local")
    assert run(base / "out", base) == 0
    return records(base / "out")


def manifest_jobs(out: Path) -> list[dict]:
    return json.loads((out / ".slurm" / ".manifest.json").read_text())["jobs"]


def test_smoke_through_slurm_gives_the_local_records(slurm, tmp_path, local, capsys):
    assert run(tmp_path / "out", tmp_path, "--executor", "slurm") == 0
    got = records(tmp_path / "out")
    assert_same_records(got, local)
    jobs = {job["cells"][0]: job for job in manifest_jobs(tmp_path / "out")}
    for cell in CELLS:
        executor = got[cell][0]["executor"]
        assert executor["kind"] == "slurm" and executor["job_id"] == jobs[cell]["job_id"]
        assert executor["node"] and executor["resources"]["cpus_per_task"] == 1
    # the stage job first; the other cell waits for it
    assert jobs[CELLS[1]]["after"] == f"afterok:{jobs[CELLS[0]]['job_id']}"
    assert "DeOP (ours)" in capsys.readouterr().out  # the table
    # re-running submits nothing
    assert run(tmp_path / "out", tmp_path, "--executor", "slurm") == 0
    assert len(manifest_jobs(tmp_path / "out")) == 2


def _wait_for(condition, timeout_s: float, what: str) -> None:
    deadline = time.time() + timeout_s
    while not condition():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def _pid(out: Path) -> int:
    """The stage job's process (its log names it)."""
    log = Path(manifest_jobs(out)[0]["stdout"])
    _wait_for(lambda: log.exists() and ": pid " in log.read_text(), 30, "the stage job's log")
    return int(re.search(r": pid (\d+) on", log.read_text()).group(1))


def test_scancel_mid_stage_then_rerun_gives_the_same_records(slurm, tmp_path, local, capsys):
    out = tmp_path / "out"
    assert run(out, tmp_path, "--executor", "slurm", "--no-wait") == 0
    proposals = tmp_path / "cache" / "proposals"
    _wait_for(lambda: any(proposals.glob("*/spec.json")), 180, "the proposal stage to start")
    ids = [job["job_id"] for job in manifest_jobs(out)]
    # The stage job dies mid-stage (SIGKILL, as a node failure or the end of KillWait would do), then the run is
    # cancelled. A plain scancel would send SIGTERM, which submitit ignores for KillWait seconds (it reads as a
    # preemption notice): the smoke stages are short enough to finish in them, so the test kills the process.
    os.kill(_pid(out), signal.SIGKILL)
    subprocess.run(["scancel", *ids], check=True)
    capsys.readouterr()
    assert main(["status", str(out), "--no-progress"]) == 1  # the killed jobs left no records
    status = capsys.readouterr().out
    assert re.search(r"FAILED coco-stuff/default/\w+: job \S+ ended without a record; log \S+_log.err",
                     status), status
    assert not any(proposals.glob("*/done.json")), "the killed job went on building the stage"
    assert not any((out / f"{cell}.json").exists() for cell in CELLS)
    assert run(out, tmp_path, "--executor", "slurm") == 0  # resubmits the unfinished cells, resumes the stage
    assert len(manifest_jobs(out)) == 4
    assert_same_records(records(out), local)


def test_a_requeued_stage_job_resumes_and_leaves_the_same_records(slurm, tmp_path, local):
    """Preemption as Slurm does it: `scontrol requeue` stops the running job and queues it again (its start is
    then held back; StartTime=now releases it). The job reruns its cell; the stage resumes from its files."""
    out = tmp_path / "out"
    assert run(out, tmp_path, "--executor", "slurm", "--no-wait") == 0
    _wait_for(lambda: any((tmp_path / "cache" / "proposals").glob("*/spec.json")), 180, "the proposal stage")
    leader = manifest_jobs(out)[0]["job_id"]
    subprocess.run(["scontrol", "requeue", leader], check=True)
    # Slurm's SIGTERM is ignored by submitit (a preemption notice); its SIGKILL comes KillWait seconds later, by
    # when a smoke stage may be done: the test delivers it now, so the job dies mid-stage
    os.kill(_pid(out), signal.SIGKILL)
    _wait_for(lambda: "BeginTime" in subprocess.run(["squeue", "-h", "-j", leader, "-o", "%r"], capture_output=True,
                                                    text=True).stdout, 60, "the requeued job to wait")
    assert not any((tmp_path / "cache" / "proposals").glob("*/done.json"))  # killed mid-stage
    subprocess.run(["scontrol", "update", f"jobid={leader}", "StartTime=now"], check=True)
    assert main(["status", str(out), "--no-progress"]) == 0
    got = records(out)
    assert_same_records(got, local)
    assert got[CELLS[0]][0]["executor"]["restarts"] == 1 and len(manifest_jobs(out)) == 2


def test_two_runs_at_once_build_each_shared_stage_once(slurm, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    assert run(first, tmp_path, "--executor", "slurm", "--no-wait", only="coco-stuff/*/baseline") == 0
    assert run(second, tmp_path, "--executor", "slurm", "--no-wait", only="coco-stuff/*/deop") == 0
    assert main(["status", str(first), "--no-progress"]) == 0
    assert main(["status", str(second), "--no-progress"]) == 0
    logs = [Path(job["stdout"]).read_text() + Path(job["stderr"]).read_text()
            for out in (first, second) for job in manifest_jobs(out)]
    built = [m for log in logs for m in re.findall(r"stage (\w+): building (\S+)", log)]
    assert built and len(built) == len(set(built)), built  # no stage built twice
    a = json.loads((first / "coco-stuff/default/baseline.json").read_text())["weights"]["stages"]
    b = json.loads((second / "coco-stuff/default/deop.json").read_text())["weights"]["stages"]
    shared = {k for k in a if a[k] == b.get(k)}
    assert "proposals" in shared  # both used one proposal network, built by one of the two runs
    assert sum(stage == "proposals" for stage, _ in built) == 1


def _queued() -> int:
    return len(subprocess.run(["squeue", "-h"], capture_output=True, text=True).stdout.splitlines())


@pytest.mark.parametrize("flags, why", [
    (["--slurm-cpus", "64"], "Requested node configuration is not available"),
    (["--slurm-partition", "nosuch"], "invalid partition"),
])
def test_a_request_the_cluster_cannot_meet_is_refused_before_submitting(slurm, tmp_path, capsys, flags, why):
    before = _queued()
    assert run(tmp_path / "out", tmp_path, "--executor", "slurm", *flags) == 2
    err = capsys.readouterr().err
    assert "Nothing was submitted" in err and why.lower() in err.lower(), err
    assert _queued() == before and not (tmp_path / "out" / ".slurm").exists()


def test_local_jobs_2_gives_the_sequential_records(tmp_path, local):
    assert run(tmp_path / "out", tmp_path, "--jobs", "2") == 0
    got = records(tmp_path / "out")
    assert_same_records(got, local)
    assert {got[c][0]["executor"]["kind"] for c in CELLS} == {"local"}
