"""nox sessions: `nox -s tests`, `nox -s lint` (later: speed, regress, reproduce-table1..8).

Each session installs the project with plain pip into its own venv (uv/poetry would ignore the local torch
wheels and download gigabytes). Pass extra arguments after `--`, e.g. `nox -s tests -- -k suite`.
"""

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "tests"]


def _install(session: nox.Session) -> None:
    session.install("-e", ".[dev]")


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite (the same command as README and CI)."""
    _install(session)
    session.run("pytest", "-q", *session.posargs, env={"HF_HUB_OFFLINE": "1"})


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the code and the tests."""
    session.install("ruff")
    session.run("ruff", "check", "harness", "methods", "tests", "noxfile.py", *session.posargs)
