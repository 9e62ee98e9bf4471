"""Stage 1: learn the CoOp text context on GT-mask crops of seen classes (METHOD_SPEC 2, SimBaseline's
`ProposalClipClassifier`).

One sample = (image, one seen class present in it): crop to the tight box of that class' GT mask, a
RandomResizedCrop (scale 0.08-1, ratio 3/4-4/3) to CLIP's input size and a flip, CLIP-normalise, fill the
background (outside the class mask). The official fill is CLIP's mean *in normalised space* (a quirk;
``background_fill: mean-colour`` fills with the mean colour instead). CLS feature vs the seen names' text
features x100, cross-entropy. Classes are drawn uniformly, then an image containing the class (the official
code draws 32 samples per class with replacement: the same class balance).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.data import get_info, open_dataset
from harness.errors import DataError
from harness.results import atomic_write_text
from harness.train.checkpoint import atomic_torch_save, load_stage_file
from harness.train.loop import TrainConfig, train

from ..components.clip_trunk import CLIP_MEAN_255, CLIP_STD_255
from .common import rank_share, resolve_device, stage_schedule

OFFICIAL = TrainConfig(iters=16000, batch_size=32, lr=0.02, weight_decay=5e-4, optimizer="sgd", momentum=0.9,
                       schedule="cosine", warmup_iters=100, warmup_factor=0.005, warmup_method="constant",
                       clip_grad_norm=None, checkpoint_every=1000)


def class_presence(dataset, cache_file: Path) -> list[tuple[int, int]]:
    """(sample index, seen class id) pairs, cached as JSON (the official `<gt_dir>_label_count.json`)."""
    if cache_file.exists():
        return [tuple(p) for p in json.loads(cache_file.read_text())]
    pairs = []
    for i in range(len(dataset)):
        _, label = dataset.load(i)
        for c in torch.unique(label).tolist():
            if c != dataset.ignore_index:
                pairs.append((i, int(c)))
    atomic_write_text(cache_file, json.dumps(pairs))
    return pairs


def _random_resized_crop_box(h: int, w: int, g: torch.Generator) -> tuple[int, int, int, int]:
    area = h * w
    for _ in range(10):
        target = area * float(torch.empty(1).uniform_(0.08, 1.0, generator=g))
        log_ratio = float(torch.empty(1).uniform_(math.log(3 / 4), math.log(4 / 3), generator=g))
        ratio = math.exp(log_ratio)
        cw, ch = round(math.sqrt(target * ratio)), round(math.sqrt(target / ratio))
        if 0 < cw <= w and 0 < ch <= h:
            top = int(torch.randint(0, h - ch + 1, (1,), generator=g))
            left = int(torch.randint(0, w - cw + 1, (1,), generator=g))
            return top, left, ch, cw
    return 0, 0, h, w  # torchvision's fallback is a centre crop; the whole box keeps the mask


def class_crop(image: torch.Tensor, label: torch.Tensor, cls: int, size: int, g: torch.Generator,
               fill: str) -> torch.Tensor:
    """One stage-1 training crop (3,size,size), CLIP-normalised, background filled (see the module doc)."""
    mask = label == cls
    ys, xs = torch.nonzero(mask, as_tuple=True)
    y1, y2, x1, x2 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    img, m = image[:, y1:y2, x1:x2].float(), mask[y1:y2, x1:x2].float()
    top, left, ch, cw = _random_resized_crop_box(img.shape[1], img.shape[2], g)
    img, m = img[:, top:top + ch, left:left + cw], m[top:top + ch, left:left + cw]
    img = F.interpolate(img[None], size=(size, size), mode="bilinear", align_corners=False)[0]
    m = F.interpolate(m[None, None], size=(size, size), mode="nearest")[0, 0]
    if bool(torch.rand(1, generator=g) < 0.5):
        img, m = img.flip(-1), m.flip(-1)
    mean = torch.tensor(CLIP_MEAN_255).view(3, 1, 1)
    std = torch.tensor(CLIP_STD_255).view(3, 1, 1)
    norm = (img - mean) / std
    fill_value = mean / 255.0 if fill == "normalised-mean" else torch.zeros(3, 1, 1)
    return torch.where(m[None] > 0, norm, fill_value.expand_as(norm))


class PromptLearning(nn.Module):
    """The stage-1 training module: learnable context only; CLIP frozen."""

    def __init__(self, dense, text, class_names: tuple[str, ...]):
        super().__init__()
        self.dense = dense
        self.text = text
        self.class_names = class_names

    def forward(self, batch):
        crops, targets = batch
        with torch.no_grad():
            image_feats = self.dense.encode_crops(crops, normalised=True)
        text_feats = self.text(self.class_names)
        logits = 100.0 * image_feats.float() @ text_feats.float().t()
        return {"loss_ce": F.cross_entropy(logits, targets)}


def train_prompts(dense, text, env, directory: Path, schedule: dict, fill: str) -> dict:
    """Train ``text.ctx`` in place on ``env.train_dataset``'s seen classes; write ``final.pt``."""
    info = get_info(env.train_dataset)
    cfg, _ = stage_schedule(OFFICIAL, schedule, "prompts", env.seed)
    dataset = open_dataset(env.train_dataset, "train", env.data_root, seed=env.seed)
    pairs = class_presence(dataset, directory / "label_count.json")
    if not pairs:
        raise DataError(f"{info.name}: the training split has no labelled pixel; stage 1 cannot learn prompts.")
    by_class: dict[int, list[int]] = {}
    for index, cls in pairs:
        by_class.setdefault(cls, []).append(index)
    classes = sorted(by_class)
    size = int(dense.visual.image_size[0])
    device = resolve_device(env.device)

    def batch_fn(step: int, rank: int, world: int):
        # Draw the whole global batch (class, image, crop seed per position) and keep this rank's share, so
        # every sample is the same whatever the number of processes.
        rng = np.random.default_rng([cfg.seed, step])
        picks = rng.integers(0, len(classes), size=cfg.batch_size)
        choice = rng.random(cfg.batch_size)
        seeds = rng.integers(0, 2**31, size=cfg.batch_size)
        crops, targets = [], []
        for j in rank_share(cfg.batch_size, rank, world):
            cls = classes[int(picks[j])]
            candidates = by_class[cls]
            index = candidates[int(choice[j] * len(candidates))]
            image, label = dataset.load(index)
            crops.append(class_crop(image, label, cls, size, torch.Generator().manual_seed(int(seeds[j])), fill))
            targets.append(cls)
        return torch.stack(crops).to(device), torch.tensor(targets, device=device)

    module = PromptLearning(dense, text, dataset.class_names).to(device)
    result = train(module, batch_fn, cfg, directory, device, desc="stage 1: text prompts", progress=env.progress)
    atomic_torch_save({"ctx": text.ctx.detach().cpu()}, directory / "final.pt")
    return {"steps": result.steps, "final_losses": result.final_losses, "classes": len(classes),
            "samples": len(pairs), "schedule": cfg.as_dict()}


def load_prompts(text, directory: Path) -> None:
    state = load_stage_file(directory / "final.pt")
    with torch.no_grad():
        text.ctx.copy_(state["ctx"].to(text.ctx.device))
