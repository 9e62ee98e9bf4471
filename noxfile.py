"""nox sessions.

    nox -s tests                           the test suite (same command as the README and CI)
    nox -s lint                            ruff
    nox -s speed [-- --profile smoke]      the speed suite (the main job)
    nox -s gpu-speed [-- OUT]              issue 24's one-shot GPU check (CUDA tests + speed suite --profile
                                           gpu-check, <= 6 min on one H200; records, tables and a log under OUT,
                                           default results/speed-gpu-h200); installs nothing; the same as
                                           `PYTHONPATH=. python -m harness.gpu_check [OUT]`
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
    # Both MiniWorld runs as one self-contained HTML page (intervals, per-class IoU, speed, provenance).
    session.run(PY, "-m", "harness", "report", f"{out}/miniworld", f"{out}/training-free-miniworld", "--html",
                f"{out}/report.html", external=True)


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


@nox.session(name="gpu-speed", venv_backend="none")
def gpu_speed(session: nox.Session) -> None:
    """Issue 24's one-shot GPU check (`harness/gpu_check.py`, also runnable as `python -m harness.gpu_check`):
    the CUDA tests, then the speed suite's gpu-check profile one benchmark at a time, each bounded (6 minutes in
    all), then the tables; records, `summary.md`, `table.md` and `gpu-speed.log` under OUT."""
    _require_install(session)
    session.run(PY, "-m", "harness.gpu_check", *session.posargs, external=True,
                env={"HF_HUB_OFFLINE": "1", "PYTHONPATH": "."})
