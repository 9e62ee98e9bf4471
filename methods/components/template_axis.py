"""The template axis: the 80 ImageNet templates, a single template, a file of one's own, or FLOSS's per-class
experts (yasserben/FLOSS @ccf1d49, ICCV 2025), our own code from its facts.

`templates:` values (`parse_templates`): "imagenet" (the 80 CLIP ImageNet templates, in OpenAI's order, which is
FLOSS's template id order), "single" ("a sculpture of a {}."), a path ending in ".txt" (one template per line, each
with exactly one "{}"), or "floss:<rankings.json>" (per-class experts from a rankings file).

FLOSS, read from `mmseg/evaluation/metrics/entropy_metric.py` and `mmseg/models/segmentors/naclip/naclip.py`:
- Ranking (`TemplateEntropy`): each template t alone builds the classifier of every class; on unlabelled images
  of the benchmark's train split, for each class c, the softmax probability vectors of the pixels predicted as c
  give a pixel-weighted mean entropy -sum p log(p + 1e-10) (per image the mean over its c pixels, weighted by
  their count). Templates are ranked by ascending entropy; those that never predicted c (pixel share 0) are
  dropped; the first `top_n` (4) are class c's experts.
- Expert classifiers (`expert_classifiers`): expert c's classifier embeds *every* class name with class c's
  expert templates (normalised, averaged, renormalised); the default classifier uses all 80.
- Fusion (`fuse_experts`): expert c claims the pixels whose argmax under its classifier is c. A pixel claimed by
  exactly one expert takes that expert's probability vector; by none, the default's; by several, the vector of the
  claiming expert whose probability of its own class is highest (the first on ties).
- Where (naclip.py `forward_feature`, fusion mode): per sliding window, each classifier's cosine logits at the
  patch grid -> softmax(logit_scale * .) over the queries -> bilinear to the window -> fusion; the fused
  probabilities are what the windows average, what is upsampled and refined by PAMR, and what `postprocess_result`
  softmaxes (logit_scale) again before the class maximum over synonyms and the argmax. One expert per *query* (its
  class's templates); the rankings are per class.
`fuse_experts` fuses one expert at a time (memory for one expert's maps, not E of them); the tests hold the
whole-tensor formulas from the official code as references. `FlossTemplates` turns a rankings file into each
query's expert templates.
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from harness.errors import ConfigError

from .text import TEMPLATE_SETS

FLOSS_TOP_N = 4  # naclip.py / dinoclip_inferencer.py default top_n
# FLOSS ranks per method and dataset (rankings/<method>/template_rankings_<method>_<dataset>.json): one setting of a
# suite names every cell's file through these fields of the path
FLOSS_PATH_FIELDS = ("method", "dataset")
ENTROPY_EPS = 1e-10


def parse_templates(value: str) -> tuple[str, tuple[str, ...] | None]:
    """-> (kind, templates): ("set", the set's templates), ("file", the file's), ("floss", None); ConfigError
    naming `templates` otherwise."""
    if not isinstance(value, str):
        raise ConfigError(f"option templates must be a string, got {value!r}.")
    if value in TEMPLATE_SETS:
        return "set", TEMPLATE_SETS[value]
    if value.startswith("floss:"):
        if not value[len("floss:"):].endswith(".json"):
            raise ConfigError(f"option templates={value!r}: FLOSS needs a rankings file, 'floss:<path>.json'.")
        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(value) if f is not None}
        except ValueError as exc:
            raise ConfigError(f"option templates={value!r}: {exc}.") from None
        if not fields <= set(FLOSS_PATH_FIELDS):
            raise ConfigError(f"option templates={value!r}: the rankings path may hold "
                              f"{', '.join('{' + f + '}' for f in FLOSS_PATH_FIELDS)}, got {sorted(fields)}.")
        return "floss", None
    if value.endswith(".txt"):
        return "file", load_template_file(value)
    raise ConfigError(f"option templates={value!r}: use one of {', '.join(TEMPLATE_SETS)}, a '.txt' file of "
                      f"templates, or 'floss:<rankings>.json'.")


def load_template_file(path: str | Path) -> tuple[str, ...]:
    """One template per non-empty line, each with exactly one "{}"."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"option templates={str(path)!r}: no such file.")
    lines = [line.strip() for line in p.read_text(encoding="utf-8").splitlines()]
    out = tuple(line for line in lines if line)
    bad = [i + 1 for i, line in enumerate(lines) if line and line.count("{}") != 1]
    if not out or bad:
        raise ConfigError(f"option templates={str(path)!r}: every line needs exactly one '{{}}' "
                          f"({'empty file' if not out else f'lines {bad}'}).")
    return out


