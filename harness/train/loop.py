"""The training loop every stage uses: AMP, full-model gradient clipping, the official schedules, periodic
checkpoints, exact resume, DDP, and a clear stop on a non-finite loss.

Contract with the caller:
- ``module(batch) -> dict[str, Tensor]``: the *weighted* loss terms of one step; their sum is optimised.
- ``batch_fn(step, rank, world) -> batch``: a deterministic function of the step (and of the rank's shard),
  so a resumed run sees exactly the batches an uninterrupted run would have seen.
Resume is exact on a CPU: the checkpoint holds the trainable weights, the buffers, the optimiser, the step and
every RNG state, so training to N steps in one go or in two pieces ends with identical weights.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import HarnessError
from . import distributed as dist_utils
from .checkpoint import load_checkpoint, save_checkpoint, trainable_state
from .optim import build_optimizer
from .schedule import lr_factor


class TrainingDiverged(HarnessError):
    """A loss became NaN or infinite."""

    exit_code = 1


@dataclass(frozen=True)
class TrainConfig:
    iters: int
    batch_size: int
    lr: float
    weight_decay: float = 1e-4
    optimizer: str = "adamw"
    momentum: float = 0.9
    schedule: str = "poly"
    power: float = 0.9
    warmup_iters: int = 0
    warmup_factor: float = 1.0
    warmup_method: str = "constant"
    clip_grad_norm: float | None = 0.01
    amp: str | None = None  # None (fp32), "bf16" or "fp16"
    lr_multipliers: tuple[tuple[str, float], ...] = ()
    checkpoint_every: int = 500
    log_every: int = 10
    seed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainResult:
    steps: int
    wall_s: float
    resumed_from: int
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def final_losses(self) -> dict[str, float]:
        return self.history[-1] if self.history else {}


def _autocast(device: torch.device, amp: str | None):
    if amp is None:
        return torch.autocast(device_type=device.type, enabled=False)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    return torch.autocast(device_type=device.type, dtype=dtype)


def train(module: nn.Module, batch_fn: Callable[[int, int, int], Any], cfg: TrainConfig, ckpt_dir: Path,
          device: torch.device, desc: str = "train", progress: bool = True, stop_after: int | None = None,
          ) -> TrainResult:
    """Train ``module`` for ``cfg.iters`` steps, resuming from ``ckpt_dir/last.pt`` when it exists.

    ``stop_after`` ends this call after that many steps (as an interruption would), leaving a checkpoint.
    """
    from tqdm import tqdm

    ckpt_dir = Path(ckpt_dir)
    rank, world = dist_utils.rank(), dist_utils.world_size()
    torch.manual_seed(cfg.seed * 1000 + rank)
    optimizer = build_optimizer(module, cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.momentum,
                                dict(cfg.lr_multipliers))
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")
    start, history = 0, []
    last = ckpt_dir / "last.pt"
    if last.exists():
        state = load_checkpoint(last, module, optimizer, scaler, cfg.as_dict())
        start, history = state["step"], state["history"]
    resumed_from = start

    train_module: nn.Module = module
    if dist_utils.is_initialized():
        train_module = nn.parallel.DistributedDataParallel(
            module, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True)
    params = [p for p in module.parameters() if p.requires_grad]
    module.train()
    t0 = time.perf_counter()
    end = cfg.iters if stop_after is None else min(cfg.iters, start + stop_after)
    bar = tqdm(range(start, end), desc=desc, initial=start, total=cfg.iters, unit="it",
               disable=not progress or not dist_utils.is_main(), leave=False)
    for step in bar:
        factor = lr_factor(step, cfg.iters, cfg.schedule, cfg.power, cfg.warmup_iters, cfg.warmup_factor,
                           cfg.warmup_method)
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"] * factor
        batch = batch_fn(step, rank, world)
        with _autocast(device, cfg.amp):
            terms = train_module(batch)
        total = sum(terms.values())
        values = {k: float(v.detach()) for k, v in terms.items()}
        if not math.isfinite(float(total.detach())):
            raise TrainingDiverged(
                f"{desc}: the loss is not finite at step {step} (of {cfg.iters}); terms: "
                + ", ".join(f"{k}={v:.4g}" for k, v in values.items())
                + f". Lower the learning rate (now {cfg.lr * factor:.3g}) or train in fp32; the last good "
                  f"checkpoint is {last if last.exists() else 'not written yet'}."
            )
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(total).backward()
        if cfg.clip_grad_norm:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad_norm)
        scaler.step(optimizer)
        scaler.update()
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.iters:
            history.append({"step": step + 1, "total": sum(values.values()), **values})
            bar.set_postfix(loss=f"{sum(values.values()):.4f}")
        done = step + 1
        if dist_utils.is_main() and (done % cfg.checkpoint_every == 0 or done == end):
            save_checkpoint(last, module, optimizer, scaler, done, history, cfg.as_dict())
        dist_utils.barrier()
    bar.close()
    return TrainResult(steps=end, wall_s=time.perf_counter() - t0, resumed_from=resumed_from, history=history)


__all__ = ["TrainConfig", "TrainResult", "TrainingDiverged", "train", "trainable_state"]
