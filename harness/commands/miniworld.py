"""MiniWorld: pretrain its tiny CLIP on captions of drawn scenes, and probe what that CLIP knows.

  python -m harness miniworld pretrain [--steps 1500 --batch-size 128 ...]
      trains `miniworld-vit-p8` contrastively (resumable: re-run the same command after an interruption), then
      writes the checkpoint (default results/miniworld/clip.pt: pruned vocabulary, fp16, < 5 MB) and its
      training record beside it (clip.json: recipe, loss curve, wall time, probe results, git sha, sha256).
  python -m harness miniworld probe [--weights results/miniworld/clip.pt]
      image-level accuracy and training-free dense patch classification (vanilla / GPS / last layer dropped).

The segmentation dataset `miniworld` needs no command: suites generate and prepare it on first use.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from datetime import UTC

HELP = "MiniWorld: pretrain its tiny CLIP, or probe a checkpoint's zero-shot signal"
DEFAULT_WEIGHTS = "results/miniworld/clip.pt"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from harness.data.miniworld.recipe import PretrainConfig

    defaults = PretrainConfig()
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    pre = sub.add_parser("pretrain", help="train the tiny CLIP and write checkpoint + record")
    pre.add_argument("--steps", type=int, default=defaults.steps, help=f"default {defaults.steps}")
    pre.add_argument("--batch-size", type=int, default=defaults.batch_size, help=f"default {defaults.batch_size}")
    pre.add_argument("--lr", type=float, default=defaults.lr, help=f"peak learning rate (default {defaults.lr})")
    pre.add_argument("--warmup", type=int, default=defaults.warmup, help=f"warm-up steps (default {defaults.warmup})")
    pre.add_argument("--seed", type=int, default=defaults.seed, help=f"default {defaults.seed}")
    pre.add_argument("--out", default=DEFAULT_WEIGHTS, help=f"checkpoint to write (default {DEFAULT_WEIGHTS})")
    pre.add_argument("--work-dir", default=None,
                     help="resumable training state (default runs/miniworld-pretrain/seed<SEED>)")
    pre.add_argument("--probe-images", type=int, default=1000,
                     help="held-out scenes for the probe written into the record (default 1000; 0 skips it)")
    pre.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    pre.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    pre.add_argument("--no-progress", action="store_true", help="no progress bar")
    pre.add_argument("--no-compile", action="store_true",
                     help="eager mode (same maths; torch.compile costs ~1 min once and then trains several times "
                          "faster)")
    probe = sub.add_parser("probe", help="image-level and dense zero-shot accuracy of a checkpoint")
    probe.add_argument("--weights", default=DEFAULT_WEIGHTS, help=f"default {DEFAULT_WEIGHTS}")
    probe.add_argument("--images", type=int, default=1000, help="held-out scenes (default 1000)")
    probe.add_argument("--seed", type=int, default=0, help="default 0")


def run(args: argparse.Namespace) -> int:
    import json

    from harness.errors import ConfigError

    if args.action == "probe":
        from harness.data.miniworld.probe import probe
        from harness.data.miniworld.recipe import ARCH
        from methods.components.weights import build_clip

        model, info = build_clip(ARCH, args.weights, "cpu")
        print(json.dumps({"weights": info.as_record(), **probe(model, args.images, args.seed)}, indent=2))
        return 0
    if args.steps < 1 or args.batch_size < 2:
        raise ConfigError("miniworld pretrain: --steps must be >= 1 and --batch-size >= 2 (a contrastive batch "
                          "needs negatives).")
    return _pretrain(args)


def _pretrain(args: argparse.Namespace) -> int:
    import time
    from datetime import datetime
    from pathlib import Path

    import torch

    from harness.data.miniworld.pretrain import PretrainConfig, pretrain, save_checkpoint, write_json
    from harness.data.miniworld.probe import probe
    from harness.results import environment
    from methods.components.weights import TINY_ARCHS, build_clip

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = PretrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, warmup=min(args.warmup, args.steps),
                         seed=args.seed, compile=not args.no_compile)
    work_dir = Path(args.work_dir or f"runs/miniworld-pretrain/seed{cfg.seed}")
    out = Path(args.out)
    command = "python -m harness " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv else ""
    env = environment(seed=cfg.seed, device=args.device)  # the code that trains, not the HEAD at the end
    model, summary = pretrain(cfg, work_dir, args.device, progress=not args.no_progress)
    model = model.cpu()
    record = {
        "schema": "miniworld-pretrain/1",
        "arch": cfg.arch,
        "arch_config": TINY_ARCHS[cfg.arch],
        "command": command,
        "work_dir": str(work_dir),
        **summary,
        "wall_s_total": _total_wall(work_dir, summary),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "env": env,
    }
    save_checkpoint(model, out, {"arch": cfg.arch, "recipe": summary["recipe"], "git_sha": record["env"]["git_sha"]})
    # Everything below is measured on the file as saved (pruned, fp16), loaded the way every run loads it.
    loaded, info = build_clip(cfg.arch, out, "cpu")
    record["file"] = {**info.as_record(), "bytes": out.stat().st_size, "stored_dtype": "float16",
                      "token_rows_kept": int(torch.load(out, weights_only=True)["token_embedding_rows"].numel())}
    if args.probe_images:
        start = time.perf_counter()
        record["probe"] = probe(loaded, args.probe_images, seed=cfg.seed)
        record["probe"]["wall_s"] = round(time.perf_counter() - start, 1)
    record_path = out.with_suffix(".json")
    write_json(record_path, record)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB, sha256 {info.sha256[:12]}) and {record_path}")
    if "probe" in record:
        p = record["probe"]
        dense = ", ".join(f"{k} pAcc {v['pacc']:.1f} / mIoU {v['miou']:.1f}" for k, v in p["dense"].items())
        print(f"probe on {p['n_images']} held-out scenes: top-1 class present {100 * p['image_top1_present']:.1f}%; "
              f"dense: {dense}")
    return 0


def _total_wall(work_dir, summary: dict) -> float | None:
    """Training wall time over every (resumed) run, kept in a small file in the work dir."""
    import json
    from pathlib import Path

    path = Path(work_dir) / "wall_s.json"
    runs = json.loads(path.read_text()) if path.exists() else []
    runs.append({"resumed_from": summary["resumed_from"], "steps_done": summary["steps_done"],
                 "wall_s": summary["wall_s_this_run"]})
    path.write_text(json.dumps(runs))
    # a re-run after completion trains nothing; count each step range once
    return round(sum(r["wall_s"] for r in runs if r["steps_done"] > r["resumed_from"]), 1)
