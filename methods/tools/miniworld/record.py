"""What `python -m harness miniworld pretrain|probe` do, as functions of plain arguments: train (or resume),
save the pruned checkpoint, measure the saved file the way every run loads it, and write the training record
beside it. Reached through the TOOLS registry as "miniworld-pretrain" and "miniworld-probe"."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.data.miniworld.recipe import ARCH, PretrainConfig

RECORD_SCHEMA = "miniworld-pretrain/1"


def probe_checkpoint(weights: str | Path, images: int = 1000, seed: int = 0) -> dict[str, Any]:
    """The probe of a saved checkpoint, with the weights' provenance (file, sha256)."""
    from ...components.weights import build_clip
    from .probe import probe

    model, info = build_clip(ARCH, weights, "cpu")
    return {"weights": info.as_record(), **probe(model, images, seed)}


def pretrain_and_record(cfg: PretrainConfig, out: Path, work_dir: Path, *, device: str = "cpu",
                        progress: bool = True, probe_images: int = 1000, command: str = "") -> dict[str, Any]:
    """Train (resuming from `work_dir`), write `out` and its record `out.with_suffix('.json')`; returns the record."""
    import torch

    from harness.results import environment

    from ...components.weights import TINY_ARCHS, build_clip
    from .pretrain import pretrain, save_checkpoint, write_json
    from .probe import probe

    env = environment(seed=cfg.seed, device=device)  # the code that trains, not the HEAD at the end
    model, summary = pretrain(cfg, work_dir, device, progress=progress)
    model = model.cpu()
    record: dict[str, Any] = {
        "schema": RECORD_SCHEMA,
        "arch": cfg.arch,
        "arch_config": TINY_ARCHS[cfg.arch],
        "command": command,
        "work_dir": str(work_dir),
        **summary,
        "wall_s_total": total_wall(work_dir, summary),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "env": env,
    }
    save_checkpoint(model, out, {"arch": cfg.arch, "recipe": summary["recipe"], "git_sha": env["git_sha"]})
    # Everything below is measured on the file as saved (pruned, fp16), loaded the way every run loads it.
    loaded, info = build_clip(cfg.arch, out, "cpu")
    record["file"] = {**info.as_record(), "bytes": out.stat().st_size, "stored_dtype": "float16",
                      "token_rows_kept": int(torch.load(out, weights_only=True)["token_embedding_rows"].numel())}
    if probe_images:
        start = time.perf_counter()
        record["probe"] = probe(loaded, probe_images, seed=cfg.seed)
        record["probe"]["wall_s"] = round(time.perf_counter() - start, 1)
    write_json(out.with_suffix(".json"), record)
    return record


def total_wall(work_dir: Path, summary: dict[str, Any]) -> float | None:
    """Training wall time over every (resumed) run, kept in a small file in the work dir."""
    path = Path(work_dir) / "wall_s.json"
    runs = json.loads(path.read_text()) if path.exists() else []
    runs.append({"resumed_from": summary["resumed_from"], "steps_done": summary["steps_done"],
                 "wall_s": summary["wall_s_this_run"]})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(runs))
    # a re-run after completion trains nothing; count each step range once
    return round(sum(r["wall_s"] for r in runs if r["steps_done"] > r["resumed_from"]), 1)
