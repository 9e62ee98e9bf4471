"""What the segmentation and recall tasks share: data on disk, a trained method, the vocabulary of a benchmark.

Both tasks train a method the same way and evaluate it on the same images; only what they measure differs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..api import Cell, Fitted, MethodEnv, RunContext, SegmentationMethod, Vocabulary
from ..registries import METHODS


@dataclass
class Evaluation:
    """A trained method and the benchmark split it is evaluated on."""

    info: Any  # harness.data.DatasetInfo of the evaluated dataset
    dataset: Any  # its split (items: {"image", "label"})
    fitted: Fitted
    n_images: int  # how many of the split's images are evaluated (max_images)
    zero_shot: bool  # trained on this dataset's seen classes: seen / unseen metrics apply


def method_plugin(name: str) -> SegmentationMethod:
    """The registered plugin ``name``; tasks build methods only through `SegmentationMethod`."""
    return METHODS.get(name)


def vocabulary(info, zero_shot: bool) -> Vocabulary:
    """The query vocabulary of a benchmark on dataset ``info``: its class names; the seen flags on zero-shot
    benchmarks; class 0 as the background on datasets that score one (``info.has_background``: VOC-21, PC-60,
    COCO-Object)."""
    names = tuple(info.class_names)
    seen = tuple(i in set(info.seen) for i in range(len(names))) if zero_shot else None
    background = 0 if info.has_background else None
    return Vocabulary(names=names, dataset=info.name, seen=seen, background=background)


def dataset_root(info, root, params: dict):
    """Where dataset ``info`` lives for a run: a real one in the data root; a synthetic one in a folder of the
    data root keyed by its generation parameters, ``_synthetic/<key>``, so two runs that want different
    variants (two profiles on one data root) never regenerate data under each other."""
    import hashlib
    import inspect
    import json

    from ..data.layout import data_root
    from ..data.synthetic import ensure_synthetic

    if not info.synthetic:
        return root
    defaults = {k: p.default for k, p in inspect.signature(ensure_synthetic).parameters.items()
                if p.kind is p.KEYWORD_ONLY}  # {} and the defaults written out are one variant
    full = {**defaults, **params}
    key = hashlib.sha256(json.dumps(full, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return data_root(root) / "_synthetic" / key


def prepare_synthetic(info, root, params: dict):
    """Synthetic datasets are generated and prepared on first use (rank 0 only, under a lock, in their keyed
    folder); returns the root to read ``info`` from."""
    from ..data.synthetic import ensure_synthetic
    from ..train import distributed as dist_utils

    root = dataset_root(info, root, params)
    if info.synthetic and dist_utils.is_main():
        ensure_synthetic(info.name, root, **params)
    dist_utils.barrier()
    return root


def train_for_evaluation(cell: Cell, ctx: RunContext, opts: dict[str, Any]) -> Evaluation:
    """Prepare the data (synthetic sets on first use), open the split, then train (or reuse) the method.

    The split is opened before training so that missing data fails before minutes of training."""
    from ..data import get_info, open_dataset
    from ..data.fingerprint import split_fingerprint
    from ..train.stages import keyed_by_data

    info = get_info(cell.benchmark.dataset)
    train_info = get_info(opts["train_dataset"])
    roots = {name: prepare_synthetic(get_info(name), ctx.data_root, opts["synthetic"])
             for name in dict.fromkeys([train_info.name, info.name])}
    dataset = open_dataset(info.name, opts["split"], roots[info.name])
    train_root = roots[train_info.name]
    env = MethodEnv(train_dataset=opts["train_dataset"], data_root=train_root, cache_dir=ctx.cache_dir,
                    device=ctx.device, seed=opts["seed"], schedules=opts["train"], progress=ctx.progress,
                    log=ctx.log)
    # An evaluation-only dataset (MiniWorld-BG, the val-only real sets) has no training data to key stages by; a
    # method that trains on it fails on the missing split itself, a training-free one needs none.
    fingerprint = split_fingerprint(train_info, "train", train_root) if train_info.layout.train else None
    with keyed_by_data(fingerprint):
        fitted = method_plugin(cell.row.method).fit(cell.method_options, env)  # stages keyed by the data
    n = len(dataset) if opts["max_images"] is None else min(len(dataset), opts["max_images"])
    zero_shot = opts["train_dataset"] == info.name and info.zero_shot
    return Evaluation(info=info, dataset=dataset, fitted=fitted, n_images=n, zero_shot=zero_shot)


def count_summary(counts: dict[str, list[int]], suffix: str) -> dict[str, float]:
    """Per-image counts a segmenter reported (`Segmenter.counts`) -> their means, keyed ``<count><suffix>``."""
    return {f"{key}{suffix}": sum(values) / len(values) for key, values in counts.items() if values}
