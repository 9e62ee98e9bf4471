"""Hand-made segmentation records with per-image evidence (and earlier-run records without), for the tests of
tables, claims and the HTML report."""

from __future__ import annotations

import torch

from harness.eval import ConfusionMatrix, compute_metrics
from harness.eval.bootstrap import BootstrapSettings, metric_intervals
from harness.eval.per_image import PerImageCounter
from harness.eval.record_evidence import headline_by_convention, write_evidence
from harness.results import new_record, write_record

K = 6
CLASS_NAMES = "abcdef"
UNSEEN = (4, 5)
# Not a catalogued dataset: `check` verifies a catalogued one's seen/unseen split against its matrix.


def images(hit: float, n: int = 40, seed: int = 0):
    """n 8x8 (prediction, ground truth) pairs; class 5 never in the ground truth; right with probability `hit`."""
    g = torch.Generator().manual_seed(seed)
    gts = [torch.randint(0, K - 1, (8, 8), generator=g) for _ in range(n)]
    noise = [torch.randint(0, K, (8, 8), generator=g) for _ in range(n)]
    keep = [torch.rand(8, 8, generator=g) < hit for _ in range(n)]
    return [(torch.where(k, gt, z), gt) for gt, z, k in zip(gts, noise, keep)]


def write_segmentation_record(out, method, pairs, dataset="hand_made_6", with_evidence=True, benchmark="bench",
                              extra=None):
    """Evaluate `pairs` as the segmentation task does and write the record (+ matrix, + evidence) under `out`;
    returns (evidence, metrics)."""
    counter = PerImageCounter(K, seen=range(4), unseen=UNSEEN)
    matrix = ConfusionMatrix(K)
    for i, (pred, gt) in enumerate(pairs):
        counter.add(f"{i}.png", pred, gt)
        matrix.update(pred, gt)
    evidence = counter.evidence()
    metrics = compute_metrics(matrix, unseen=UNSEEN, class_names=CLASS_NAMES)
    fields = {"cell": f"{benchmark}/default/{method}", "setting": "default", "task": "segmentation",
              "metrics_by_convention": headline_by_convention(matrix.numpy(), unseen=UNSEEN), **(extra or {})}
    if with_evidence:
        fields["metrics_ci"] = metric_intervals(evidence, settings=BootstrapSettings(resamples=200))
    record = new_record(suite="s", method=method, method_spec={}, benchmark=benchmark, dataset=dataset,
                        profile="smoke", metrics=metrics, miou_convention="d2-v0.6", extra=fields)
    path = out / benchmark / "default" / f"{method}.json"
    if with_evidence:
        path.parent.mkdir(parents=True, exist_ok=True)
        record.update(write_evidence(path, evidence))
    write_record(path, record, confusion=matrix.numpy())
    return evidence, metrics
