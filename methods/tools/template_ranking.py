"""FLOSS's template rankings (yasserben/FLOSS @ccf1d49, `compute_metric` mode and entropy_metric.py), our code:
each of the 80 ImageNet templates alone classifies the unlabelled images of a benchmark's train split through the
method's own dense path (windows, upsampling, PAMR), softmax(tau * .) and the maximum over synonyms give class
probabilities, and `TemplateEntropy` ranks the templates per class. Reached through the TOOLS registry as
"template-rankings" (``python -m harness templates rank``); the file it returns is what
``templates: floss:<file>`` reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from harness.api import Vocabulary
from harness.errors import ConfigError

from ..components.queries import class_probabilities
from ..components.template_axis import TemplateEntropy
from ..pipelines.dense import DenseSegmenter

TEMPLATES_PER_PASS = 8  # templates whose logits go through the dense path together (channels are independent)


@torch.no_grad()
def template_rankings(segmenter: Any, images: Iterable[Tensor], vocab: Vocabulary,
                      progress: Callable[[int], None] = lambda i: None) -> dict[str, Any]:
    """Images (3, H, W) uint8 of the train split -> {"classes": {name: {"entropy_ranking": [...]}}}.

    The templates go through the dense path a few at a time, their classifiers stacked as channels: windows,
    bilinear resizing and PAMR act on each channel alone, so this equals one pass per template."""
    if not isinstance(segmenter, DenseSegmenter) or segmenter.floss is not None:
        raise ConfigError("template rankings need a method of the dense training-free pipeline (MaskCLIP, NACLIP, "
                          "SCLIP, ...) with templates other than floss:... .")
    spec = segmenter.spec.for_dataset(vocab.dataset)
    queries = segmenter.queries(vocab, spec.names)
    per_template = segmenter.template_classifiers(queries.queries).to(segmenter.device)  # (T, Q, D)
    n_templates, n_queries, dim = per_template.shape
    stats = TemplateEntropy(n_templates, queries.n_classes)
    for i, image in enumerate(images):
        stats.count_image(image.shape[-2] * image.shape[-1])
        for start in range(0, n_templates, TEMPLATES_PER_PASS):
            chunk = per_template[start:start + TEMPLATES_PER_PASS]
            logits = segmenter.query_logits(image, vocab, chunk.reshape(-1, dim))
            for j, template_logits in enumerate(logits.split(n_queries)):
                stats.add_template(start + j, class_probabilities(template_logits, queries, spec.tau))
        progress(i + 1)
    return stats.as_json(vocab.names)
