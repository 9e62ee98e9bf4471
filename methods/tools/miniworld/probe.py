"""What MiniWorld's CLIP knows before any segmentation training: the evidence that the world has real
zero-shot signal, measured on scenes the pretraining never drew.

- Image level: the class whose prompt "a photo of a {class}." best matches the image is visible in it.
- Dense, training-free: every 8x8 patch classified against the same prompts through `DenseCLIP`, with the
  last block's attention as CLIP has it (vanilla), generalised patch severance (paper Eq. 2, alpha 0.5 and 1,
  the direction of Table 4), or the last block dropped. Patches paint their pixels; pAcc and mIoU come from
  the harness's confusion matrix over all 20 classes (convention d2-v0.6).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import nn

from harness.data.class_names.miniworld import MINIWORLD_NAMES
from harness.data.miniworld.world import sample_scene, visible_classes

from .pretrain import normalise

PROMPT = "a photo of a {}."
EVAL_STREAM = 1_000_003  # the probe's scenes: rng([seed, EVAL_STREAM, i]); pretraining uses rng([seed, step])
DENSE_RULES = ("vanilla", "gps-0.5", "gps-1.0", "drop-last")


def eval_scenes(n: int, seed: int = 0, size: int = 64) -> tuple[torch.Tensor, np.ndarray, list[str]]:
    """`n` held-out scenes: uint8 images (n, H, W, 3), train-id labels (n, H, W) and captions."""
    scenes = [sample_scene(np.random.default_rng([seed, EVAL_STREAM, i]), size) for i in range(n)]
    return (torch.from_numpy(np.stack([s[0] for s in scenes])), np.stack([s[1] for s in scenes]),
            [s[2] for s in scenes])


@torch.no_grad()
def class_text_features(model: nn.Module) -> torch.Tensor:
    """(20, D) L2-normalised embeddings of "a photo of a {class}." for every MiniWorld class."""
    from .pretrain import encode_text, tokenize

    ids = tokenize([PROMPT.format(n) for n in MINIWORLD_NAMES])
    return torch.nn.functional.normalize(encode_text(model, ids), dim=-1)


@torch.no_grad()
def image_level_accuracy(model: nn.Module, images: torch.Tensor, labels: np.ndarray) -> float:
    """Fraction of images whose best-matching class prompt names a visible class."""
    text = class_text_features(model)
    feats = torch.nn.functional.normalize(model.encode_image(normalise(images)), dim=-1)
    top = (feats @ text.T).argmax(dim=1).tolist()
    return float(np.mean([t in visible_classes(lab) for t, lab in zip(top, labels)]))


def _dense_model(model: nn.Module, rule: str):
    from methods.components.clip_dense import GPS, DenseCLIP

    if rule == "drop-last":
        model = copy.deepcopy(model)
        model.visual.transformer.resblocks = model.visual.transformer.resblocks[:-1]
        return DenseCLIP(model, input_normalisation="clip")
    rules = {"vanilla": {}, "gps-0.5": {-1: GPS(0.5)}, "gps-1.0": {-1: GPS(1.0)}}[rule]
    return DenseCLIP(model, attention_rules=rules, input_normalisation="clip")


@torch.no_grad()
def dense_patch_metrics(model: nn.Module, images: torch.Tensor, labels: np.ndarray, rule: str,
                        batch_size: int = 64) -> dict[str, float]:
    """pAcc and mIoU (percent) of training-free patch classification under `rule` (see `DENSE_RULES`)."""
    from harness.eval import ConfusionMatrix
    from harness.eval.metrics import compute_metrics

    dense = _dense_model(model, rule).eval()
    text = class_text_features(model)
    matrix = ConfusionMatrix(len(MINIWORLD_NAMES))
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size].permute(0, 3, 1, 2).float()
        out = dense(batch)
        patch_class = torch.einsum("bdhw,kd->bkhw", out.patch_features, text).argmax(dim=1)
        ph, pw = dense.patch_size
        pixels = patch_class.repeat_interleave(ph, dim=1).repeat_interleave(pw, dim=2)
        h, w = batch.shape[-2:]
        matrix.update(pixels[:, :h, :w], torch.from_numpy(labels[start:start + batch_size]).long())
    metrics = compute_metrics(matrix, class_names=list(MINIWORLD_NAMES))
    return {"pacc": round(float(metrics["pacc"]), 2), "miou": round(float(metrics["miou"]), 2)}


def probe(model: nn.Module, n_images: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Image-level accuracy and dense patch metrics for every rule, on `n_images` held-out scenes."""
    model = model.eval()
    images, labels, _ = eval_scenes(n_images, seed)
    out: dict[str, Any] = {"n_images": n_images, "prompt": PROMPT,
                           "image_top1_present": round(image_level_accuracy(model, images, labels), 4)}
    out["dense"] = {rule: dense_patch_metrics(model, images, labels, rule) for rule in DENSE_RULES}
    return out
