"""What the paper's Figures 5 and 8 show, for chosen patches of one image through a one-pass method:

- the last CLIP block's self-attention row of the patch, softmax(Q K^T / sqrt(d)) averaged over heads, as
  vanilla CLIP computes it from that block's input (paper Sec. 4.1, "disorganized" in Fig. 5);
- the same row under the method's patch severance of the last block: the matrix the rule mixes the values with,
  as the rule itself writes it (`AttnRule.attention`, e.g. GPS alpha*I + (1-alpha)*A, paper Eq. 2), so a new
  rule needs nothing here;
- the proposal mask of the segment containing the patch: the proposal q that contributes most to the
  patch's predicted class k, argmax_q p_q(k) * m_q(patch) (the semantic map is sum_q p_q(k) m_q);
- that proposal's CAL anchor heatmap (paper Eq. 3 / 4), or, for methods without CAL, its mask-pooling weights.

Everything comes from one `classify` call of the segmenter: forward hooks read the last block's ln_1 output
(the attention input, prompts and earlier severance included) and the CAL decoder's heatmaps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.errors import ConfigError
from harness.viz.maps import AttentionMaps, PatchMaps

from ..components.anchors import masks_to_grid
from ..components.attention_rules import AttnRule, vanilla_attention
from ..components.proposals import class_probs_without_void, mask_probs_at_image
from ..pipelines.onepass import OnePassSegmenter


def self_attention_rows(attn: nn.MultiheadAttention, x: torch.Tensor, tokens: Sequence[int]) -> torch.Tensor:
    """Rows ``tokens`` of softmax(Q K^T / sqrt(d_head)) averaged over heads, for the block input ``x`` (T, C)
    (the ln_1 output). Returns (len(tokens), T); each row sums to 1."""
    return vanilla_attention(attn, x.float()).mean(0)[list(tokens)]


def severed_rows(rule: AttnRule | None, attn: nn.MultiheadAttention, x: torch.Tensor, tokens: Sequence[int],
                 mask_tokens: torch.Tensor | None) -> torch.Tensor | None:
    """The rows of the matrix that ``rule`` mixes the values with (its own `AttnRule.attention`, averaged over
    heads), for the same tokens; None without a rule (CLIP's own attention). ``mask_tokens`` (T, N): proposal
    probabilities per token, CLS row of ones (as the rules get them)."""
    if rule is None:
        return None
    return rule.attention(x.float(), attn, mask_tokens).mean(0)[list(tokens)]


@torch.no_grad()
def attention_maps(segmenter, image: np.ndarray, class_names: Sequence[str],
                   patches: Sequence[tuple[int, int]] | None = None, n_auto: int = 3,
                   max_size: int = 2560) -> AttentionMaps:
    """The maps of the module docstring for ``image`` (H, W, 3) uint8. ``patches``: pixels (x, y) to show; None
    picks one patch in each of the ``n_auto`` largest predicted segments (its most confident patch)."""
    if not isinstance(segmenter, OnePassSegmenter):
        raise ConfigError(f"attention figures need a one-pass method (CLIP sees the whole image once); "
                          f"{type(segmenter).__name__} does not. Use --method deop or a baseline.")
    dense = segmenter.dense
    h0, w0 = image.shape[:2]
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    (resized,), padded = segmenter.preprocess([tensor], max_size)
    hr, wr = resized.shape[-2:]

    captured: dict[str, torch.Tensor] = {}
    last = dense.visual.transformer.resblocks[-1]
    hooks = [last.ln_1.register_forward_hook(lambda _m, _i, out: captured.__setitem__("x", out))]
    if segmenter.head is not None:
        hooks.append(segmenter.head.register_forward_hook(lambda _m, _i, out: captured.__setitem__("heat", out[1])))
    try:
        logits, mask_logits = segmenter.classify(padded, list(class_names))
    finally:
        for hook in hooks:
            hook.remove()

    grid = dense.grid_for(*padded.shape[-2:])
    ph, pw = dense.patch_size
    inside = (math.ceil(hr / ph), math.ceil(wr / pw))  # the cells that cover the image, not the padding
    x = captured["x"]
    x = x[0] if x.shape[0] == 1 else x[:, 0]  # (T, C); open_clip blocks that are not batch-first see (T, B, C)
    probs = class_probs_without_void(logits[0])  # (Q, K)
    masks = masks_to_grid(mask_logits, grid)[0]  # (Q, gh, gw)
    scores = torch.einsum("qk,qhw->khw", probs, masks)[:, : inside[0], : inside[1]]
    scale = (hr / h0, wr / w0)
    cells = (_cells_from_pixels(patches, scale, (ph, pw), inside, (h0, w0)) if patches is not None
             else _auto_cells(scores, n_auto))

    tokens = [1 + r * grid[1] + c for r, c in cells]
    vanilla = self_attention_rows(last.attn, x, tokens)
    rule = dense.attention_rules.get(len(dense.visual.transformer.resblocks) - 1)
    mask_tokens = None
    if rule is not None and rule.needs_masks:
        mask_tokens = dense._mask_tokens(mask_logits, grid, tuple(padded.shape[-2:]), 1)[0]  # the rule's own input
    severed = severed_rows(rule, last.attn, x, tokens, mask_tokens)

    def on_grid(row: torch.Tensor) -> np.ndarray:
        return row[1:].view(grid)[: inside[0], : inside[1]].cpu().numpy()

    out = []
    for i, (r, c) in enumerate(cells):
        k = int(scores[:, r, c].argmax())
        q = int((probs[:, k] * masks[:, r, c]).argmax())
        mask = mask_probs_at_image(mask_logits[:, q: q + 1], (hr, wr), tuple(padded.shape[-2:]))
        mask = F.interpolate(mask, size=(h0, w0), mode="bilinear", align_corners=False)[0, 0]
        heat = captured["heat"][0, q] if "heat" in captured else masks[q]
        xy = patches[i] if patches is not None else (int((c + 0.5) * pw / scale[1]), int((r + 0.5) * ph / scale[0]))
        out.append(PatchMaps(
            xy=(int(xy[0]), int(xy[1])), cell=(r, c), class_index=k, proposal=q, vanilla=on_grid(vanilla[i]),
            vanilla_cls=float(vanilla[i, 0]), severed=None if severed is None else on_grid(severed[i]),
            mask=mask.cpu().numpy(), heatmap=heat[: inside[0], : inside[1]].float().cpu().numpy()))
    spec = segmenter.spec
    kind = f"CAL {spec.cal} heatmap" if segmenter.head is not None else "mask pooling weights (no CAL)"
    return AttentionMaps(image=image, class_names=list(class_names), cell_size=(ph / scale[0], pw / scale[1]),
                         severance="none" if rule is None else rule.label(), heatmap_kind=kind, patches=out)


def _cells_from_pixels(patches: Sequence[tuple[int, int]], scale: tuple[float, float], patch: tuple[int, int],
                       inside: tuple[int, int], size: tuple[int, int]) -> list[tuple[int, int]]:
    cells = []
    for x, y in patches:
        if not (0 <= x < size[1] and 0 <= y < size[0]):
            raise ConfigError(f"patch ({x}, {y}) lies outside the {size[1]}x{size[0]} image; give pixel "
                              "coordinates x,y inside it.")
        cells.append((min(int(y * scale[0] // patch[0]), inside[0] - 1),
                      min(int(x * scale[1] // patch[1]), inside[1] - 1)))
    return cells


def _auto_cells(scores: torch.Tensor, n: int) -> list[tuple[int, int]]:
    """One cell per predicted segment, largest segments first: the cell where its class scores highest."""
    labels = scores.argmax(0)
    counts = torch.bincount(labels.flatten(), minlength=scores.shape[0])
    cells = []
    for k in counts.argsort(descending=True)[:n].tolist():
        if counts[k] == 0:
            break
        masked = torch.where(labels == k, scores[k], torch.full_like(scores[k], -1.0))
        flat = int(masked.argmax())
        cells.append(divmod(flat, scores.shape[-1]))
    return cells
