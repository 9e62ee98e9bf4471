"""Stage 2: the class-agnostic MaskFormer (METHOD_SPEC 1), trained on seen classes with the frozen stage-1
text classifier plus a learned void embedding; Hungarian matching, CE (void weight 0.1) / focal x20 / dice x1 with
deep supervision; AdamW 1e-4, backbone LR x0.1, poly, full-model gradient clipping at 0.01.

Every method of a suite asks for the same spec here, so they share one proposal network (the stage cache).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from harness.data import get_info
from harness.train.checkpoint import atomic_torch_save, load_stage_file
from harness.train.loop import TrainConfig, train

from ..components.proposals import (
    MaskFormer,
    SetCriterion,
    normalise_images,
    pad_to_divisible,
    targets_from_semantic,
)
from .common import augmented_training_set, resolve_device, segmentation_batches, stage_schedule

OFFICIAL = TrainConfig(iters=60000, batch_size=32, lr=1e-4, weight_decay=1e-4, optimizer="adamw",
                       schedule="poly", power=0.9, clip_grad_norm=0.01, lr_multipliers=(("backbone", 0.1),),
                       checkpoint_every=1000)


class ProposalTraining(nn.Module):
    """Stage-2 training module: MaskFormer + frozen text classifier + SetCriterion."""

    def __init__(self, model: MaskFormer, text_embeddings: torch.Tensor, ignore_index: int):
        super().__init__()
        self.model = model
        self.register_buffer("text_embeddings", text_embeddings.detach().clone(), persistent=False)
        num_aux = model.cfg.dec_layers - 1 if model.cfg.deep_supervision else 0
        self.criterion = SetCriterion(num_classes=text_embeddings.shape[0], num_aux=num_aux)
        self.ignore_index = ignore_index

    def forward(self, batch):
        images, labels = batch
        x = pad_to_divisible(normalise_images(images.float(), self.model.cfg), 32)
        outputs = self.model.add_class_logits(self.model(x, aux_outputs=True), self.text_embeddings)
        targets = [targets_from_semantic(label, self.ignore_index) for label in labels]
        losses = self.criterion(outputs, targets)
        return {k: v * self.criterion.weight_dict[k] for k, v in losses.items() if k in self.criterion.weight_dict}


def train_proposals(model: MaskFormer, text_embeddings: torch.Tensor, env, directory: Path, schedule: dict) -> dict:
    info = get_info(env.train_dataset)
    cfg, extra = stage_schedule(OFFICIAL, schedule, "proposals", env.seed)
    dataset = augmented_training_set(env, info, extra)
    device = resolve_device(env.device)
    batch_fn = segmentation_batches(dataset, cfg, device)

    module = ProposalTraining(model, text_embeddings, info.ignore_index).to(device)
    result = train(module, batch_fn, cfg, directory, device, desc="stage 2: proposals", progress=env.progress)
    atomic_torch_save(model.state_dict(), directory / "final.pt")
    return {"steps": result.steps, "final_losses": result.final_losses, "schedule": cfg.as_dict(),
            "maskformer": {k: v for k, v in vars(model.cfg).items()}, "backbone_init": model.weights_info}


def load_proposals(model: MaskFormer, directory: Path) -> None:
    model.load_state_dict(load_stage_file(directory / "final.pt"))
