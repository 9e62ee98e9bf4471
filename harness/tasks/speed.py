"""Task `speed`: time a method's whole per-image inference under the protocol of `harness.speed`.

Everything a method needs per image is inside the timer: resizing, the proposal network, every CLIP pass
(all N' crops for SimBaseline), the head and the post-processing back to the original size. Text embeddings
are cached per class list for every method (computed during warm-up; the record says so). Stages are
untrained: speed does not depend on the weights, except SimBaseline's N' (recorded per image).

Options:
  images: 2                    how many images (the first N COCO-Stuff val images when prepared, else synthetic)
  image_sizes: [[480, 640], [427, 640]]   (H, W) of the synthetic images: COCO's typical sizes
  classes: coco_stuff_171      whose class names are classified (171 for COCO-Stuff)
  warmup: 0                    extra untimed rounds after the per-shape warm-up
  repeats: 3                   timed rounds over the images (median and spread over all timed calls)
  budget_s: 120                stop repeating once a cell has spent this long timing (>= 1 round always)
  precision: fp32              fp32 | bf16 | fp16 (autocast)
  tf32: true                   TF32 matmul/cuDNN flags, set explicitly and recorded
  compile: false               torch.compile every module of the method's per-image path (all CLIP passes,
                               SimBaseline's crops included; `Segmenter.prepare_for_timing`)
  cpu: true                    false: the cell runs only on a GPU (ViT-L by default), opt in with true
  breakdown: true              per-stage times and GMAC from an instrumented pass
  batch_size: 1                1 = latency mode; > 1 = throughput mode (per-image figures = batch time / size)
  channels_last: true          convolutions (the proposal network's) in channels-last memory format (about
                               1.2x faster on a CPU; the same numbers up to float rounding)
  seed: 0
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from ..api import Cell, CellResult, CellSkipped, MethodEnv, RunContext, TimingPrep
from ..errors import ConfigError
from ..registries import DATASETS
from .common import method_plugin, vocabulary

DEFAULTS: dict[str, Any] = {
    "images": 2, "image_sizes": [[480, 640], [427, 640]], "classes": "coco_stuff_171", "warmup": 0, "repeats": 3,
    "budget_s": 120.0, "precision": "fp32", "tf32": True, "compile": False, "cpu": True, "breakdown": True,
    "seed": 0, "batch_size": 1, "channels_last": True,
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
    for key in ("images", "repeats", "batch_size"):
        if not isinstance(opts[key], int) or opts[key] < 1:
            raise ConfigError(f"{key} must be a positive integer, got {opts[key]!r}.")
    sizes = opts["image_sizes"]
    if not sizes or not all(isinstance(s, list | tuple) and len(s) == 2 and all(isinstance(v, int) for v in s)
                            for s in sizes):
        raise ConfigError(f"image_sizes must be a list of [height, width] pairs, got {sizes!r}.")
    return opts


def load_images(opts: dict[str, Any], data_root) -> tuple[list, str]:
    """The first N prepared COCO-Stuff val images, or deterministic synthetic images of COCO's sizes."""
    import torch

    from ..data import open_dataset
    from ..errors import DataError

    try:
        dataset = open_dataset("coco_stuff_171", "val", data_root)
        n = min(opts["images"], len(dataset))
        return [dataset[i]["image"] for i in range(n)], f"coco_stuff_171 val, first {n} images"
    except DataError:
        pass
    g = torch.Generator().manual_seed(opts["seed"])
    images = []
    for i in range(opts["images"]):
        h, w = opts["image_sizes"][i % len(opts["image_sizes"])]
        # Smooth random colour fields (not white noise): proposals then see regions, as on photos.
        low = torch.rand(3, max(2, h // 64), max(2, w // 64), generator=g) * 255
        images.append(torch.nn.functional.interpolate(low[None], size=(h, w), mode="bilinear",
                                                      align_corners=False)[0].round().to(torch.uint8))
    sizes = ", ".join(f"{im.shape[1]}x{im.shape[2]}" for im in images)
    return images, f"synthetic ({len(images)} images of COCO's typical sizes: {sizes}; COCO-Stuff not prepared)"


class SpeedTask:
    option_names = tuple(DEFAULTS)

    def check(self, cell: Cell) -> None:
        _options(cell)

    def run(self, cell: Cell, ctx: RunContext) -> CellResult:
        import torch

        from .. import speed
        from ..data import get_info

        opts = _options(cell)
        device = torch.device("cuda" if ctx.device == "auto" and torch.cuda.is_available() else
                              ("cpu" if ctx.device == "auto" else ctx.device))
        if device.type == "cpu" and not opts["cpu"]:
            raise CellSkipped(
                f"{cell.benchmark.name} is timed on a GPU by default (a CPU needs many minutes per image); opt in "
                f"with --set benchmarks.{cell.benchmark.name}.options.cpu=true")
        tf32 = speed.set_tf32(opts["tf32"])
        env = MethodEnv(train_dataset=opts["classes"], data_root=ctx.data_root, cache_dir=ctx.cache_dir,
                        device=str(device), seed=opts["seed"], progress=ctx.progress, log=ctx.log)
        fitted = method_plugin(cell.row.method).build_untrained(cell.method_options, env)
        segmenter = fitted.segmenter
        prepared = segmenter.prepare_for_timing(TimingPrep(channels_last=opts["channels_last"],
                                                           compile=opts["compile"], precision=opts["precision"]))
        info = get_info(opts["classes"])
        vocab = vocabulary(info, zero_shot=False)  # no seen flags (as cross-dataset); the background, if any
        images, source = load_images(opts, ctx.data_root)
        images = [im.to(device) for im in images]  # preloaded: no decoding or copies inside the timer
        b = opts["batch_size"]  # 1: latency mode; > 1: throughput mode (images cycled to fill the batches)
        batches = [[images[(i * b + j) % len(images)] for j in range(b)]
                   for i in range(max(1, math.ceil(len(images) / b)))]

        def infer(batch, timer=None, grad_mode=torch.inference_mode):
            # FlopCounterMode's module hooks need autograd metadata that inference_mode strips: no_grad there.
            with grad_mode(), speed.autocast_context(device, opts["precision"]):
                kwargs = {"timer": timer} if timer is not None else {}
                return segmenter.predict_batch(batch, vocab, max_size=info.test_max_size, **kwargs)

        def progress(done: int, total: int) -> None:
            if ctx.progress:
                from tqdm import tqdm

                tqdm.write(f"  {cell.id}: timed round {done} of {total}")

        timing = speed.time_calls(infer, batches, device, warmup_rounds=opts["warmup"], repeats=opts["repeats"],
                                  budget_s=opts["budget_s"], shape_of=lambda bt: tuple(tuple(im.shape) for im in bt),
                                  progress=progress)
        per_image = speed.Timing([t / b for t in timing.times_s])  # a batch's time shared by its images
        result: dict[str, Any] = {
            **per_image.summary(), "n_images": len(images), "images": source, "batch_size": b,
            "mode": "latency" if b == 1 else "throughput", "precision": opts["precision"],
            "channels_last": opts["channels_last"],
            "compile": opts["compile"], "prepared": prepared, "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "threads": torch.get_num_threads(), "text_cached": True, **tf32,
        }
        counts: dict[str, list[int]] = {}
        if opts["breakdown"]:
            per_batch = []  # times and FLOPs in separate passes: counting is slow
            for batch in batches:
                timer = speed.StageTimer(device)
                infer(batch, timer)
                per_batch.append({k: v / b for k, v in timer.ms.items()})
                for key, values in segmenter.counts.items():
                    counts.setdefault(key, []).extend(values)
            # FLOPs of the first batch only: counting dispatches every op through Python (minutes for
            # SimBaseline's 100 crops at ViT-B size); the other images differ only in size and N'.
            counter = speed.StageTimer(device, count_flops=True)
            with speed.no_grad_params(segmenter):
                infer(batches[0], counter, grad_mode=torch.no_grad)
            result["stages_ms"] = {k: statistics.mean(ms.get(k, 0.0) for ms in per_batch) for k in per_batch[0]}
            result["stage_gmac"] = {k: v / 2e9 / b for k, v in counter.flops.items()}
            result["gmac_of"] = f"batch 0 ({', '.join(str(tuple(im.shape[-2:])) for im in batches[0])})"
            flops = sum(counter.flops.values()) / b
            result["gmac"] = flops / 2e9
            peak, peak_source = speed.device_peak(device, opts["precision"], opts["tf32"])
            batch0_s = statistics.median(timing.times_s[0::len(batches)]) / b  # calls are ordered round by round
            result["achieved_tflops"] = flops / batch0_s / 1e12
            result["peak_tflops"] = peak
            result["peak_source"] = peak_source
            result["peak_fraction"] = result["achieved_tflops"] / peak
            result["peak_percent"] = 100 * result["peak_fraction"]
            result["stage_peak_fraction"] = {
                k: (counter.flops.get(k, 0) / b / (ms / 1000) / 1e12) / peak if ms > 0 else None
                for k, ms in per_batch[0].items()}
        for key, values in counts.items():  # e.g. SimBaseline's N' (CLIP passes): crops_per_image, crops_mean
            if values:
                result[f"{key}_per_image"] = values
                result[f"{key}_mean"] = sum(values) / len(values)
        return CellResult(speed=result, weights=fitted.weights, device=str(device), seed=opts["seed"],
                          extra={"images_source": source})


SPEED = SpeedTask()
