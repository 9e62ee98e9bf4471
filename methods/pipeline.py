"""From a method spec to a trained, ready segmenter: build CLIP, run (or reuse) the three cached stages.

Stage specs contain exactly what determines their output, so methods that share a stage share its cache entry:
every method of a suite with the same CLIP, prompts and proposal settings reuses one proposal network.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from harness.data import get_info
from harness.train.stages import run_stage

from .components.clip_dense import DenseCLIP
from .components.text import TextEncoder
from .components.weights import build_clip
from .multipass import MultiPassSegmenter
from .onepass import OnePassSegmenter
from .spec import MethodSpec
from .stages.common import resolve_device
from .stages.head import load_head, train_head
from .stages.prompts import load_prompts, train_prompts
from .stages.proposals import build_maskformer, load_proposals, train_proposals

# Fields that change only inference, never what a stage learns (so they stay out of the stage hashes).
INFERENCE_ONLY = ("test_short_side", "mask_threshold", "ensemble_lambda", "default_lambda", "crop_chunk")


@dataclass
class Fitted:
    """A trained method, ready to predict, and what it is made of (for the record)."""

    name: str
    spec: MethodSpec
    segmenter: nn.Module
    weights: dict[str, Any]
    stages: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def seeded(seed: int, part: str):
    """Initialise ``part`` from its own seed: torch seeds each process randomly, so every random initialisation
    (prompt context, proposal network, prompts, heads) must be seeded to make runs repeatable, and seeding each
    part by name keeps it independent of what was built before it."""
    digest = hashlib.sha256(f"{seed}:{part}".encode()).digest()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int.from_bytes(digest[:8], "little"))
        yield


def _clip_identity(info) -> dict[str, Any]:
    return {"arch": info.arch, "source": info.source, "tag": info.tag, "sha256": info.sha256, "seed": info.seed}


def build_segmenter(name: str, spec: MethodSpec, env) -> Fitted:
    device = resolve_device(env.device)
    info = get_info(env.train_dataset)
    clip_model, clip_info = build_clip(spec.clip_arch, spec.clip_weights, "cpu", seed=env.seed)
    clip_model = clip_model.to(device)
    schedules = dict(env.schedules or {})
    base = {"clip": _clip_identity(clip_info), "train_dataset": info.name, "seed": env.seed}
    stages: dict[str, Any] = {}

    # Stage 1: text prompts (none for fixed templates).
    if spec.text_prompt == "templates":
        text = TextEncoder(clip_model, mode="templates", templates=spec.templates).to(device)
        text_identity: dict[str, Any] = {"templates": spec.templates}
    else:
        with seeded(env.seed, "text"):
            text = TextEncoder(clip_model, mode="learnable", n_ctx=spec.n_ctx).to(device)
        prompt_spec = {**base, "n_ctx": spec.n_ctx, "background_fill": spec.background_fill,
                       "schedule": schedules.get("prompts", {})}
        directory, meta = run_stage(
            env.cache_dir, "prompts", prompt_spec,
            lambda d: train_prompts(DenseCLIP(clip_model).to(device), text, env, d,
                                    schedules.get("prompts", {}), spec.background_fill), env.log)
        load_prompts(text, directory)
        stages["prompts"] = meta
        text_identity = {"prompts": meta["hash"]}

    # Stage 2: the proposal network with the stage-1 text classifier of the seen classes.
    with seeded(env.seed, "proposals"):
        maskformer = build_maskformer(spec, int(clip_model.text_projection.shape[1])).to(device)
    with torch.no_grad():
        seen_text = text(info.seen_names).float()
    proposal_spec = {**base, **text_identity, "maskformer": dict(spec.proposals),
                     "schedule": schedules.get("proposals", {})}
    directory, meta = run_stage(env.cache_dir, "proposals", proposal_spec,
                                lambda d: train_proposals(maskformer, seen_text, env, d,
                                                          schedules.get("proposals", {})), env.log)
    load_proposals(maskformer, directory)
    stages["proposals"] = meta

    void = maskformer.void_embedding.detach()
    with seeded(env.seed, "head"):
        cls = MultiPassSegmenter if spec.kind == "multi-pass" else OnePassSegmenter
        segmenter: nn.Module = cls(spec, clip_model, maskformer, text, void).to(device)
    if spec.kind == "one-pass" and spec.trains_head:  # stage 3
        head_spec = {**base, **text_identity, "proposals": meta["hash"],
                     "method": {k: v for k, v in spec.as_dict().items() if k not in INFERENCE_ONLY},
                     "schedule": schedules.get("head", {})}
        directory, head_meta = run_stage(env.cache_dir, "head", head_spec,
                                         lambda d: train_head(segmenter, env, d, schedules.get("head", {})),
                                         env.log)
        load_head(segmenter, directory)
        stages["head"] = head_meta
    segmenter.eval()
    weights = {"clip": clip_info.as_record(), "proposal_backbone": maskformer.weights_info,
               "stages": {k: v["hash"] for k, v in stages.items()}}
    return Fitted(name=name, spec=spec, segmenter=segmenter, weights=weights, stages=stages)


def build_untrained(name: str, spec: MethodSpec, env, random_fallback: bool = True) -> Fitted:
    """The method's inference graph without training its stages (for timing: speed does not depend on the
    weights, except SimBaseline's N', which the speed record reports per image). CLIP gets its pretrained
    weights when they are available; otherwise random weights, said so in ``weights``."""
    from harness.errors import WeightsError

    device = resolve_device(env.device)
    try:
        clip_model, clip_info = build_clip(spec.clip_arch, spec.clip_weights, "cpu", seed=env.seed)
        clip_record: dict[str, Any] = clip_info.as_record()
    except WeightsError as exc:
        if not random_fallback:
            raise
        clip_model, clip_info = build_clip(spec.clip_arch, "random", "cpu", seed=env.seed)
        clip_record = {**clip_info.as_record(), "fallback": f"asked for {spec.clip_weights!r}: {exc}"}
    clip_model = clip_model.to(device)
    mode = "templates" if spec.text_prompt == "templates" else "learnable"
    with seeded(env.seed, "text"):
        text = (TextEncoder(clip_model, mode="templates", templates=spec.templates) if mode == "templates"
                else TextEncoder(clip_model, mode="learnable", n_ctx=spec.n_ctx)).to(device)
    with seeded(env.seed, "proposals"):
        maskformer = build_maskformer(spec, int(clip_model.text_projection.shape[1])).to(device)
    void = maskformer.void_embedding.detach()
    cls = MultiPassSegmenter if spec.kind == "multi-pass" else OnePassSegmenter
    with seeded(env.seed, "head"):
        segmenter = cls(spec, clip_model, maskformer, text, void).to(device).eval()
    weights = {"clip": clip_record, "proposal_backbone": maskformer.weights_info,
               "stages": "random (untrained: timing only)"}
    return Fitted(name=name, spec=spec, segmenter=segmenter, weights=weights)
