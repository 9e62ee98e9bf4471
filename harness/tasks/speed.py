"""Task `speed`: time methods' whole per-image inference under the protocol of `harness.speed`.

Everything a method needs per image is inside the timer: resizing, the proposal network, every CLIP pass
(all N' crops for SimBaseline), the head and the post-processing back to the original size. Text embeddings
are cached per class list for every method (computed before the warm-up call by `Segmenter.prepare_vocabulary`,
or in it; the record says so). Stages are
untrained: speed does not depend on the weights, except SimBaseline's N' (recorded per image).

The methods of one benchmark and setting are timed together (`run_group`; the runner groups their cells):
built side by side, then timed round by round on the same images, the order rotated each round. Each record
holds its own median and spread as before, plus ``paired.fps_ratio``: its speed over every other method of the
group as the median of per-round ratios (with quartiles and spread), the figure `harness check` and the
table's "x SimBaseline" column use. The stage breakdown is, on a GPU, the median of ``breakdown_passes``
instrumented passes per method (interleaved the same way; their syncs would perturb the headline, so stages are
timed apart from it and need not sum to it), and on a CPU, where the stage timer synchronises nothing, the median
over the timed rounds themselves (`breakdown_in`). FLOPs are counted once per method, resolved options and input
shapes in a process, and reused by a later group with the same (DeOP's cells as published and matched). On a CPU the peak is the best of short matmul samples taken before every round, their spread recorded.
``flags`` names each figure of the record whose spread exceeds ``spread_limit`` (the table marks them).

Options:
  images: 2                    how many images (the first N COCO-Stuff val images when prepared, else synthetic)
  image_sizes: [[480, 640], [427, 640]]   (H, W) of the synthetic images: COCO's typical sizes
  classes: coco_stuff_171      whose class names are classified (171 for COCO-Stuff)
  warmup: 0                    extra untimed rounds after the per-shape warm-up
  repeats: 3                   timed rounds over the images (median and spread over all timed calls)
  budget_s: 120                stop repeating once the group has spent this long per method (>= 1 round always)
  precision: fp32              fp32 | bf16 | fp16 (autocast)
  tf32: true                   TF32 matmul/cuDNN flags, set explicitly and recorded
  compile: false               torch.compile every module of the method's per-image path (all CLIP passes,
                               SimBaseline's crops included; `Segmenter.prepare_for_timing`)
  cpu: true                    false: the cell runs only on a GPU (ViT-L by default), opt in with true
  gpu_only_rows: []            rows (suite method names) whose cells of this benchmark run only on a GPU; a CPU
                               opts in by emptying the list: methods added without making a CPU run longer
  skip_rows: []                rows never timed on this benchmark (no published variant at its size), said why
  breakdown: true              per-stage times (see breakdown_in) and GMAC (see gmac)
  breakdown_passes: 3          instrumented passes per method; the breakdown is their median
  gmac: true                   with the breakdown, count each method's FLOPs (on a CPU in its warm-up call when
                               it prepares its vocabulary ahead, else one more call; reused within a process):
                               GMAC, % of peak; false: stage times only
  breakdown_in: auto           where the stage times come from: rounds (the timed calls themselves: a CPU only,
                               where the stage timer synchronises nothing; no instrumented passes run) | passes
                               (separate instrumented passes) | auto (rounds on a CPU, passes on a GPU)
  spread_limit: 0.1            a figure whose relative spread ((p75 - p25) / median) exceeds this is flagged
  interleave: true             time the methods of a benchmark and setting together (all built at once: memory
                               of every method); false: each cell alone, ratios between cells unpaired
  mode: latency                latency (batch 1, the paper's FPS) | throughput (batch_size >= 2 images of one size,
                               the first of image_sizes: per-image figures = batch time / size; `tasks/throughput.py`)
  batch_size: 1                images per call: 1 in latency mode, e.g. 8 or 32 in throughput mode
  cuda_graphs: auto            replay each method's whole call from a CUDA graph per input shape (captured after
                               warm-up, static buffers; a call that synchronises with the host runs eagerly and
                               the record says why): auto = on a GPU, off on a CPU; true needs a GPU; false: eager
  cast_weights: true           under bf16/fp16, cast the weight matrices once to that precision (autocast then
                               re-casts nothing per call); recorded in `prepared` (`harness/speed_prep.py`)
  channels_last: true          convolutions (the proposal network's) in channels-last memory format (about
                               1.2x faster on a CPU; the same numbers up to float rounding)
  fold_norms: true             fold frozen normalisation layers into the convolution before them (the proposal
                               network's frozen BNs: about 7% of its CPU time; the same numbers up to float
                               rounding)
  seed: 0
"""

from __future__ import annotations

import json
import math
from typing import Any

from ..api import Cell, CellResult, CellSkipped, RunContext, Task
from ..errors import ConfigError
from ..registries import DATASETS
from ..suite import thaw
from .throughput import check_mode

DEFAULTS: dict[str, Any] = {
    "images": 2, "image_sizes": [[480, 640], [427, 640]], "classes": "coco_stuff_171", "warmup": 0, "repeats": 3,
    "budget_s": 120.0, "precision": "fp32", "tf32": True, "compile": False, "cpu": True, "breakdown": True,
    "breakdown_passes": 3, "spread_limit": 0.1, "interleave": True, "seed": 0, "batch_size": 1,
    "channels_last": True, "fold_norms": True, "mode": "latency", "cuda_graphs": "auto", "cast_weights": True,
    "breakdown_in": "auto", "gmac": True, "gpu_only_rows": [], "skip_rows": [],
}
PRECISIONS = ("fp32", "bf16", "fp16")


