"""Task `segmentation`: train a method on a dataset's seen classes, evaluate it on a split with all classes.

Zero-shot benchmarks train and test on the same dataset (seen-only training labels, all classes at test);
cross-dataset benchmarks set ``train_dataset`` (e.g. COCO-Stuff) and test on another dataset's classes.
Evaluation is sharded across ranks under torchrun and the confusion matrices are summed.

Options (suite ``defaults`` / benchmark ``options``):
  seed: 0                      training and sampling seed
  train_dataset: <dataset>     where the method is trained (default: the benchmark's dataset)
  split: val                   the evaluation split
  max_images: null             evaluate only the first N images (smoke profiles)
  convention: d2-v0.6          mIoU convention (d2-v0.6 | gt-present); the record also holds both
                               conventions' headline metrics (metrics_by_convention)
  bootstrap: {resamples: 1000, level: 0.95, seed: 0}   intervals over images from the per-image evidence
                               written beside the record (metrics_ci; harness.eval.bootstrap)
  train: {prompts: {...}, proposals: {...}, head: {...}}   per-stage schedule overrides (iters, batch_size,
                               lr, crop, min_sizes, ...); absent keys follow the official recipe
  synthetic: {n_train, n_val, size, seed}   for synthetic_* datasets: generated and prepared in the data root
                               on first use (deterministic), so smoke suites need no download
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..api import Cell, CellResult, CellSkipped, RunContext, Task
from ..errors import ConfigError
from ..eval.bootstrap import BootstrapSettings
from ..registries import DATASETS
from ..train.settings import check_train_settings
from .common import count_summary, method_plugin, train_for_evaluation, vocabulary

OPTIONS: dict[str, type | tuple[type, ...]] = {
    "seed": int, "train_dataset": str, "split": str, "max_images": (int, type(None)), "convention": str,
    "train": dict, "synthetic": dict, "bootstrap": dict,
}
SYNTHETIC_KEYS = {"n_train", "n_val", "size", "seed"}
# generated images are size x (size .. 1.5 size): a few pixels break the models, a huge size is a memory bomb
SYNTHETIC_RANGES = {"n_train": (0, 100_000), "n_val": (1, 100_000), "size": (16, 2048), "seed": (0, 2**32 - 1)}


def segmentation_options(cell: Cell) -> dict[str, Any]:
    """The task options of a segmentation cell, checked, with their defaults (also read by `recall` and
    `templates rank`)."""
    opts = dict(cell.task_options)
    unknown = sorted(set(opts) - set(OPTIONS))
    if unknown:
        raise ConfigError(f"unknown option(s) {unknown} for task 'segmentation'; known: {', '.join(OPTIONS)}.")
    for key, kind in OPTIONS.items():
        if key in opts and not isinstance(opts[key], kind):
            raise ConfigError(f"option {key}={opts[key]!r} has the wrong type for task 'segmentation'.")
    check_train_settings(opts.get("train", {}))
    bad_synth = sorted(set(opts.get("synthetic", {})) - SYNTHETIC_KEYS)
    if bad_synth:
        raise ConfigError(f"synthetic: unknown key(s) {bad_synth}; known: {', '.join(sorted(SYNTHETIC_KEYS))}.")
    ranges = {"seed": (0, 2**32 - 1), "max_images": (1, None), **{f"synthetic.{k}": v for k, v in SYNTHETIC_RANGES.items()}}
    for key, (low, high) in ranges.items():
        value = (opts.get("synthetic") or {}).get(key.split(".")[1]) if "." in key else opts.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low
                                  or (high is not None and value > high)):
            raise ConfigError(f"option {key}={value!r} must be an integer in [{low}, {high or 'inf'}].")
    if cell.benchmark.dataset is None:
        raise ConfigError("task 'segmentation' needs a dataset.")
    train_dataset = opts.get("train_dataset", cell.benchmark.dataset)
    if train_dataset not in DATASETS:
        raise ConfigError(f"train_dataset: {DATASETS.unknown_message(train_dataset)}")
    from ..eval.metrics import check_convention

    check_convention(opts.get("convention", "d2-v0.6"))
    opts["bootstrap"] = BootstrapSettings.from_options(opts.get("bootstrap"), "bootstrap")
    return {"seed": 0, "split": "val", "max_images": None, "convention": "d2-v0.6", "train": {}, "synthetic": {},
            **opts,
            "train_dataset": train_dataset}


def benchmark_settings(cell: Cell) -> dict[str, Any] | None:
    """What the cell's method runs with on the benchmark's dataset (name file, per-dataset settings): the plugin's
    ``benchmark_settings(options, dataset)``; its `ConfigError` (e.g. a background threshold on a dataset without
    background) stops the run before anything starts. None: the method has no background decision."""
    settings = method_plugin(cell.row.method).benchmark_settings(cell.method_options, cell.benchmark.dataset)
    return None if settings is None else dict(settings)


def _skip_without_background_rule(cell: Cell) -> None:
    """A benchmark with a background class (VOC-21, PC-60, COCO-Object) scores it; a method without a background
    decision (its `benchmark_settings` is None, e.g. DeOP, trained without a background class) is not meant for
    it: the cell is recorded as not run, with why, instead of training for a meaningless number."""
    from ..data import get_info

    if get_info(cell.benchmark.dataset).has_background and benchmark_settings(cell) is None:
        raise CellSkipped(f"method {cell.row.method!r} has no background decision (a background query and "
                          f"prob_thd); {cell.benchmark.dataset!r} has a background class. The training-free "
                          f"family's with-background benchmarks are for methods that have one.")


def preflight_problems(cell: Cell, ctx: RunContext) -> list[str]:
    """Missing datasets and weights of a train-and-evaluate cell, found before anything runs."""
    from ..data import get_info, verify_prepared
    from ..errors import DataError

    opts = segmentation_options(cell)
    problems = []
    for name in dict.fromkeys([opts["train_dataset"], cell.benchmark.dataset]):
        info = get_info(name)
        if info.synthetic:
            continue  # generated on first use
        try:
            verify_prepared(info, ctx.data_root)
        except DataError as exc:
            problems.append(str(exc))
    plugin = method_plugin(cell.row.method)
    return (problems + list(plugin.preflight(cell.method_options))
            + list(plugin.dataset_preflight(cell.method_options, cell.benchmark.dataset)))


class SegmentationTask(Task):
    option_names = tuple(OPTIONS)

    def check(self, cell: Cell) -> None:
        segmentation_options(cell)
        benchmark_settings(cell)

    def preflight(self, cell: Cell, ctx: RunContext) -> list[str]:
        return preflight_problems(cell, ctx)

    def run(self, cell: Cell, ctx: RunContext) -> CellResult:
        from tqdm import tqdm

        from ..eval import ConfusionMatrix
        from ..eval.metrics import compute_metrics
        from ..eval.per_image import PerImageCounter
        from ..eval.record_evidence import evidence_fields, headline_by_convention
        from ..train import distributed as dist_utils

        opts = segmentation_options(cell)
        _skip_without_background_rule(cell)
        evaluation = train_for_evaluation(cell, ctx, opts)
        info, dataset, fitted, n = evaluation.info, evaluation.dataset, evaluation.fitted, evaluation.n_images
        segmenter = fitted.segmenter
        device = segmenter.device
        zero_shot = evaluation.zero_shot
        vocab = vocabulary(info, zero_shot)
        names = list(vocab.names)
        indices = list(range(n))[dist_utils.rank()::dist_utils.world_size()]
        matrix = ConfusionMatrix(len(names), device=device, ignore_index=info.ignore_index)
        seen, unseen = (info.seen, info.unseen) if zero_shot else (None, ())
        per_image = PerImageCounter(len(names), info.ignore_index, seen=seen or (), unseen=unseen)
        counts: dict[str, list[int]] = {}
        writer = _prediction_writer(cell, ctx, info)
        for i in tqdm(indices, desc=f"evaluate {info.name}", unit="img", leave=False,
                      disable=not ctx.progress or not dist_utils.is_main()):
            item = dataset[i]
            scores = segmenter.predict(item["image"], vocab, max_size=info.test_max_size)
            prediction = scores.argmax(0)
            matrix.update(prediction, item["label"].to(device))
            per_image.add(Path(str(item.get("file_name", i))).name, prediction, item["label"])
            if writer is not None:
                writer.add(item["file_name"], prediction)
            for key, values in segmenter.counts.items():
                counts.setdefault(key, []).extend(values)
        matrix.all_reduce()
        metrics = compute_metrics(matrix, seen=seen, unseen=unseen, convention=opts["convention"], class_names=names)
        evidence = per_image.gather().evidence()
        extra = {"eval_images": n, "eval_split": opts["split"], "train_dataset": opts["train_dataset"],
                 "stages": fitted.stages, "world_size": dist_utils.world_size(),
                 "metrics_by_convention": headline_by_convention(matrix.numpy(), seen=seen, unseen=unseen),
                 **evidence_fields(evidence, opts["convention"], opts["bootstrap"])}
        settings = benchmark_settings(cell)
        if settings is not None:
            extra["benchmark_settings"] = settings
        extra.update(count_summary(counts, "_per_image_mean"))  # e.g. SimBaseline's crops_per_image_mean
        if writer is not None:
            extra["predictions"] = writer.close()
        return CellResult(metrics=metrics, weights=fitted.weights, miou_convention=opts["convention"],
                          confusion=matrix.numpy(), evidence=evidence, device=str(device), seed=opts["seed"], extra=extra,
                          method_spec={"stage_hashes": fitted.weights.get("stages", {})})


def _prediction_writer(cell: Cell, ctx: RunContext, info):
    """With run --save-predictions: a writer into ``<record stem>.predictions/`` beside the cell's record."""
    if ctx.save_predictions is None:
        return None
    from ..eval.prediction_files import PredictionWriter
    from ..runner import record_path

    record = record_path(ctx.out_dir, cell)
    return PredictionWriter(ctx.save_predictions, record.with_name(f"{record.stem}.predictions"), info)


SEGMENTATION = SegmentationTask()
