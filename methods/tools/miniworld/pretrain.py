"""Contrastive pretraining of MiniWorld's tiny CLIP (`miniworld-vit-p8`) on captions of freshly drawn scenes.

The CLIP sees every class, seen and unseen alike, as web-scale CLIP did; the zero-shot split only applies to
segmentation training later. Recipe (CLIP's, scaled down): symmetric InfoNCE over a batch of (image, caption)
pairs with a learned temperature (init 1/0.07, capped at 100), AdamW, linear warm-up then cosine decay,
gradient clipping. Identical captions in one batch are all positives of each other (soft targets), because
a 20-class world repeats captions often and calling a correct match a negative would only add noise.

Every batch is a pure function of (seed, step), and the shared training loop (`harness.train.loop`) checkpoints
and resumes exactly, with a progress bar. The saved checkpoint keeps only the token-embedding rows its
vocabulary uses, in fp16, and loads through `build_clip(arch, path)` like any CLIP checkpoint.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness.data.miniworld.recipe import ARCH, PretrainConfig
from harness.data.miniworld.world import caption_vocabulary, sample_scene
from harness.results import atomic_write_text
from harness.train.checkpoint import atomic_torch_save

__all__ = ["ARCH", "PretrainConfig", "pretrain", "save_checkpoint"]

TEXT_LENGTH = 32  # the longest MiniWorld caption has 28 tokens (3 things on 2 stuff classes)
MAX_LOGIT_SCALE = 100.0  # CLIP's cap on exp(logit_scale)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def tokenize(texts: list[str]) -> Tensor:
    """open_clip's BPE tokenizer (SOT ... EOT, zero padded to 77), the one every method uses."""
    import open_clip

    return open_clip.tokenize(texts)


def caption_tokens(captions: list[str]) -> Tensor:
    """Token ids (B, TEXT_LENGTH) of pretraining captions; a caption that does not fit is a bug, not data."""
    ids = tokenize(captions)
    if int(ids.argmax(dim=-1).max()) >= TEXT_LENGTH:
        raise ValueError(f"a MiniWorld caption exceeds {TEXT_LENGTH} tokens; raise TEXT_LENGTH")
    return ids[:, :TEXT_LENGTH]


def encode_text(model: nn.Module, ids: Tensor, length: int | None = None) -> Tensor:
    """`model.encode_text(ids)` computed on the first `length` tokens (default: up to the batch's last EOT).

    Exact whenever every EOT lies within `length`: the causal mask lets no position see later ones, so the
    padding after EOT never reaches the pooled EOT feature; captions of ~20 tokens then cost a quarter of the
    77-token context. A fixed `length` keeps shapes static for `torch.compile`.
    """
    eot = ids.argmax(dim=-1)  # EOT has the largest id of the vocabulary
    length = int(eot.max()) + 1 if length is None else length
    x = model.token_embedding(ids[:, :length]) + model.positional_embedding[:length]
    x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    x = model.ln_final(x[torch.arange(x.shape[0], device=x.device), eot])
    return x @ model.text_projection


def normalise(images: Tensor) -> Tensor:
    """uint8 (B, H, W, 3) -> CLIP-normalised float (B, 3, H, W)."""
    mean = torch.tensor(CLIP_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=images.device).view(1, 3, 1, 1)
    return (images.permute(0, 3, 1, 2).float() / 255.0 - mean) / std


def scene_batch(seed: int, step: int, batch_size: int, size: int = 64) -> tuple[Tensor, list[str]]:
    """The batch of `step`: uint8 images (B, H, W, 3) and their captions, a pure function of (seed, step)."""
    rng = np.random.default_rng([seed, step])
    scenes = [sample_scene(rng, size) for _ in range(batch_size)]
    return torch.from_numpy(np.stack([s[0] for s in scenes])), [s[2] for s in scenes]


def soft_targets(captions: list[str]) -> Tensor:
    """(B, B) row-stochastic targets: pair (i, j) is positive when captions i and j are identical."""
    index = {c: k for k, c in enumerate(dict.fromkeys(captions))}
    ids = torch.tensor([index[c] for c in captions])
    same = (ids[:, None] == ids[None, :]).float()
    return same / same.sum(dim=1, keepdim=True)


def contrastive_loss(image_features: Tensor, text_features: Tensor, logit_scale: Tensor,
                     targets: Tensor) -> Tensor:
    """Symmetric cross-entropy of image->text and text->image logits against (symmetric) soft targets."""
    logits = logit_scale.exp().clamp(max=MAX_LOGIT_SCALE) * image_features @ text_features.T
    return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets))


class ContrastiveCLIP(nn.Module):
    """The training module the shared loop drives: batch -> {"contrastive": loss}.

    `compile=True` runs the loss through `torch.compile` (the module and its state dict stay the plain CLIP's):
    on a 2-core CPU eager mode spends most of its time in unfused element-wise ops and copies of these small
    matrices, and the compiled step is several times faster.
    """

    def __init__(self, model: nn.Module, compile: bool = False) -> None:
        super().__init__()
        self.model = model
        self._loss_fn = torch.compile(self.loss) if compile else self.loss

    def loss(self, images: Tensor, ids: Tensor, targets: Tensor) -> Tensor:
        img = F.normalize(self.model.encode_image(images), dim=-1)
        txt = F.normalize(encode_text(self.model, ids, ids.shape[1]), dim=-1)
        return contrastive_loss(img, txt, self.model.logit_scale, targets)

    def forward(self, batch: tuple[Tensor, Tensor, Tensor]) -> dict[str, Tensor]:
        return {"contrastive": self._loss_fn(*batch)}


