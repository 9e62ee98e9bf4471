"""Records with per-image evidence: intervals in tables (--ci), both conventions on PC-459 / ADE-847, paired claims
in `check`; records of earlier runs (no evidence) still table and check, their intervals shown as absent."""

from __future__ import annotations

import json

import numpy as np
import pytest
from evidence_records import UNSEEN, images, write_segmentation_record

from harness.__main__ import main
from harness.check import run_check
from harness.eval import compute_metrics, record_evidence
from harness.eval.bootstrap import paired_difference
from harness.results import load_records
from harness.tables import render

_write = write_segmentation_record
_images = images


@pytest.fixture
def run_dir(tmp_path):
    out = tmp_path / "runs"
    strong = _write(out, "strong", _images(0.8))
    weak = _write(out, "weak", _images(0.4))
    _write(out, "old", _images(0.6), with_evidence=False)  # an earlier run: no evidence, no intervals
    return out, strong, weak


def test_tables_show_intervals_and_absent_ones(run_dir):
    out, (strong_ev, strong), _ = run_dir
    records = load_records(out)
    low, high = next(r for r in records if r["method"] == "strong")["metrics_ci"]["hiou"]
    text = render(records, ci="pm")
    row = next(line for line in text.splitlines() if line.startswith("strong"))
    assert f"{strong['hiou']:.1f} ±{(high - low) / 2:.1f}" in row
    assert "±n/a" in next(line for line in text.splitlines() if line.startswith("old"))
    assert "percentile bootstrap interval over images (200 resamples)" in text
    csv = render(records, fmt="csv", ci="interval")
    assert f"{strong['hiou']:.1f} [{low:.1f}, {high:.1f}]" in csv and "[n/a]" in csv
    assert "±" not in render(records)  # intervals only on request


def test_both_conventions_side_by_side_on_pc459(tmp_path, monkeypatch):
    # The hand-made 6-class record stands in for PC-459 (a record naming pc_459 with 6 classes is refused).
    monkeypatch.setattr(record_evidence, "BOTH_CONVENTIONS_DATASETS", ("hand_made_6",))
    out = tmp_path / "runs"
    _, metrics = _write(out, "m", _images(0.5), with_evidence=False)
    record = load_records(out)[0]
    del record["metrics_by_convention"]  # an earlier record: recomputed from its confusion matrix
    matrix = np.load(out / "bench" / "default" / "m.confusion.npy")
    gt_present = compute_metrics(matrix, unseen=UNSEEN, convention="gt-present")["miou"]
    assert gt_present != pytest.approx(metrics["miou"], abs=0.05)  # class 5 is predicted, never in the ground truth
    for rec in (load_records(out)[0], record):
        text = render([rec])
        assert f"{metrics['miou']:.1f} / {gt_present:.1f}" in text
        assert "d2-v0.6 first, then the other convention" in text


def _reference(tmp_path, checks):
    path = tmp_path / "ref.yaml"
    path.write_text(json.dumps({"reference": "t", "checks": checks}))
    return path


def _claim(cell, over, **extra):
    return {"cell": f"bench/default/{cell}", "over": f"bench/default/{over}", "metric": "hiou", "value": 1.0,
            "tolerance": 0.0, "direction": "higher", **extra}


def test_check_states_paired_claims(tmp_path, run_dir):
    out, (strong_ev, strong), (weak_ev, weak) = run_dir
    diff = paired_difference(strong_ev, weak_ev, "hiou")
    assert diff.low > 0
    code, text = run_check(out, _reference(tmp_path, [_claim("strong", "weak", significance=True),
                                                      _claim("strong", "old")]))
    assert code == 0 and "2 of 2 reference figures hold" in text
    assert "holds" in text and f"hiou difference {strong['hiou'] - weak['hiou']:+.2f} [{diff.low:+.2f}, " in text
    assert "not assessed" in text and "no per-image evidence (an earlier run)" in text
    assert "1 of 1 assessed hold significantly, 1 not assessed" in text


def test_significance_asked_fails_a_claim_that_is_not_significant(tmp_path, run_dir):
    out = run_dir[0]
    code, text = run_check(out, _reference(tmp_path, [_claim("weak", "strong", value=0.1, significance=True)]))
    assert code == 1 and "significance asked: paired bootstrap fails: hiou difference -" in text
    code, text = run_check(out, _reference(tmp_path, [_claim("strong", "old", significance=True)]))
    assert code == 1 and "not assessed: no per-image evidence" in text
    code, text = run_check(out, _reference(tmp_path, [_claim("strong", "strong", value=0.5)]))
    assert code == 0 and "not significant at 95%" in text


def test_significance_must_be_a_boolean_on_a_claim(tmp_path, run_dir):
    bad = {"cell": "bench/default/strong", "metric": "hiou", "value": 1.0, "tolerance": 0.0, "direction": "higher",
           "significance": True}
    assert main(["check", str(run_dir[0]), "--against", str(_reference(tmp_path, [bad]))]) == 2
    assert main(["check", str(run_dir[0]), "--against",
                 str(_reference(tmp_path, [_claim("strong", "weak", significance="yes")]))]) == 2
    assert main(["check", str(run_dir[0]), "--against",
                 str(_reference(tmp_path, [_claim("strong", "weak", metric="fps", significance=True)]))]) == 2


def test_table_command_ci_option(run_dir, capsys):
    assert main(["table", str(run_dir[0]), "--ci", "--format", "md"]) == 0
    assert "±" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["table", str(run_dir[0]), "--ci", "wide"])
