"""Helpers of the reliability sweep: in-process CLI calls (fast: no interpreter or torch start per case)."""

import pytest

from harness.__main__ import main


@pytest.fixture
def cli(capsys):
    """``cli(*args) -> (exit code, stdout, stderr)`` of ``python -m harness ARGS``."""

    def call(*args):
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return call
