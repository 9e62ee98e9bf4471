"""Metrics: hand-computed cases for both conventions, and agreement with independent computations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from harness.errors import ConfigError, DataError
from harness.eval import ConfusionMatrix, compute_metrics

IGN = 255


def _matrix(gt, pred, k):
    cm = ConfusionMatrix(k)
    cm.update(torch.tensor(pred), torch.tensor(gt))
    return cm


# valid pixels: gt [0,0,0,1,1,0] vs pred [0,0,1,1,2,0]; class 2 is predicted but absent from the ground truth;
# class 3 is predicted only on ignore pixels, which do not count (official pos_pred uses valid-GT pixels only).
GT = [0, 0, 0, 1, 1, IGN, IGN, 0]
PRED = [0, 0, 1, 1, 2, 3, 3, 0]


def test_hand_computed_d2_convention():
    m = compute_metrics(_matrix(GT, PRED, 4), unseen=[1, 2], convention="d2-v0.6", class_names="abcd")
    # IoU: a = 3/(4+3-3) = 0.75, b = 1/(2+2-1) = 1/3, c = 0 (predicted, absent, counted), d excluded
    assert m["miou"] == pytest.approx((0.75 + 1 / 3 + 0) / 3 * 100)
    assert m["pacc"] == pytest.approx(4 / 6 * 100)
    assert m["per_class_iou"] == pytest.approx({"a": 75.0, "b": 100 / 3, "c": 0.0, "d": None})
    assert m["miou_seen"] == pytest.approx(75.0)  # a (d is neither present nor predicted)
    assert m["miou_unseen"] == pytest.approx((1 / 3 + 0) / 2 * 100)
    assert m["hiou"] == pytest.approx(2 * 75 * (50 / 3) / (75 + 50 / 3))


def test_hand_computed_gt_present_convention():
    m = compute_metrics(_matrix(GT, PRED, 4), unseen=[1, 2], convention="gt-present", class_names="abcd")
    assert m["miou"] == pytest.approx((0.75 + 1 / 3) / 2 * 100)
    assert m["per_class_iou"] == pytest.approx({"a": 75.0, "b": 100 / 3, "c": None, "d": None})
    assert m["miou_unseen"] == pytest.approx(100 / 3)
    assert m["hiou"] == pytest.approx(2 * 75 * (100 / 3) / (75 + 100 / 3))


def test_cross_dataset_metrics_have_no_seen_unseen_keys():
    m = compute_metrics(_matrix(GT, PRED, 4))
    assert set(m) == {"miou", "pacc", "per_class_iou"}
    assert list(m["per_class_iou"]) == ["0", "1", "2", "3"]


def test_empty_and_degenerate_cases():
    m = compute_metrics(_matrix([IGN, IGN], [0, 1], 3), unseen=[2])
    assert m["miou"] is None and m["pacc"] is None and m["hiou"] is None
    assert all(v is None for v in m["per_class_iou"].values())
    # unseen class present but never hit: unseen mIoU 0, so hIoU 0 (the official 1/0 -> inf -> 0)
    m = compute_metrics(_matrix([0, 1, 1], [0, 0, 0], 2), unseen=[1])
    assert m["miou_unseen"] == 0.0 and m["hiou"] == 0.0
    with pytest.raises(ConfigError, match="unknown mIoU convention"):
        compute_metrics(np.eye(2, dtype=np.int64), convention="mmseg")


def _official_evaluator(gt, pred, k, base):
    """METHOD_SPEC §11 transcribed: a (K+1)^2 matrix indexed (K+1)*pred + gt with ignore as class K."""
    gt = np.where(gt == IGN, k, gt)
    conf = np.bincount((k + 1) * pred.reshape(-1) + gt.reshape(-1), minlength=(k + 1) ** 2).reshape(k + 1, k + 1)
    tp = conf.diagonal()[:-1].astype(float)
    pos_gt = conf[:-1, :-1].sum(axis=0).astype(float)
    pos_pred = conf[:-1, :-1].sum(axis=1).astype(float)
    acc_valid, iou_valid = pos_gt > 0, (pos_gt + pos_pred) > 0
    iou = np.full(k, np.nan)
    iou[acc_valid] = tp[acc_valid] / (pos_gt + pos_pred - tp)[acc_valid]
    res = {"miou": 100 * np.sum(iou[acc_valid]) / np.sum(iou_valid), "pacc": 100 * tp.sum() / pos_gt.sum()}
    mask = np.zeros(k, bool)
    mask[base] = True
    s = np.sum(iou[mask][acc_valid[mask]]) / np.sum(iou_valid[mask])
    u = np.sum(iou[~mask][acc_valid[~mask]]) / np.sum(iou_valid[~mask])
    res.update(miou_seen=100 * s, miou_unseen=100 * u, hiou=100 * 2 / (1 / s + 1 / u))
    return res


def _set_logic_iou(gt, pred, k):
    """Per-class IoU from pixel sets, ignoring ignore-GT pixels; NaN where the class is absent from GT."""
    valid = gt != IGN
    out = np.full(k, np.nan)
    for c in range(k):
        g, p = (gt == c) & valid, (pred == c) & valid
        if g.any():
            out[c] = (g & p).sum() / (g | p).sum()
    return out


@pytest.mark.parametrize("seed", range(5))
def test_agrees_with_the_official_formula_and_pixel_set_logic(seed):
    rng = np.random.default_rng(seed)
    k = 9
    unseen = [2, 5, 7]
    gts, preds = [], []
    cm = ConfusionMatrix(k)
    for _ in range(4):  # several images of different sizes, accumulated
        h, w = rng.integers(5, 30, size=2)
        gt = rng.integers(0, k - 1, size=(h, w))  # class 8 never in GT
        gt[rng.random((h, w)) < 0.15] = IGN
        pred = np.where(rng.random((h, w)) < 0.6, gt, rng.integers(0, k, size=(h, w)))
        pred = np.where(pred == IGN, rng.integers(0, k, size=(h, w)), pred)
        cm.update(torch.from_numpy(pred), torch.from_numpy(gt))
        gts.append(gt.reshape(-1))
        preds.append(pred.reshape(-1))
    gt, pred = np.concatenate(gts), np.concatenate(preds)
    ours = compute_metrics(cm, unseen=unseen)
    official = _official_evaluator(gt, pred, k, [c for c in range(k) if c not in unseen])
    for key, value in official.items():
        assert ours[key] == pytest.approx(value, rel=1e-12), key
    per_class = np.array([np.nan if v is None else v / 100 for v in ours["per_class_iou"].values()])
    by_sets = _set_logic_iou(gt, pred, k)
    present = ~np.isnan(by_sets)
    np.testing.assert_allclose(per_class[present], by_sets[present], rtol=1e-12)
    gt_present = compute_metrics(cm, unseen=unseen, convention="gt-present")
    assert gt_present["miou"] == pytest.approx(np.nanmean(by_sets) * 100, rel=1e-12)


def test_confusion_matrix_counts_merge_and_checks():
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 4, size=(2, 3, 16))
    pred = rng.integers(0, 4, size=(2, 3, 16))
    gt[0, 0, :5] = 65535
    cm = ConfusionMatrix(4, ignore_index=65535)
    cm.update(torch.from_numpy(pred), torch.from_numpy(gt))
    valid = gt != 65535
    expected = np.histogram2d(gt[valid], pred[valid], bins=4, range=[[0, 4], [0, 4]])[0].astype(np.int64)
    np.testing.assert_array_equal(cm.numpy(), expected)
    assert cm.matrix.dtype == torch.int64
    other = ConfusionMatrix(4, ignore_index=65535).update(torch.from_numpy(pred), torch.from_numpy(gt))
    np.testing.assert_array_equal((cm + other).numpy(), 2 * expected)
    np.testing.assert_array_equal(cm.numpy(), expected)  # __add__ leaves the operands alone
    np.testing.assert_array_equal(cm.merge(other).all_reduce().numpy(), 2 * expected)  # no process group: no-op
    with pytest.raises(DataError, match="1 ground-truth and 0 predicted pixels are outside 0..3"):
        ConfusionMatrix(4).update(torch.tensor([0, 1]), torch.tensor([4, 255]))
    with pytest.raises(DataError, match="0 ground-truth and 1 predicted"):
        ConfusionMatrix(4).update(torch.tensor([0, 9]), torch.tensor([0, 1]))


@pytest.mark.slow
def test_all_reduce_sums_over_processes(tmp_path):
    import sys

    import torch.multiprocessing as mp

    sys.path.insert(0, str(Path(__file__).parent))  # spawned processes import the worker by module name
    from eval_reduce_worker import reduce_worker

    out = tmp_path / "m.npy"
    mp.spawn(reduce_worker, args=(2, str(tmp_path / "init"), str(out)), nprocs=2, join=True)
    # rank 0 adds (gt 0, pred 0), (gt 0, pred 2); rank 1 adds (gt 1, pred 1), (gt 1, pred 2)
    np.testing.assert_array_equal(np.load(out), [[1, 0, 1], [0, 1, 1], [0, 0, 0]])
