"""MiniWorld: pretrain its tiny CLIP on captions of drawn scenes, and probe what that CLIP knows.

  python -m harness miniworld pretrain [--steps 1500 --batch-size 128 ...]
      trains `miniworld-vit-p8` contrastively (resumable: re-run the same command after an interruption), then
      writes the checkpoint (default results/miniworld/clip.pt: pruned vocabulary, fp16, < 5 MB) and its
      training record beside it (clip.json: recipe, loss curve, wall time, probe results, git sha, sha256).
  python -m harness miniworld probe [--weights results/miniworld/clip.pt]
      image-level accuracy and training-free dense patch classification (vanilla / GPS / last layer dropped).

The segmentation dataset `miniworld` needs no command: suites generate and prepare it on first use. Training and
probing are model code (`methods.tools.miniworld`), reached through the TOOLS registry.
"""

from __future__ import annotations

import argparse
import shlex
import sys

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
    from pathlib import Path

    from harness.data.miniworld.recipe import PretrainConfig
    from harness.errors import ConfigError
    from harness.registries import TOOLS

    if args.action == "probe":
        print(json.dumps(TOOLS.get("miniworld-probe")(args.weights, args.images, args.seed), indent=2))
        return 0
    if args.steps < 1 or args.batch_size < 2:
        raise ConfigError("miniworld pretrain: --steps must be >= 1 and --batch-size >= 2 (a contrastive batch "
                          "needs negatives).")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    cfg = PretrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                         warmup=min(args.warmup, args.steps), seed=args.seed, compile=not args.no_compile)
    out = Path(args.out)
    command = "python -m harness " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv else ""
    record = TOOLS.get("miniworld-pretrain")(
        cfg, out, Path(args.work_dir or f"runs/miniworld-pretrain/seed{cfg.seed}"), device=args.device,
        progress=not args.no_progress, probe_images=args.probe_images, command=command)
    file = record["file"]
    print(f"wrote {out} ({file['bytes'] / 1e6:.2f} MB, sha256 {file['sha256'][:12]}) and {out.with_suffix('.json')}")
    if "probe" in record:
        p = record["probe"]
        dense = ", ".join(f"{k} pAcc {v['pacc']:.1f} / mIoU {v['miou']:.1f}" for k, v in p["dense"].items())
        print(f"probe on {p['n_images']} held-out scenes: top-1 class present {100 * p['image_top1_present']:.1f}%; "
              f"dense: {dense}")
    return 0
