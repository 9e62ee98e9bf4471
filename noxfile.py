"""nox sessions.

    nox -s tests                           the test suite (same command as the README and CI)
    nox -s lint                            ruff
    nox -s speed [-- --profile smoke]      the speed suite (the main job)
    nox -s gpu-speed [-- OUT]              issue 24's one-shot GPU check (CUDA tests + speed suite --profile
                                           gpu-check, <= 6 min on one H200; records, tables and a log under OUT,
                                           default results/speed-gpu-h200); installs nothing
    nox -s regress                         smoke suite, speed ratios, MiniWorld Table 3 (~25 min) and the MiniWorld
                                           training-free family (~3 min), checked
                                           against results/reference/
    nox -s reproduce-table3 [-- --profile smoke]   run a table's suite and print it beside the paper's numbers
    nox -s reproduce-training-free [-- --profile miniworld]   the training-free family's main table, likewise

Sessions run in the environment nox itself runs in (install once: `pip install -e '.[dev]'`, then use that
environment's `nox`): one 5 GB torch install serves every session, and pip (not uv) takes the local wheels.
Arguments after `--` go to `python -m harness run` (e.g. `--profile smoke`, `--set key=value`, `--force`).
"""

import sys
from pathlib import Path

import nox

nox.options.sessions = ["lint", "tests"]
PY = sys.executable
SUITES = {
    1: "table1_zero_shot", 2: "table2_cross_dataset", 3: "table3_ablation", 4: "table4_ps", 5: "table5_cal",
    6: "table6_vit_l", 7: "table7_prompts", 8: "table8_recall",
}


def _require_install(session: nox.Session) -> None:
    session.run(PY, "-c", "import harness, methods", silent=True,
                success_codes=[0], external=True)


@nox.session(venv_backend="none")
def tests(session: nox.Session) -> None:
    """The test suite."""
    _require_install(session)
    session.run(PY, "-m", "pytest", "-q", *session.posargs, env={"HF_HUB_OFFLINE": "1"}, external=True)


@nox.session(venv_backend="none")
def lint(session: nox.Session) -> None:
    """ruff over the code and the tests."""
    session.run(PY, "-m", "ruff", "check", "harness", "methods", "tests", "noxfile.py", *session.posargs,
                external=True)


@nox.session(venv_backend="none")
def speed(session: nox.Session) -> None:
    """The speed suite: one-pass DeOP (and the ablation rows) against multi-pass SimBaseline."""
    _require_install(session)
    session.run(PY, "-m", "harness", "run", "suites/speed.yaml", *session.posargs, external=True)


@nox.session(venv_backend="none")
def regress(session: nox.Session) -> None:
    """Accuracy (smoke suite), speed ratios (short speed run) and MiniWorld's Table 3 against the stored
    references (what CI runs after the tests)."""
    _require_install(session)
    out = "runs/regress"
    # One thread: the smoke reference was recorded that way (float reduction order decides a few pixels).
    session.run(PY, "-m", "harness", "run", "suites/smoke.yaml", "--out", f"{out}/smoke", "--no-progress",
                *session.posargs, external=True, env={"OMP_NUM_THREADS": "1"})
    session.run(PY, "-m", "harness", "check", f"{out}/smoke", "--against", "results/reference/smoke-cpu.yaml",
                external=True)
    session.run(PY, "-m", "harness", "run", "suites/speed.yaml", "--profile", "regress", "--out", f"{out}/speed",
                "--no-progress", external=True, env={"OMP_NUM_THREADS": "1"})
    session.run(PY, "-m", "harness", "check", f"{out}/speed", "--against",
                "results/reference/speed-ratio-cpu.yaml", external=True)
    # Trained from scratch with real zero-shot signal: one thread makes it bit-identical to the reference run.
    session.run(PY, "-m", "harness", "run", "suites/table3_ablation.yaml", "--profile", "miniworld", "--out",
                f"{out}/miniworld", "--no-progress", external=True, env={"OMP_NUM_THREADS": "1"})
    session.run(PY, "-m", "harness", "check", f"{out}/miniworld", "--against",
                "results/reference/miniworld-cpu.yaml", external=True)
    # The training-free family on MiniWorld (no training, ~3 min): bands and the published orderings it keeps.
    session.run(PY, "-m", "harness", "run", "suites/training_free.yaml", "--profile", "miniworld", "--out",
                f"{out}/training-free-miniworld", "--no-progress", external=True, env={"OMP_NUM_THREADS": "1"})
    session.run(PY, "-m", "harness", "check", f"{out}/training-free-miniworld", "--against",
                "results/reference/training-free-miniworld-cpu.yaml", external=True)


