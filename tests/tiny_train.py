"""A tiny trainable model and deterministic batches for the training-loop tests (importable by spawned
DDP workers, which cannot import test modules)."""

import os

import torch
from torch import nn

from harness.train.loop import TrainConfig, train

X = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
Y = (X @ torch.randn(8, 3, generator=torch.Generator().manual_seed(1))).argmax(1)


class Tiny(nn.Module):
    """A model with dropout (consumes RNG), a frozen part and a trainable part."""

    def __init__(self):
        super().__init__()
        self.frozen = nn.Linear(8, 8)
        self.frozen.requires_grad_(False)
        self.head = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))
        self.norm = nn.LayerNorm(8)

    def forward(self, batch):
        x, y = batch
        logits = self.head(self.norm(self.frozen(x)))
        return {"ce": nn.functional.cross_entropy(logits, y), "l2": 1e-3 * logits.pow(2).mean()}


def batch_fn(step, rank, world, batch_size=16):
    idx = torch.randperm(64, generator=torch.Generator().manual_seed(1000 + step))[:batch_size]
    idx = idx[rank::world]
    return X[idx], Y[idx]


CFG = TrainConfig(iters=20, batch_size=16, lr=0.05, clip_grad_norm=1.0, checkpoint_every=5, log_every=1)


def fresh():
    torch.manual_seed(0)
    return Tiny()


def ddp_worker(rank, world, port, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    from harness.train import distributed

    distributed.init_from_env("cpu")
    model = fresh()
    model.head[2].p = 0.0  # dropout masks differ per rank by design; compare the deterministic part
    train(model, batch_fn, CFG, out_dir, torch.device("cpu"), progress=False)
    if rank == 0:
        torch.save(model.state_dict(), out_dir / "final.pt")
    torch.distributed.destroy_process_group()
