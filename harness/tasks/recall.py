"""Task `recall`: how many ground-truth segments the class-agnostic proposals cover (paper Table 8).

A ground-truth segment is the region of one class in one image (as the proposal network's training targets).
It is recalled at IoU t when some proposal's binary mask (sigmoid > 0.5, at the original image size) overlaps it
with IoU >= t. Recall is a 0-1 fraction, as Table 8 prints it, for all segments and for seen / unseen classes.

Options: seed, train_dataset, split, max_images, train, synthetic (as task `segmentation`), and
thresholds: [0.3, 0.5].
"""

from __future__ import annotations

from typing import Any

from ..api import Cell, CellResult, ProposalSource, RunContext, Task
from ..errors import ConfigError
from .common import train_for_evaluation
from .segmentation import OPTIONS as SEGMENTATION_OPTIONS
from .segmentation import preflight_problems, segmentation_options


def _options(cell: Cell) -> dict[str, Any]:
    opts = dict(cell.task_options)
    thresholds = opts.pop("thresholds", [0.3, 0.5])
    if not thresholds or not all(isinstance(t, int | float) and 0 < t <= 1 for t in thresholds):
        raise ConfigError(f"thresholds must be IoU values in (0, 1], got {thresholds!r}.")
    unknown = sorted(set(opts) - set(SEGMENTATION_OPTIONS))
    if unknown:
        raise ConfigError(f"unknown option(s) {unknown} for task 'recall'.")
    from dataclasses import replace

    base = segmentation_options(replace(cell, task_options=opts))
    return {**base, "thresholds": [float(t) for t in thresholds]}


def segment_recall(mask_probs, label, ignore_index: int, thresholds: list[float]) -> list[tuple[int, list[bool]]]:
    """For each class region of ``label``: (class id, [recalled at t for t in thresholds])."""
    import torch

    binary = (mask_probs > 0.5).flatten(1).float()  # (Q, HW)
    flat = label.flatten()
    out = []
    for cls in torch.unique(flat).tolist():
        if cls == ignore_index:
            continue
        gt = (flat == cls).float()
        inter = binary @ gt
        union = binary.sum(1) + gt.sum() - inter
        best = float((inter / union.clamp(min=1)).max()) if binary.shape[0] else 0.0
        out.append((int(cls), [best >= t for t in thresholds]))
    return out


class RecallTask(Task):
    option_names = tuple(SEGMENTATION_OPTIONS)

    def check(self, cell: Cell) -> None:
        _options(cell)

    def preflight(self, cell: Cell, ctx: RunContext) -> list[str]:
        from dataclasses import replace

        opts = {k: v for k, v in cell.task_options.items() if k != "thresholds"}
        return preflight_problems(replace(cell, task_options=opts), ctx)

    def run(self, cell: Cell, ctx: RunContext) -> CellResult:
        import torch

        from ..train import distributed as dist_utils

        opts = _options(cell)
        evaluation = train_for_evaluation(cell, ctx, opts)
        info, dataset, fitted, n = evaluation.info, evaluation.dataset, evaluation.fitted, evaluation.n_images
        segmenter = fitted.segmenter
        if not isinstance(segmenter, ProposalSource):
            raise ConfigError(f"task 'recall' measures class-agnostic proposals; method {cell.row.method!r} has "
                              "none (its segmenter is not a harness.api.ProposalSource).")
        device = segmenter.device

        unseen = set(info.unseen)
        counts = torch.zeros(3, 1 + len(opts["thresholds"]), dtype=torch.int64)  # rows: all, seen, unseen
        for i in range(n)[dist_utils.rank()::dist_utils.world_size()]:
            item = dataset[i]
            probs = segmenter.proposal_masks(item["image"], max_size=info.test_max_size)
            for cls, hits in segment_recall(probs, item["label"].to(device), info.ignore_index, opts["thresholds"]):
                row = torch.tensor([1, *map(int, hits)])
                counts[0] += row
                counts[2 if cls in unseen else 1] += row
        dist_utils.all_reduce_sum(counts)
        metrics: dict[str, Any] = {}
        for t_index, t in enumerate(opts["thresholds"]):
            key = f"recall@{round(t * 100)}"
            for row, suffix in ((0, ""), (1, "_seen"), (2, "_unseen")):
                if counts[row, 0] > 0 and (row == 0 or unseen):
                    metrics[key + suffix] = float(counts[row, 1 + t_index] / counts[row, 0])
        return CellResult(metrics=metrics, weights=fitted.weights, device=str(device), seed=opts["seed"],
                          extra={"segments": {"all": int(counts[0, 0]), "seen": int(counts[1, 0]),
                                              "unseen": int(counts[2, 0])}, "eval_images": n,
                                 "stages": fitted.stages})


RECALL = RecallTask()
