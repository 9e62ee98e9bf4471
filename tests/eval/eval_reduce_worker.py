"""A worker for the all_reduce test, importable by processes spawned from it (by module name)."""

from __future__ import annotations

import numpy as np
import torch


def reduce_worker(rank: int, world: int, init_file: str, out_file: str) -> None:
    import torch.distributed as dist

    from harness.eval import ConfusionMatrix

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    cm = ConfusionMatrix(3)
    cm.update(torch.tensor([rank, 2]), torch.tensor([rank, rank]))
    cm.all_reduce()
    if rank == 0:
        np.save(out_file, cm.numpy())
    dist.destroy_process_group()
