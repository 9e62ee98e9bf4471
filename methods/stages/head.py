"""Stage 3: train a one-pass method's own parts (METHOD_SPEC 8): visual prompts, the online text context, CAL
and the void embedding, with CLIP and the proposal network frozen, on the DeOP loss (METHOD_SPEC 7).
AdamW 2e-4 (deop_train.sh), wd 1e-4, poly, full-model gradient clipping 0.01, batch 16, 512x512 inputs
(the official 640 crop trimmed to 512 is, in distribution, a 512 crop: we crop 512 directly).
"""

from __future__ import annotations

from pathlib import Path

from harness.data import get_info
from harness.train.checkpoint import atomic_torch_save, load_stage_file, trainable_state
from harness.train.loop import TrainConfig, train

from .common import augmented_training_set, resolve_device, segmentation_batches, stage_schedule

OFFICIAL = TrainConfig(iters=60000, batch_size=16, lr=2e-4, weight_decay=1e-4, optimizer="adamw",
                       schedule="poly", power=0.9, clip_grad_norm=0.01, checkpoint_every=1000)
# DeOP's shorter sides int(x * 0.1 * 512), x = 5..15, and 512 inputs (METHOD_SPEC 8); synthetic sets keep theirs.
DEOP_SIZES = {"min_sizes": [int(x * 0.1 * 512) for x in range(5, 16)], "crop": 512}


def train_head(segmenter, env, directory: Path, schedule: dict) -> dict:
    info = get_info(env.train_dataset)
    cfg, extra = stage_schedule(OFFICIAL, schedule, "head", env.seed)
    if not info.synthetic:
        extra = {**DEOP_SIZES, **extra}
    dataset = augmented_training_set(env, info, extra)
    names = dataset.class_names
    device = resolve_device(env.device)
    batches = segmentation_batches(dataset, cfg, device)

    def batch_fn(step: int, rank: int, world: int):
        return (*batches(step, rank, world), names)  # the head classifies against the training class names

    result = train(segmenter, batch_fn, cfg, directory, device, desc="stage 3: head", progress=env.progress)
    atomic_torch_save(trainable_state(segmenter), directory / "final.pt")
    return {"steps": result.steps, "final_losses": result.final_losses, "schedule": cfg.as_dict(),
            "trainable": segmenter.trainable_parameters()}


def load_head(segmenter, directory: Path) -> None:
    segmenter.load_state_dict(load_stage_file(directory / "final.pt"), strict=False)