def _options(cell: Cell) -> dict[str, Any]:
    opts = {**DEFAULTS, **dict(cell.task_options)}
    unknown = sorted(set(opts) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown option(s) {unknown} for task 'speed'; known: {', '.join(DEFAULTS)}.")
    if opts["precision"] not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {opts['precision']!r}.")
    if opts["classes"] not in DATASETS:
        raise ConfigError(f"classes: {DATASETS.unknown_message(opts['classes'])}")
    for key in ("images", "repeats", "batch_size", "breakdown_passes"):
        if not isinstance(opts[key], int) or isinstance(opts[key], bool) or opts[key] < 1:
            raise ConfigError(f"{key} must be a positive integer, got {opts[key]!r}.")
    if not isinstance(opts["warmup"], int) or isinstance(opts["warmup"], bool) or opts["warmup"] < 0:
        raise ConfigError(f"warmup must be an integer >= 0, got {opts['warmup']!r}.")
    for key, low, high in (("budget_s", 0.0, math.inf), ("spread_limit", 0.0, 1.0)):
        value = opts[key]
        if not isinstance(value, int | float) or isinstance(value, bool) or not low < value <= high:
            raise ConfigError(f"{key} must be a number in ({low:g}, {high:g}], got {value!r}.")
    for key in ("tf32", "compile", "cpu", "breakdown", "gmac", "channels_last", "fold_norms", "interleave", "cast_weights"):
        if not isinstance(opts[key], bool):
            raise ConfigError(f"{key} must be true or false, got {opts[key]!r}.")
    if opts["breakdown_in"] not in ("auto", "rounds", "passes"):
        raise ConfigError(f"breakdown_in must be auto, rounds or passes, got {opts['breakdown_in']!r}.")
    for key in ("gpu_only_rows", "skip_rows"):
        if not isinstance(opts[key], list | tuple) or not all(isinstance(r, str) for r in opts[key]):
            raise ConfigError(f"{key} must be a list of row names, got {opts[key]!r}.")
    if opts["cuda_graphs"] not in ("auto", True, False):
        raise ConfigError(f"cuda_graphs must be auto, true or false, got {opts['cuda_graphs']!r}.")
    check_mode(opts)
    sizes = opts["image_sizes"]
    if not sizes or not all(isinstance(s, list | tuple) and len(s) == 2 and all(isinstance(v, int) and v > 0
                                                                                 for v in s) for s in sizes):
        raise ConfigError(f"image_sizes must be a list of [height, width] pairs, got {sizes!r}.")
    return opts


def _device(ctx: RunContext):
    import torch

    if ctx.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(ctx.device)


class SpeedTask(Task):
    option_names = tuple(DEFAULTS)

    def check(self, cell: Cell) -> None:
        _options(cell)

    def skip_reason(self, cell: Cell, ctx: RunContext) -> str | None:
        """Why ``cell`` will not run here (a GPU-only benchmark on a CPU), or None."""
        opts = _options(cell)
        name = cell.benchmark.name
        if cell.row.name in opts["skip_rows"]:
            return f"{cell.row.name} is not timed on {name} (skip_rows: no published variant at this size)"
        if _device(ctx).type != "cpu":
            return None
        if not opts["cpu"]:
            return (f"{name} is timed on a GPU by default (a CPU needs many minutes per image); opt "
                    f"in with --set benchmarks.{name}.options.cpu=true")
        if cell.row.name in opts["gpu_only_rows"]:
            return (f"{cell.row.name} is timed on {name} on a GPU by default (the CPU job keeps its length); opt in "
                    f"with --set benchmarks.{name}.options.gpu_only_rows=[]")
        return None

    def group_key(self, cell: Cell) -> str | None:
        """Cells of one benchmark and setting with the same options are timed together (unless interleave is
        false: then each alone)."""
        if not _options(cell)["interleave"]:
            return None
        return json.dumps([cell.benchmark.name, cell.setting.name, thaw(cell.task_options)], sort_keys=True,
                          default=str)

    def run(self, cell: Cell, ctx: RunContext) -> CellResult:
        (result,) = self.run_group([cell], ctx)
        if isinstance(result, BaseException):
            raise result
        return result

    def run_group(self, cells: list[Cell], ctx: RunContext) -> list[CellResult | Exception]:
        """Build every method of ``cells``, time them interleaved, and return one result per cell (or the
        exception of a method that failed; the others are still measured)."""
        from .speed_group import GroupTiming

        reason = self.skip_reason(cells[0], ctx)
        if reason:
            return [CellSkipped(reason) for _ in cells]
        if _options(cells[0])["cuda_graphs"] is True and _device(ctx).type != "cuda":
            error = ConfigError(f"cuda_graphs: true needs a GPU, this run is on {_device(ctx)}; use auto or false.")
            return [error for _ in cells]
        if _options(cells[0])["breakdown_in"] == "rounds" and _device(ctx).type != "cpu":
            error = ConfigError(f"breakdown_in: rounds times stages inside the timed calls, which needs a CPU (on "
                                f"{_device(ctx)} the stage timer synchronises); use auto or passes.")
            return [error for _ in cells]
        return GroupTiming(cells, _options(cells[0]), _device(ctx), ctx).run()


SPEED = SpeedTask()
