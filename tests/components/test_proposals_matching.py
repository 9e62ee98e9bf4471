"""Hungarian matcher, set criterion, targets and semantic inference against independent numpy computations."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from methods.components.proposals import (
    HungarianMatcher,
    SetCriterion,
    semantic_inference,
    targets_from_semantic,
)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _focal_np(logit: np.ndarray, target: np.ndarray, alpha: float = 0.25, gamma: float = 2.0) -> float:
    """Per-pixel mean sigmoid focal loss of one mask (RetinaNet definition)."""
    p = _sigmoid(logit)
    ce = -(target * np.log(p) + (1 - target) * np.log(1 - p))
    p_t = p * target + (1 - p) * (1 - target)
    a_t = alpha * target + (1 - alpha) * (1 - target)
    return float((a_t * ce * (1 - p_t) ** gamma).mean())


def _dice_np(logit: np.ndarray, target: np.ndarray) -> float:
    p = _sigmoid(logit).ravel()
    t = target.ravel()
    return float(1 - (2 * (p * t).sum() + 1) / (p.sum() + t.sum() + 1))


def _cost_np(logits, mask_logits, labels, masks, w_class=1.0, w_focal=20.0, w_dice=1.0) -> np.ndarray:
    prob = _softmax(logits)
    q, t = len(logits), len(labels)
    cost = np.zeros((q, t))
    for i in range(q):
        for j in range(t):
            cost[i, j] = (-w_class * prob[i, labels[j]] + w_focal * _focal_np(mask_logits[i], masks[j])
                          + w_dice * _dice_np(mask_logits[i], masks[j]))
    return cost


def _random_case(seed: int, q: int = 5, t: int = 3, k: int = 4, size: int = 6):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(q, k + 1, generator=g) * 2
    mask_logits = torch.randn(q, size, size, generator=g) * 3
    labels = torch.randperm(k, generator=g)[:t]
    masks = torch.rand(t, size, size, generator=g) > 0.5
    return logits, mask_logits, labels, masks


def test_cost_matrix_matches_numpy() -> None:
    logits, mask_logits, labels, masks = _random_case(0)
    cost = HungarianMatcher().cost_matrix(logits, mask_logits, labels, masks).numpy()
    expected = _cost_np(logits.numpy(), mask_logits.numpy(), labels.numpy(), masks.numpy().astype(np.float64))
    np.testing.assert_allclose(cost, expected, rtol=1e-5, atol=1e-5)


def test_cost_matrix_resizes_ground_truth_nearest() -> None:
    logits, mask_logits, labels, masks = _random_case(1, size=4)
    big = masks.repeat_interleave(4, dim=1).repeat_interleave(4, dim=2)  # 16x16: nearest back to 4x4 is exact
    matcher = HungarianMatcher()
    assert torch.allclose(matcher.cost_matrix(logits, mask_logits, labels, big),
                          matcher.cost_matrix(logits, mask_logits, labels, masks))


@pytest.mark.parametrize("seed", range(6))
def test_matcher_is_optimal_against_brute_force(seed: int) -> None:
    q, t = (5, 3) if seed % 2 else (4, 4)
    logits, mask_logits, labels, masks = _random_case(seed, q=q, t=t)
    cost = _cost_np(logits.numpy(), mask_logits.numpy(), labels.numpy(), masks.numpy().astype(np.float64))
    best = min(sum(cost[qi, j] for j, qi in enumerate(perm)) for perm in itertools.permutations(range(q), t))
    outputs = {"pred_logits": logits[None], "pred_masks": mask_logits[None]}
    (rows, cols), = HungarianMatcher()(outputs, [{"labels": labels, "masks": masks}])
    assert sorted(cols.tolist()) == list(range(t)) and len(set(rows.tolist())) == t
    assert cost[rows.numpy(), cols.numpy()].sum() == pytest.approx(best, abs=1e-4)


def test_matcher_handles_images_without_segments() -> None:
    logits, mask_logits, _, _ = _random_case(2)
    empty = {"labels": torch.zeros(0, dtype=torch.int64), "masks": torch.zeros(0, 6, 6, dtype=torch.bool)}
    (rows, cols), = HungarianMatcher()({"pred_logits": logits[None], "pred_masks": mask_logits[None]}, [empty])
    assert rows.numel() == 0 and cols.numel() == 0


def test_criterion_matches_numpy_with_official_weights() -> None:
    k, q = 4, 5
    cases = [_random_case(10 + i, q=q, t=t, k=k) for i, t in enumerate((3, 2))]
    logits = torch.stack([c[0] for c in cases])
    masks_pred = torch.stack([c[1] for c in cases])
    targets = [{"labels": c[2], "masks": c[3]} for c in cases]
    aux = {"pred_logits": logits.flip(1), "pred_masks": masks_pred.flip(1)}
    outputs = {"pred_logits": logits, "pred_masks": masks_pred, "aux_outputs": [aux]}
    crit = SetCriterion(num_classes=k, num_aux=1)
    losses = crit(outputs, targets)
    assert set(losses) == {"loss_ce", "loss_mask", "loss_dice", "loss_ce_0", "loss_mask_0", "loss_dice_0"}

    def expected(out) -> dict[str, float]:
        num_masks = sum(len(t["labels"]) for t in targets)
        ce_num = ce_den = focal = dice = 0.0
        for b, tgt in enumerate(targets):
            lg, ml = out["pred_logits"][b].numpy(), out["pred_masks"][b].numpy()
            lab, msk = tgt["labels"].numpy(), tgt["masks"].numpy().astype(np.float64)
            cost = _cost_np(lg, ml, lab, msk)
            perm = min(itertools.permutations(range(q), len(lab)),
                       key=lambda p: sum(cost[qi, j] for j, qi in enumerate(p)))
            cls = np.full(q, k)
            for j, qi in enumerate(perm):
                cls[qi] = lab[j]
                focal += _focal_np(ml[qi], msk[j])
                dice += _dice_np(ml[qi], msk[j])
            logp = np.log(_softmax(lg))
            w = np.where(cls == k, 0.1, 1.0)
            ce_num += float((-logp[np.arange(q), cls] * w).sum())
            ce_den += float(w.sum())
        return {"loss_ce": ce_num / ce_den, "loss_mask": focal / num_masks, "loss_dice": dice / num_masks}

    for suffix, out in (("", outputs), ("_0", aux)):
        for name, value in expected(out).items():
            assert losses[name + suffix].item() == pytest.approx(value, rel=1e-4, abs=1e-5), name + suffix
    total = crit.weighted_total(losses)
    manual = sum(losses[f"loss_ce{s}"] + 20 * losses[f"loss_mask{s}"] + losses[f"loss_dice{s}"] for s in ("", "_0"))
    assert total.item() == pytest.approx(manual.item(), rel=1e-6)


def test_criterion_upsamples_predictions_to_the_ground_truth() -> None:
    logits, mask_logits, labels, masks = _random_case(3, size=4)
    big_masks = masks.repeat_interleave(2, 1).repeat_interleave(2, 2)
    crit = SetCriterion(num_classes=4, num_aux=0)
    out = {"pred_logits": logits[None], "pred_masks": mask_logits[None]}
    losses = crit(out, [{"labels": labels, "masks": big_masks}])
    up = F.interpolate(mask_logits[None], size=(8, 8), mode="bilinear", align_corners=False)[0]
    (rows, cols), = crit.matcher(out, [{"labels": labels, "masks": big_masks}])
    dice = np.mean([_dice_np(up[r].numpy(), big_masks[c].numpy().astype(np.float64)) for r, c in zip(rows, cols)])
    assert losses["loss_dice"].item() == pytest.approx(dice, rel=1e-5)


def test_criterion_with_an_empty_image_predicts_void_everywhere() -> None:
    logits, mask_logits, _, _ = _random_case(4)
    empty = {"labels": torch.zeros(0, dtype=torch.int64), "masks": torch.zeros(0, 6, 6, dtype=torch.bool)}
    losses = SetCriterion(num_classes=4, num_aux=0)({"pred_logits": logits[None], "pred_masks": mask_logits[None]},
                                                    [empty])
    expected_ce = -np.log(_softmax(logits.numpy()))[:, -1].mean()
    assert losses["loss_ce"].item() == pytest.approx(expected_ce, rel=1e-5)
    assert losses["loss_mask"].item() == 0 and losses["loss_dice"].item() == 0


def test_targets_from_semantic_one_mask_per_present_class() -> None:
    label = torch.tensor([[3, 3, 255], [0, 3, 7], [255, 0, 0]], dtype=torch.uint8)
    t = targets_from_semantic(label)
    assert t["labels"].tolist() == [0, 3, 7] and t["labels"].dtype == torch.int64
    for c, m in zip(t["labels"].tolist(), t["masks"]):
        assert torch.equal(m, label == c)
    assert not t["masks"].any(0)[label == 255].any()


@pytest.mark.parametrize("q, k", [(3, 2), (3, 7)])  # more masks than classes, and fewer (masks resized first)
def test_semantic_inference_matches_manual(q, k) -> None:
    g = torch.Generator().manual_seed(5)
    h, w = 4, 5
    cls = torch.randn(1, q, k + 1, generator=g)
    masks = torch.randn(1, q, h, w, generator=g)
    image_size, output_size = (13, 17), (26, 34)  # inside a 16x20 padded input
    out = semantic_inference(cls, masks, image_size, output_size)
    assert out.shape == (1, k, *output_size)
    probs = _softmax(cls[0].numpy())[:, :k]
    up = F.interpolate(masks, size=(16, 20), mode="bilinear", align_corners=False)[0].numpy()
    m = _sigmoid(up[:, :13, :17])
    manual = np.zeros((k, 13, 17))
    for c in range(k):
        for qi in range(q):
            manual[c] += probs[qi, c] * m[qi]
    resized = F.interpolate(torch.from_numpy(manual)[None].float(), size=output_size, mode="bilinear",
                            align_corners=False)[0]
    assert torch.allclose(out[0], resized, atol=1e-5)
    assert torch.allclose(semantic_inference(cls[0], masks[0], image_size, output_size), out[0])
