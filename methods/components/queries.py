"""The text side of the training-free family: queries with synonyms, and the per-pixel decision
(TRAINING_FREE_SPEC 2, "Text" and "Decision").

- A class may have several names (synonyms); each is its own text query, mapped to its class. The text
  embedding of a query is the 80 OpenAI ImageNet templates, each L2-normalised, averaged and renormalised
  (`TextEncoder(mode="templates", templates="imagenet")` computes exactly that).
- Decision: `softmax(tau * logits)` over all queries, class probability = max over the class's queries, argmax.
- Only where the benchmark has a background class (usually class 0; its queries are the name file's background words):
  pixels whose highest class probability is below `prob_thd` become background, and (SCLIP, VOC-21) a
  foreground class whose predicted area is at most `area_thd` of the predicted foreground is suppressed first.
  On a benchmark without background a threshold would silently push pixels into some real class
  (SCLIP issue #2: 0.07 mIoU), so asking for one is an error.
- `bg-thresh` (TCL / GroupViT lineage, Talk2DINO's `dinotext_seg.py`): no softmax and no threshold test; the
  background class's channel is the constant `bg_thresh` beside the foreground scores (sigmoids in [0, 1]) and
  the argmax decides, so a pixel is background where no class scores above it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from harness.errors import ConfigError
from harness.parts import Part, option, part_table, register_part

DECISIONS = part_table("decision")  # the per-pixel decisions, parts of kind "decision" (harness list parts)


@dataclass(frozen=True)
class QuerySet:
    """The text queries of a vocabulary: `queries[i]` stands for class `query_class[i]`; `background` is the index
    of the background class, or None when the benchmark has none."""

    queries: tuple[str, ...]
    query_class: tuple[int, ...]
    n_classes: int
    background: int | None = None

    def __post_init__(self) -> None:
        if not self.queries or len(self.queries) != len(self.query_class):
            raise ConfigError(f"a query set needs one class per query, got {len(self.queries)} queries and "
                              f"{len(self.query_class)} classes.")
        if sorted(set(self.query_class)) != list(range(self.n_classes)):
            raise ConfigError(f"every class 0..{self.n_classes - 1} needs at least one query, got classes "
                              f"{sorted(set(self.query_class))}.")
        if self.background is not None and not 0 <= self.background < self.n_classes:
            raise ConfigError(f"background={self.background} is not a class index (0..{self.n_classes - 1}).")

    @classmethod
    def from_lines(cls, lines: Sequence[str], separator: str = ", ", *, background: int | None = None,
                   ) -> QuerySet:
        """One class per line, its synonyms separated by `separator` (", " in the SCLIP family's name files,
        "; " in ProxyCLIP's); `background`: the index of the background line (its words), if any."""
        queries: list[str] = []
        classes: list[int] = []
        for index, line in enumerate(lines):
            names = [n.strip() for n in str(line).split(separator) if n.strip()]
            if not names:
                raise ConfigError(f"class {index} of the vocabulary has no name (line {line!r}).")
            queries += names
            classes += [index] * len(names)
        return cls(tuple(queries), tuple(classes), len(lines), background)

    @classmethod
    def plain(cls, names: Sequence[str], *, background: int | None = None) -> QuerySet:
        """One query per class, the name as it is (no synonym splitting)."""
        return cls(tuple(str(n) for n in names), tuple(range(len(names))), len(names), background)

    @property
    def has_synonyms(self) -> bool:
        return len(self.queries) != self.n_classes


# An upper bound: an infinite or huge tau turns softmax(tau * cosine) into NaN (every pixel class 0).
MAX_TAU = 1000.0


@register_part
@dataclass(frozen=True)
class Decision(Part):
    """`tau` the logit scale; `prob_thd` and `area_thd` need a background class (0 = off)."""

    kind: ClassVar[str] = "decision"
    name: ClassVar[str] = "threshold"
    description: ClassVar[str] = ("softmax(tau * logits), max over a class's queries, argmax; below prob_thd (and "
                                  "classes of area <= area_thd) -> background")

    tau: float = option(40.0, "the logit scale (CLIP's own is 100)", low=0.0, low_open=True, high=MAX_TAU)
    prob_thd: float = option(0.0, "probability below which a pixel is background (0: off)", low=0.0, high=1.0,
                             high_open=True)
    area_thd: float = option(0.0, "foreground share at or below which a class is dropped (0: off)", low=0.0,
                             high=1.0, high_open=True)


    def check(self, queries: QuerySet, dataset: str = "this benchmark") -> None:
        """Refuse thresholds on a vocabulary without background (see the module docstring)."""
        if queries.background is not None:
            return
        for name in ("prob_thd", "area_thd"):
            if getattr(self, name) > 0:
                raise ConfigError(
                    f"{name}={getattr(self, name)} needs a background class, and {dataset} has none: pixels below "
                    f"the threshold would be labelled as class 0 ({queries.queries[0]!r}), a real class here "
                    f"(the known trap of SCLIP issue #2, near-zero mIoU). Set {name}: 0 for this benchmark.")


def class_probabilities(logits: Tensor, queries: QuerySet, tau: float) -> Tensor:
    """logits (Q, H, W) cosine similarities -> (K, H, W): softmax(tau * logits) over the queries, then the
    maximum over each class's queries."""
    if logits.shape[0] != len(queries.queries):
        raise ValueError(f"{logits.shape[0]} logit maps for {len(queries.queries)} queries")
    probs = torch.softmax(tau * logits.float(), dim=0)
    if not queries.has_synonyms:
        return probs
    index = torch.as_tensor(queries.query_class, device=probs.device).view(-1, *([1] * (probs.dim() - 1)))
    out = probs.new_full((queries.n_classes, *probs.shape[1:]), -1.0)
    return out.scatter_reduce(0, index.expand_as(probs), probs, reduce="amax", include_self=True)


def decide(probs: Tensor, queries: QuerySet, decision: Decision) -> Tensor:
    """Class probabilities (K, H, W) -> scores (K, H, W) whose argmax is the decision: the probabilities, with a
    suppressed class's probabilities set to 0 and the background score of every thresholded pixel set to 1 (it
    then wins: the other probabilities lie below `prob_thd` < 1)."""
    decision.check(queries)
    scores = probs.clone()
    bg = queries.background
    if decision.area_thd > 0:  # SCLIP: area of each foreground class among the foreground argmax pixels
        labels = scores.argmax(dim=0)
        area = torch.bincount(labels.flatten(), minlength=queries.n_classes).to(scores.dtype)
        area[bg] = 0
        keep = area > decision.area_thd * area.sum()
        keep[bg] = True
        scores *= keep.to(scores.dtype).view(-1, *([1] * (scores.dim() - 1)))
    if decision.prob_thd > 0:
        low = scores.max(dim=0).values < decision.prob_thd
        scores[bg][low] = 1.0
    return scores


@register_part
@dataclass(frozen=True)
class ConstantBackground(Part):
    """The `bg-thresh` decision (module docstring); Talk2DINO's image model carries its `bg_thresh`."""

    kind: ClassVar[str] = "decision"
    name: ClassVar[str] = "bg-thresh"
    description: ClassVar[str] = ("the background channel is the constant bg_thresh beside the foreground scores; "
                                  "argmax (TCL / Talk2DINO)")

    bg_thresh: float = option(0.55, "constant score of the background channel (VOC-21)", low=0.0, high=1.0)

    def scores(self, foreground: Tensor, n_classes: int, background: int | None) -> Tensor:
        """foreground (F, H, W): the scores of every class but `background`, in class order -> (K, H, W) scores
        whose argmax is the decision (without a background class: the foreground scores as they are)."""
        if foreground.shape[0] != n_classes - (background is not None):
            raise ValueError(f"{foreground.shape[0]} foreground score maps for {n_classes} classes "
                             f"(background {background})")
        if background is None:
            return foreground.clone()
        # concatenated around the background's place, not indexed with a list (a host list copied in per call)
        constant = foreground.new_full((1, *foreground.shape[1:]), self.bg_thresh)
        return torch.cat([foreground[:background], constant, foreground[background:]])