def _reproduce(number: int):
    def session_fn(session: nox.Session) -> None:
        _require_install(session)
        suite = f"suites/{SUITES[number]}.yaml"
        session.run(PY, "-m", "harness", "run", suite, "--paper", *session.posargs, external=True)

    session_fn.__doc__ = f"Run {SUITES[number]} and print Table {number} beside the paper's numbers."
    session_fn.__name__ = f"reproduce_table{number}"
    return session_fn


for _n in SUITES:
    nox.session(name=f"reproduce-table{_n}", venv_backend="none")(_reproduce(_n))


@nox.session(name="reproduce-training-free", venv_backend="none")
def reproduce_training_free(session: nox.Session) -> None:
    """Run suites/training_free.yaml and print the family's main table beside the published numbers."""
    _require_install(session)
    session.run(PY, "-m", "harness", "run", "suites/training_free.yaml", "--paper", *session.posargs, external=True)


GPU_CHECK_BENCHMARKS = (("vit-b16", 75), ("vit-b16-eager", 55), ("vit-b16-bs32", 65), ("vit-b16-fp32", 45),
                        ("vit-b16-bs8", 50))  # (benchmark of the gpu-check profile, seconds at most): 290 s in all
GPU_CHECK_TESTS = ("tests/harness/test_cuda_speed.py", "tests/methods/test_no_host_sync.py")


@nox.session(name="gpu-speed", venv_backend="none")
def gpu_speed(session: nox.Session) -> None:
    """Issue 24's one-shot GPU check: the CUDA tests, then the speed suite's gpu-check profile (bf16 with CUDA
    graphs and eager, fp32/TF32, throughput at batch 8 and 32; every method, ViT-B/16 as published, random
    weights), then the tables. Bounded to 6 minutes (60 s tests, 290 s for the suite's five benchmarks, each
    bounded on its own: one that runs over loses only its own cells); records, `summary.md`,
    `table.md` and `gpu-speed.log` all under OUT. Re-running resumes (cells with a record are skipped)."""
    _require_install(session)
    out = session.posargs[0] if session.posargs else "results/speed-gpu-h200"
    log = f"{out}/gpu-speed.log"
    session.run("mkdir", "-p", out, external=True)
    session.run(PY, "-c", "import sys, torch; sys.exit(0 if torch.cuda.is_available() else "
                "'gpu-speed needs a CUDA GPU (torch.cuda.is_available() is False)')", external=True)

    failed = Path(out) / "failed-steps.txt"
    failed.unlink(missing_ok=True)

    def logged(command: str, step: str) -> None:  # into the log too; a failed step is noted and the next one runs
        session.run("bash", "-c", f"set -o pipefail; ({command}) 2>&1 | tee -a {log} || echo {step} >> {failed}",
                    external=True, env={"HF_HUB_OFFLINE": "1", "PYTHONPATH": "."})

    logged(f"nvidia-smi; date -u; timeout 60 {PY} -m pytest -q -rs {' '.join(GPU_CHECK_TESTS)}", "cuda-tests")
    # one run per benchmark, most important first, each bounded: one that runs over loses only its own cells
    for benchmark, seconds in GPU_CHECK_BENCHMARKS:
        logged(f"timeout {seconds} {PY} -m harness run suites/speed.yaml --profile gpu-check --device cuda "
               f"--out {out} --only '{benchmark}/*' --no-progress", benchmark)
    logged(f"{PY} -m harness.speed_summary {out} --format md > {out}/summary.md; cat {out}/summary.md", "summary")
    logged(f"{PY} -m harness table {out} --format md > {out}/table.md; cat {out}/table.md", "table")
    if failed.exists():
        session.error(f"failed steps (see {log}): {', '.join(failed.read_text().split())}")
