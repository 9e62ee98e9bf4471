"""A tiny MaskFormer, trained end to end with the official matcher and losses, overfits one synthetic batch."""

from __future__ import annotations

import torch

from methods.components.proposals import (
    MaskFormer,
    MaskFormerConfig,
    SetCriterion,
    maskformer_param_groups,
    normalise_images,
    semantic_inference,
    targets_from_semantic,
)

COLOURS = torch.tensor([[220.0, 40.0, 40.0], [40.0, 200.0, 60.0], [50.0, 60.0, 210.0]])


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Two 64x64 images of 2-3 flat-colour blocks (plus noise) and their label maps; 255 on a thin border."""
    g = torch.Generator().manual_seed(0)
    labels = torch.zeros(2, 64, 64, dtype=torch.int64)
    labels[0, :, 40:] = 1
    labels[0, 8:30, 4:28] = 2
    labels[1, 32:, :] = 2
    labels[1, :32, 20:52] = 1
    labels[1, 0, :] = 255
    images = COLOURS[labels.clamp(max=2)].permute(0, 3, 1, 2) + 8 * torch.randn(2, 3, 64, 64, generator=g)
    return images, labels


def test_tiny_maskformer_overfits_one_batch() -> None:
    torch.manual_seed(0)
    cfg = MaskFormerConfig.smoke(dropout=0.0)
    model = MaskFormer(cfg)
    text = torch.nn.functional.normalize(torch.randn(3, cfg.embed_dim), dim=-1)
    images, labels = _batch()
    inputs = normalise_images(images, cfg)
    targets = [targets_from_semantic(lab) for lab in labels]
    criterion = SetCriterion(num_classes=3, num_aux=cfg.dec_layers - 1)
    opt = torch.optim.AdamW(maskformer_param_groups(model, lr=1e-3, backbone_multiplier=1.0))
    history = []
    model.train()
    for _ in range(100):
        out = model.add_class_logits(model(inputs), text)
        loss = criterion.weighted_total(criterion(out, targets))
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(loss.item())
    assert history[-1] < history[0] / 20, (history[0], history[-1])

    model.eval()
    with torch.no_grad():
        out = model.add_class_logits(model(inputs), text)
        scores = semantic_inference(out["pred_logits"], out["pred_masks"], (64, 64), (64, 64))
    pred = scores.argmax(1)
    valid = labels != 255
    pacc = (pred[valid] == labels[valid]).float().mean().item()
    print(f"loss {history[0]:.3f} -> {history[-1]:.3f}, pAcc {pacc:.3f}")
    assert pacc > 0.9, pacc