def kept_token_ids() -> list[int]:
    """Token ids any harness text can produce in MiniWorld: captions, class names in every prompt template
    the methods use ("a photo of a {}.", single / ViLD / ImageNet sets) and SOT/EOT. The checkpoint keeps
    exactly these token-embedding rows; the others are never read."""
    from harness.data.class_names.miniworld import MINIWORLD_NAMES
    from methods.components.text import TEMPLATE_SETS, clip_tokenizer

    tok = clip_tokenizer()
    texts = caption_vocabulary() + [f"{n}." for n in MINIWORLD_NAMES]
    texts += [t.format(n) for templates in TEMPLATE_SETS.values() for t in templates for n in MINIWORLD_NAMES]
    ids = {tok.sot_token_id, tok.eot_token_id}
    for text in texts:
        ids.update(tok.encode(text))
    return sorted(ids)


class CompactVocabulary:
    """Train only the token-embedding rows MiniWorld's texts use: the model's 49,408-row table becomes a table
    of the kept rows (same initial values), caption ids are remapped to it, and `restore` puts the trained rows
    back into a full-size table (zeros elsewhere, which no MiniWorld text reads). Saves the optimiser a 6M
    parameter update per step and makes the trained model exactly what the pruned checkpoint stores."""

    def __init__(self, model: nn.Module, kept: list[int]) -> None:
        self.kept = torch.tensor(kept, dtype=torch.long)
        self.vocab_size = model.token_embedding.num_embeddings
        self.lookup = torch.full((self.vocab_size,), -1, dtype=torch.long)
        self.lookup[self.kept] = torch.arange(len(kept))
        self.lookup[0] = self.lookup[0].clamp(min=0)  # padding after EOT: any row, the causal mask hides it
        weight = model.token_embedding.weight.detach()[self.kept].clone()
        model.token_embedding = nn.Embedding.from_pretrained(weight, freeze=False)

    def remap(self, ids: Tensor) -> Tensor:
        out = self.lookup[ids]
        if bool((out < 0).any()):
            raise ValueError("a caption uses a token outside MiniWorld's kept vocabulary (kept_token_ids)")
        return out

    def restore(self, model: nn.Module) -> None:
        compact = model.token_embedding.weight.detach()
        full = torch.zeros(self.vocab_size, compact.shape[1], dtype=compact.dtype, device=compact.device)
        full[self.kept.to(compact.device)] = compact
        model.token_embedding = nn.Embedding.from_pretrained(full, freeze=False)


def save_checkpoint(model: nn.Module, path: Path, meta: dict[str, Any]) -> Path:
    """Pruned to `kept_token_ids()`, floats stored as fp16 (a < 5 MB file), written atomically."""
    from methods.components.weights import prune_token_embedding

    state = {k: v.detach().to("cpu", torch.float16) if v.is_floating_point() else v.detach().cpu()
             for k, v in model.state_dict().items()}
    checkpoint = prune_token_embedding(state, kept_token_ids())
    checkpoint["miniworld"] = meta
    atomic_torch_save(checkpoint, path)
    return path


def write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def loss_summary(history: list[dict[str, float]], points: int = 30) -> dict[str, Any]:
    """First, last, minimum and a thinned curve [[step, loss], ...] of the logged losses."""
    if not history:
        return {}
    losses = [(int(h["step"]), float(h["total"])) for h in history]
    stride = max(1, len(losses) // points)
    curve = losses[::stride]
    if curve[-1] != losses[-1]:
        curve.append(losses[-1])
    tail = [v for _, v in losses[-max(1, len(losses) // 10):]]
    return {"first": losses[0][1], "last": losses[-1][1], "min": min(v for _, v in losses),
            "mean_last_10pct": sum(tail) / len(tail), "curve": [[s, round(v, 5)] for s, v in curve]}


def pretrain(cfg: PretrainConfig, work_dir: Path, device: str = "cpu", progress: bool = True,
             stop_after: int | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Train the tiny CLIP (resuming from `work_dir/last.pt`); returns (model, training summary)."""
    from harness.train.loop import TrainConfig, train
    from methods.components.weights import build_clip

    model, _ = build_clip(cfg.arch, "random", "cpu", seed=cfg.seed)
    kept = kept_token_ids()
    compact = CompactVocabulary(model, kept)
    model = model.to(device)
    train_cfg = TrainConfig(
        iters=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr, weight_decay=cfg.weight_decay, optimizer="adamw",
        schedule="cosine", warmup_iters=cfg.warmup, warmup_factor=0.0, warmup_method="linear",
        clip_grad_norm=cfg.clip_grad_norm, checkpoint_every=cfg.checkpoint_every, log_every=cfg.log_every,
        seed=cfg.seed)

    def batch_fn(step: int, rank: int, world: int):
        images, captions = scene_batch(cfg.seed, step, cfg.batch_size, cfg.image_size)
        ids = compact.remap(caption_tokens(captions))
        return normalise(images).to(device), ids.to(device), soft_targets(captions).to(device)

    start = time.perf_counter()
    result = train(ContrastiveCLIP(model, compile=cfg.compile), batch_fn, train_cfg, work_dir, torch.device(device),
                   desc="miniworld: pretrain CLIP", progress=progress, stop_after=stop_after)
    compact.restore(model)
    summary = {"steps_done": result.steps, "resumed_from": result.resumed_from,
               "wall_s_this_run": round(time.perf_counter() - start, 1), "loss": loss_summary(result.history),
               "train_config": train_cfg.as_dict(), "recipe": asdict(cfg)}
    return model.eval(), summary