class TemplateEntropy:
    """FLOSS's ranking statistics, accumulated image by image (module docstring)."""

    def __init__(self, n_templates: int, n_classes: int) -> None:
        self.sums = np.zeros((n_templates, n_classes))
        self.counts = np.zeros((n_templates, n_classes))
        self.total_pixels = 0.0

    def count_image(self, n_pixels: int) -> None:
        """One more image of `n_pixels` pixels (the denominator of every pixel share)."""
        self.total_pixels += float(n_pixels)

    def add_template(self, t: int, probs: Tensor) -> None:
        """probs (K, H, W): one image's class probabilities under template t alone (after `count_image`); one
        template at a time, so that an image never holds all templates' maps at once."""
        probs = probs.float()
        pred = probs.argmax(0)
        entropy = -(probs * torch.log(probs + ENTROPY_EPS)).sum(0)
        for c in torch.unique(pred).tolist():
            mask = pred == c
            n = int(mask.sum())
            self.sums[t, c] += float(entropy[mask].mean()) * n
            self.counts[t, c] += n

    def as_json(self, class_names: Sequence[str]) -> dict:
        """The rankings in FLOSS's file layout, read back by `load_rankings`."""
        return {"classes": {name: {"entropy_ranking": ranking}
                            for name, ranking in zip(class_names, self.rankings(), strict=True)}}

    def rankings(self) -> list[list[dict]]:
        """Per class: [{"template_id", "entropy", "pixel_percentage"}] by ascending entropy (stable)."""
        out = []
        for c in range(self.sums.shape[1]):
            rows = [{"template_id": t,
                     "entropy": self.sums[t, c] / self.counts[t, c] if self.counts[t, c] else 0.0,
                     "pixel_percentage": 100.0 * self.counts[t, c] / self.total_pixels if self.total_pixels else 0.0}
                    for t in range(self.sums.shape[0])]
            out.append(sorted(rows, key=lambda r: r["entropy"]))
        return out

    def experts(self, top_n: int = FLOSS_TOP_N) -> list[list[int]]:
        return select_experts(self.rankings(), top_n)


def select_experts(rankings: Sequence[Sequence[Mapping]], top_n: int = FLOSS_TOP_N) -> list[list[int]]:
    """The first `top_n` template ids of each class among those with a pixel share > 0."""
    if isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1:
        raise ConfigError(f"option top_n must be an integer >= 1, got {top_n!r}.")
    out = []
    for c, ranking in enumerate(rankings):
        ids = [int(r["template_id"]) for r in ranking if r["pixel_percentage"] > 0.0][:top_n]
        if not ids:
            raise ConfigError(f"FLOSS: class {c} was never predicted under any template on the ranking images: "
                              f"it has no expert templates.")
        out.append(ids)
    return out


def load_rankings(path: str | Path, class_names: Sequence[str]) -> list[list[dict]]:
    """A rankings JSON in FLOSS's layout ({"classes": {name: {"entropy_ranking": [...]}}}), in class order."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"option templates='floss:{path}': no such rankings file.")
    classes = json.loads(p.read_text(encoding="utf-8")).get("classes", {})
    missing = [n for n in class_names if n not in classes or "entropy_ranking" not in classes[n]]
    if missing:
        raise ConfigError(f"option templates='floss:{path}': no entropy ranking for classes {missing}.")
    return [list(classes[n]["entropy_ranking"]) for n in class_names]


def fuse_experts(expert_probs: Callable[[int], Tensor], n_experts: int, default_probs: Tensor) -> Tensor:
    """FLOSS's fusion one expert at a time: expert_probs(e) -> (..., K, H, W), default_probs (..., K, H, W).

    A pixel takes the first claiming expert whose own-class probability is strictly above every earlier
    claimer's (the official conflict loop: best starts at -1, so a lone claimer always wins); unclaimed pixels
    keep the default's vector."""
    best = torch.full_like(default_probs[..., 0, :, :], -1.0)
    fused = default_probs
    for e in range(n_experts):
        probs = expert_probs(e)
        own = probs[..., e, :, :]
        take = (probs.argmax(-3) == e) & (own > best)
        best = torch.where(take, own, best)
        fused = torch.where(take.unsqueeze(-3), probs, fused)
    return fused


def expert_classifiers(per_template: Tensor, experts: Sequence[Sequence[int]]) -> Tensor:
    """per_template (T, Q, D): every query under each template alone, L2-normalised; experts[e]: expert e's
    template ids -> (E, Q, D), each row the renormalised mean of its templates' rows (FLOSS's expert classifier,
    from embeddings encoded once per template, not once per expert)."""
    return torch.stack([F.normalize(per_template[list(ids)].mean(0), dim=-1) for ids in experts])


@dataclass(frozen=True)
class FlossTemplates:
    """`templates: floss:<rankings>.json`: the rankings file (its path may hold {method} and {dataset}, filled with
    the plugin's name and the benchmark's dataset) and how many experts each class keeps."""

    rankings: str
    top_n: int = FLOSS_TOP_N
    method: str = ""

    @classmethod
    def from_option(cls, value: str, top_n: int, method: str = "") -> FlossTemplates:
        kind, _ = parse_templates(value)
        if kind != "floss":
            raise ConfigError(f"option templates={value!r} is not a FLOSS value ('floss:<rankings>.json').")
        return cls(value[len("floss:"):], top_n, method)

    def rankings_file(self, dataset: str | None) -> str:
        return self.rankings.format(method=self.method, dataset=dataset or "")

    def query_experts(self, dataset: str | None, class_names: Sequence[str],
                      query_class: Sequence[int]) -> list[list[int]]:
        """Each query's expert template ids: its class's first `top_n` (rankings are per class, experts per query,
        as FLOSS's template_dict maps every query word to its class's templates)."""
        per_class = select_experts(load_rankings(self.rankings_file(dataset), class_names), self.top_n)
        return [per_class[c] for c in query_class]
