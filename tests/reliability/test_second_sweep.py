"""Runs every case of the second sweep's own list (`sweep_cases.py`, the table in SWEEP_2.md): each bad input
ends as it must now, a clear error (exit 2, the message naming the problem) or a safe recovery, never a traceback."""

from pathlib import Path

import pytest

from .sweep_cases import CASES

REPO = Path(__file__).resolve().parents[2]


def test_the_sweep_is_as_large_as_the_issue_asks():
    assert len(CASES) >= 40 and len({c.id for c in CASES}) == len(CASES)
    assert {c.before for c in CASES} <= {"clear", "safe", "traceback", "silent", "bad advice"}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_bad_input_ends_clearly_or_safely(case, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)  # the cases read suites/ and results/; everything they write goes under tmp_path
    code, printed = case.run(tmp_path)
    assert "Traceback" not in printed, printed
    assert code == case.code and case.text in printed, (code, printed[-2000:])


def test_the_table_in_sweep_2_md_lists_every_case_with_its_outcomes():
    table = (Path(__file__).parent / "SWEEP_2.md").read_text(encoding="utf-8")
    for case in CASES:
        assert f"| {case.id} | {case.area} | {case.before} | {case.code}: " in table, case.id
