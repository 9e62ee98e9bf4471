"""Per-image evidence reproduces the confusion matrix's metrics exactly; bootstrap intervals and paired claims
over images, pinned against independent computations."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from harness.errors import ConfigError
from harness.eval import ConfusionMatrix, compute_metrics
from harness.eval.bootstrap import (
    BootstrapSettings,
    metric_intervals,
    paired_difference,
    pairing_problem,
    resample_weights,
    resampled_metrics,
)
from harness.eval.metrics import metrics_from_counts
from harness.eval.per_image import PerImageCounter, evidence_problem, read_evidence
from harness.eval.record_evidence import write_evidence

IGN = 255


def _images(seed: int, n: int = 9, k: int = 5, hit: float = 0.6):
    """n random 6x7 images over k classes with some ignore pixels; predictions right with probability `hit`."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        gt = torch.randint(0, k, (6, 7), generator=g)
        gt[torch.rand(6, 7, generator=g) < 0.1] = IGN
        pred = torch.where(torch.rand(6, 7, generator=g) < hit, gt.clamp(max=k - 1),
                           torch.randint(0, k, (6, 7), generator=g))
        out.append((pred, gt))
    return out


def _collect(images, k=5, unseen=(3, 4)):
    counter = PerImageCounter(k, IGN, seen=[i for i in range(k) if i not in unseen], unseen=unseen)
    matrix = ConfusionMatrix(k)
    for i, (pred, gt) in enumerate(images):
        counter.add(f"img{i}.png", pred, gt)
        matrix.update(pred, gt)
    return counter.evidence(), matrix.numpy()


def test_hand_computed_counts_of_one_image():
    # valid pixels: gt [0,0,0,1,1,0] vs pred [0,0,1,1,2,0]; class 3 is predicted only on an ignore pixel
    counter = PerImageCounter(4, IGN)
    counter.add("a.png", torch.tensor([0, 0, 1, 1, 2, 3, 3, 0]), torch.tensor([0, 0, 0, 1, 1, IGN, IGN, 0]))
    ev = counter.evidence()
    rows = np.column_stack([ev.cls, ev.inter, ev.pred, ev.gt]).tolist()
    assert rows == [[0, 3, 3, 4], [1, 1, 2, 2], [2, 0, 1, 0]]  # class 3 has no entry: sparse
    assert ev.image.tolist() == [0, 0, 0] and ev.names.tolist() == ["a.png"]


@pytest.mark.parametrize("convention", ["d2-v0.6", "gt-present"])
def test_evidence_reproduces_the_matrix_metrics_exactly(convention):
    ev, matrix = _collect(_images(0))
    tp, pos_gt, pos_pred = ev.totals()
    assert tp.tolist() == np.diag(matrix).tolist()
    assert pos_gt.tolist() == matrix.sum(1).tolist() and pos_pred.tolist() == matrix.sum(0).tolist()
    again = ev.metrics(convention, list("abcde"))
    assert again == compute_metrics(matrix, unseen=[3, 4], convention=convention, class_names="abcde")  # bit-equal


def test_resampled_metric_is_the_metric_of_the_drawn_images():
    ev, _ = _collect(_images(1))
    settings = BootstrapSettings(resamples=200, seed=3)
    weights = resample_weights(ev.n_images, settings)
    assert weights.shape == (200, 9) and (weights.sum(1) == 9).all()
    values = resampled_metrics(ev, weights)
    tp, gt, pred = (m.toarray() for m in ev.matrices())
    for r in (0, 7, 199):  # the metric of the images drawn, summed by hand and computed the ordinary way
        w = weights[r]
        direct = metrics_from_counts(w @ tp, w @ gt, w @ pred, unseen=[3, 4])
        for key in ("miou", "miou_seen", "miou_unseen", "hiou", "pacc"):
            assert values[key][r] == pytest.approx(direct[key], rel=1e-12)
    ci = metric_intervals(ev, settings=settings)
    assert ci["miou"] == pytest.approx(list(np.percentile(values["miou"], [2.5, 97.5])))
    assert ci["miou"][0] < ev.metrics()["miou"] < ci["miou"][1]
    assert (ci["resamples"], ci["level"], ci["seed"], ci["images"]) == (200, 0.95, 3, 9)


def test_identical_images_give_a_zero_width_interval():
    pred, gt = _images(2, n=1)[0]
    ev, _ = _collect([(pred, gt)] * 6)
    ci = metric_intervals(ev, settings=BootstrapSettings(resamples=100))
    point = ev.metrics()
    for key in ("miou", "hiou", "pacc"):
        assert ci[key] == pytest.approx([point[key], point[key]])


def test_paired_claims_hold_fail_or_are_not_significant():
    images = _images(4, n=30, hit=0.3)
    better = [(torch.where(torch.rand(6, 7, generator=torch.Generator().manual_seed(i)) < 0.6,
                           gt.clamp(max=4), p), gt) for i, (p, gt) in enumerate(images)]
    weak, _ = _collect(images)
    strong, _ = _collect(better)
    settings = BootstrapSettings(resamples=300)
    assert pairing_problem(strong, weak) is None
    diff = paired_difference(strong, weak, "miou", settings=settings)
    assert diff.difference == pytest.approx(strong.metrics()["miou"] - weak.metrics()["miou"])
    assert diff.low > 0 and diff.verdict("higher") == "holds" and diff.verdict("lower") == "fails"
    same = paired_difference(weak, weak, "miou", settings=settings)
    assert (same.low, same.high) == (0.0, 0.0) and same.verdict("higher") == "not significant at 95%"
    assert paired_difference(weak, weak, "fps") is None
    other, _ = _collect(images[:29])
    assert "not the same images" in pairing_problem(weak, other)
    assert "no per-image evidence" in pairing_problem(weak, None)


@pytest.mark.parametrize("options, key", [({"resamples": 10}, "resamples"), ({"level": 1.0}, "level"),
                                          ({"seed": -1}, "seed"), ({"resamples": True}, "resamples"),
                                          ({"levl": 0.9}, "levl")])
def test_bootstrap_options_are_checked(options, key):
    with pytest.raises(ConfigError, match=key):
        BootstrapSettings.from_options(options)


def test_check_verifies_the_evidence_file(tmp_path):
    ev, matrix = _collect(_images(5))
    path = tmp_path / "cell.json"
    fields = write_evidence(path, ev)
    assert fields["evidence_bytes"] == (tmp_path / "cell.evidence.npz").stat().st_size
    assert read_evidence(tmp_path / "cell.evidence.npz").names.tolist() == ev.names.tolist()
    metrics = compute_metrics(matrix, unseen=[3, 4], class_names="abcde")
    record = {"metrics": metrics, "miou_convention": "d2-v0.6", **fields, "_path": str(path)}
    path.write_text(json.dumps(record))
    assert evidence_problem(json.loads(path.read_text()) | {"_path": str(path)}) is None
    assert "gives hiou" in evidence_problem({**record, "metrics": {**metrics, "hiou": metrics["hiou"] + 1e-9}})
    assert "covers 9 images, the record 10" in evidence_problem({**record, "evidence_images": 10})
    assert "5 classes" in evidence_problem({**record, "metrics": {**metrics, "per_class_iou": {"a": 1.0}}})
    (tmp_path / "cell.evidence.npz").write_bytes(b"junk")
    assert "cannot be read" in evidence_problem(record)
    (tmp_path / "cell.evidence.npz").unlink()
    assert "is missing" in evidence_problem(record)
    assert evidence_problem({"metrics": metrics}) is None  # an earlier record: nothing to verify
