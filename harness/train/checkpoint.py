"""Checkpoints that make resume exact, and no bigger than they need to be.

Only what training changes is stored: trainable parameters, buffers, optimiser and scaler state, the step,
the loss history and every RNG state. Frozen weights (CLIP, a frozen proposal network) are rebuilt by the
caller, never copied into each checkpoint. Writes are atomic (temp file + rename).
"""

from __future__ import annotations

import io
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import HarnessError


def trainable_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """Trainable parameters and all buffers, by their state-dict names."""
    trainable = {name for name, p in module.named_parameters() if p.requires_grad}
    buffers = {name for name, _ in module.named_buffers()}
    return {k: v.detach().clone() for k, v in module.state_dict().items() if k in trainable or k in buffers}


def _rng_state() -> dict[str, Any]:
    # Only tensors and plain values, so a checkpoint loads with weights_only=True (a pickle of numpy objects
    # would need the unsafe loader, and then a crafted last.pt in a shared cache runs code).
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, mt, gauss_next = random.getstate()
    state = {"torch": torch.get_rng_state(),
             "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                       "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
             "python": {"version": int(version), "state": torch.tensor(mt, dtype=torch.int64),
                        "gauss_next": gauss_next}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    np.random.set_state((numpy_state["kind"], numpy_state["keys"].numpy().astype(np.uint32), numpy_state["pos"],
                         numpy_state["has_gauss"], numpy_state["cached_gaussian"]))
    python_state = state["python"]
    random.setstate((python_state["version"], tuple(python_state["state"].tolist()), python_state["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def atomic_torch_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(obj, buf)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(buf.getvalue())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def load_stage_file(path: Path) -> Any:
    """A stage's result file (``final.pt``), or an error that names it and says how to repair the cache."""
    from ..errors import WeightsError

    try:
        return torch.load(path, map_location="cpu", weights_only=True)  # never code from a shared cache
    except Exception as exc:  # noqa: BLE001 - truncated, foreign or missing: the same repair
        raise WeightsError(f"the cached stage file {path} cannot be read ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''}). Delete {path.parent} and re-run: "
                           f"the stage is rebuilt.") from None


def save_checkpoint(path: Path, module: nn.Module, optimizer, scaler, step: int, history: list, config: dict) -> None:
    atomic_torch_save({
        "step": step,
        "model": trainable_state(module),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "history": list(history),
        "rng": _rng_state(),
        "config": config,
    }, Path(path))


def load_checkpoint(path: Path, module: nn.Module, optimizer, scaler, config: dict) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # a crafted pickle could run code
    except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint gets the same advice
        raise HarnessError(f"checkpoint {path} cannot be read ({exc}). Delete it to train from scratch.") from None
    if state.get("config") != config:
        raise HarnessError(
            f"checkpoint {path} was written with a different training configuration; resuming would mix two "
            f"runs. Delete {path.parent} to start over, or restore the configuration it was written with."
        )
    missing = set(trainable_state(module)) - set(state["model"])
    if missing:
        raise HarnessError(f"checkpoint {path} lacks {sorted(missing)[:5]}...; it belongs to another model.")
    module.load_state_dict(state["model"], strict=False)
    optimizer.load_state_dict(state["optimizer"])
    scaler.load_state_dict(state["scaler"])
    _set_rng_state(state["rng"])
    return state
