"""The confusion matrix, accumulated on the device in int64 and summable across processes.

Layout: ``matrix[gt, pred]`` (rows ground truth, columns prediction), K x K over the pixels whose ground
truth is a class. The official evaluator keeps a (K+1)^2 matrix indexed ``(K+1) * pred + gt`` with ignore
as class K (METHOD_SPEC §11); every metric it reports uses only the valid-GT part, which is this matrix
(transposed), so nothing is lost by not storing the ignore row.
"""

from __future__ import annotations

import torch

from harness.errors import DataError


class ConfusionMatrix:
    """Counts of (ground truth, prediction) pairs over a whole split."""

    def __init__(self, num_classes: int, device: torch.device | str = "cpu", ignore_index: int = 255,
                 check: bool = True) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.check = check  # range checks cost one device sync per update
        self.matrix = torch.zeros((num_classes, num_classes), dtype=torch.int64, device=device)

    @property
    def device(self) -> torch.device:
        return self.matrix.device

    def update(self, pred: torch.Tensor, gt: torch.Tensor) -> ConfusionMatrix:
        """Add one prediction / ground-truth pair of equal shape (any integer dtype, any batch shape).

        Pixels whose ground truth is `ignore_index` are skipped; any other ground truth or prediction outside
        0..K-1 raises DataError (a silent wrap-around would corrupt every metric).
        """
        if pred.shape != gt.shape:
            raise DataError(f"prediction shape {tuple(pred.shape)} differs from ground truth {tuple(gt.shape)}.")
        k = self.num_classes
        gt = gt.to(self.device, torch.int64).reshape(-1)
        pred = pred.to(self.device, torch.int64).reshape(-1)
        valid = gt != self.ignore_index
        gt, pred = gt[valid], pred[valid]
        if self.check:
            bad_gt = (gt < 0) | (gt >= k)
            bad_pred = (pred < 0) | (pred >= k)
            if bool(bad_gt.any()) or bool(bad_pred.any()):
                raise DataError(
                    f"confusion matrix over {k} classes: {int(bad_gt.sum())} ground-truth and "
                    f"{int(bad_pred.sum())} predicted pixels are outside 0..{k - 1} "
                    f"(ground truth ignore value is {self.ignore_index})."
                )
        self.matrix += torch.bincount(gt * k + pred, minlength=k * k).reshape(k, k)
        return self

    def reset(self) -> None:
        self.matrix.zero_()

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add `other`'s counts into this matrix (in place)."""
        if other.num_classes != self.num_classes:
            raise ValueError(f"cannot merge {other.num_classes}-class and {self.num_classes}-class matrices")
        self.matrix += other.matrix.to(self.device)
        return self

    def __add__(self, other: ConfusionMatrix) -> ConfusionMatrix:
        out = ConfusionMatrix(self.num_classes, self.device, self.ignore_index, self.check)
        out.matrix = self.matrix.clone()
        return out.merge(other)

    def all_reduce(self) -> ConfusionMatrix:
        """Sum the matrix over all processes when torch.distributed is initialised; otherwise a no-op."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(self.matrix, op=dist.ReduceOp.SUM)
        return self

    def numpy(self):
        """The counts as a numpy int64 array (for records and `compute_metrics`)."""
        return self.matrix.detach().cpu().numpy()
