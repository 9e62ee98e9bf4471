"""The one assembly path from a method spec to a segmenter: build CLIP, the text encoder and the proposal network,
run (or reuse) the three cached stages when training, and put the pipeline of the spec's `kind` on top.

Untrained (``train=False``, for timing) is the same path with the stages skipped: every part is initialised from
the same seeds, and CLIP falls back to random weights (said so in the record) when its weights are missing.
Stage specs contain exactly what determines their output, so methods that share a stage share its cache entry:
every method of a suite with the same CLIP, prompts and proposal settings reuses one proposal network.
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any

import torch

from harness.api import Fitted, MethodEnv
from harness.data import get_info
from harness.errors import WeightsError
from harness.train.stages import run_stage

from ..components.clip_dense import DenseCLIP
from ..components.text import TextEncoder
from ..components.weights import build_clip
from ..spec import CHOICES, MethodSpec
from ..stages.common import resolve_device
from ..stages.head import load_head, train_head
from ..stages.prompts import load_prompts, train_prompts
from ..stages.proposals import load_proposals, train_proposals
from .common import ProposalPipeline
from .multipass import MultiPassSegmenter
from .onepass import OnePassSegmenter

# The segmenter class of each `kind` (a new kind: its choice in `spec.CHOICES` and its class here).
PIPELINES: dict[str, type[ProposalPipeline]] = {"one-pass": OnePassSegmenter, "multi-pass": MultiPassSegmenter}
assert tuple(PIPELINES) == CHOICES["kind"], "every kind a spec accepts needs a pipeline"

# Fields that change only inference, never what a stage learns (so they stay out of the stage hashes).
INFERENCE_ONLY = ("test_short_side", "mask_threshold", "ensemble_lambda", "default_lambda", "crop_chunk")


@contextlib.contextmanager
def seeded(seed: int, part: str):
    """Initialise ``part`` from its own seed: torch seeds each process randomly, so every random initialisation
    (prompt context, proposal network, prompts, heads) must be seeded to make runs repeatable, and seeding each
    part by name keeps it independent of what was built before it."""
    digest = hashlib.sha256(f"{seed}:{part}".encode()).digest()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int.from_bytes(digest[:8], "little"))
        yield


def _clip_identity(record: dict[str, Any]) -> dict[str, Any]:
    """What identifies CLIP in the stage hashes (its record's arch, source, tag, sha256 and seed)."""
    return {key: record[key] for key in ("arch", "source", "tag", "sha256", "seed")}


def assemble(name: str, spec: MethodSpec, env: MethodEnv, *, train: bool, random_fallback: bool = True,
             ) -> Fitted:
    """The method ``spec`` as a ready segmenter: with ``train``, every stage it needs trained (or reused from the
    cache); without, its inference graph with untrained stages (timing only: speed does not depend on the weights,
    except SimBaseline's N', which the speed record reports per image)."""
    device = resolve_device(env.device)
    info = get_info(env.train_dataset) if train else None  # untrained: no dataset needed (the demo has none)
    clip_model, clip_record = _clip(spec, env, random_fallback=random_fallback and not train)
    clip_model = clip_model.to(device)
    schedules = dict(env.schedules or {})
    base = {"clip": _clip_identity(clip_record), "train_dataset": info.name, "seed": env.seed} if train else {}
    stages: dict[str, Any] = {}

    # Stage 1: text prompts (none for fixed templates).
    if spec.text_prompt == "templates":
        text = TextEncoder(clip_model, mode="templates", templates=spec.templates).to(device)
        text_identity: dict[str, Any] = {"templates": spec.templates}
    else:
        with seeded(env.seed, "text"):
            text = TextEncoder(clip_model, mode="learnable", n_ctx=spec.n_ctx).to(device)
        text_identity = {}
        if train:
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
    source = spec.build_part("proposal_source")  # components/proposal_sources.py
    with seeded(env.seed, "proposals"):
        maskformer = source.build(int(clip_model.text_projection.shape[1])).to(device)
    if train:
        with torch.no_grad():
            seen_text = text(info.seen_names).float()
        proposal_spec = {**base, **text_identity, **source.identity(),
                         "schedule": schedules.get("proposals", {})}
        directory, meta = run_stage(env.cache_dir, "proposals", proposal_spec,
                                    lambda d: train_proposals(maskformer, seen_text, env, d,
                                                              schedules.get("proposals", {})), env.log)
        load_proposals(maskformer, directory)
        stages["proposals"] = meta

    void = maskformer.void_embedding.detach()
    with seeded(env.seed, "head"):
        segmenter = PIPELINES[spec.kind](spec, clip_model, maskformer, text, void).to(device)
    if train and spec.trains_head:  # stage 3
        head_spec = {**base, **text_identity, "proposals": stages["proposals"]["hash"],
                     "method": spec.trained_options(INFERENCE_ONLY),
                     "schedule": schedules.get("head", {})}
        directory, head_meta = run_stage(env.cache_dir, "head", head_spec,
                                         lambda d: train_head(segmenter, env, d, schedules.get("head", {})),
                                         env.log)
        load_head(segmenter, directory)
        stages["head"] = head_meta
    segmenter.eval()
    weights = {"clip": clip_record, "proposal_backbone": maskformer.weights_info,
               "stages": {k: v["hash"] for k, v in stages.items()} if train else
               "random (untrained: timing only)"}
    return Fitted(name=name, spec=spec, segmenter=segmenter, weights=weights, stages=stages)


def _clip(spec: MethodSpec, env: MethodEnv, *, random_fallback: bool) -> tuple[torch.nn.Module, dict[str, Any]]:
    """CLIP on the CPU and its record; random weights instead of missing ones only when ``random_fallback``."""
    try:
        clip_model, clip_info = build_clip(spec.clip_arch, spec.clip_weights, "cpu", seed=env.seed)
        return clip_model, clip_info.as_record()
    except WeightsError as exc:
        if not random_fallback:
            raise
        clip_model, clip_info = build_clip(spec.clip_arch, "random", "cpu", seed=env.seed)
        return clip_model, {**clip_info.as_record(), "fallback": f"asked for {spec.clip_weights!r}: {exc}"}
