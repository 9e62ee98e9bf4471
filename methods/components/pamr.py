"""Pixel-adaptive mask refinement (PAMR, Araslanov & Roth, CVPR 2020), as NACLIP applies it to its logits.

Math (from the original `pamr.py` of visinf/1-stage-wseg, which NACLIP @0cac3a6 copies; this is our own code):
for every pixel i and dilation d, the 8 neighbours j at offsets d * {-1, 0, 1}^2 \\ {0} (replicate padding at the
border). With the image x (K channels), per channel the unbiased standard deviation sigma_i over the 9 values
(centre and 8 neighbours) of every dilation together (9 * len(dilations) values), the affinity is

    a_ij = softmax_j( mean_k( -|x_ik - x_jk| / (1e-8 + 0.1 * sigma_ik) ) )      over all 8 * len(dilations) j,

and each step replaces the mask (logits, C channels) by m_i <- sum_j a_ij m_j (neighbours only, no centre term).
NACLIP: 10 steps, dilations (8, 16), the image normalised with CLIP's statistics at the original size, the mask
its cosine logits upsampled to that size.

The neighbour values are never stacked for the mask (C can be a few hundred queries over a full image): each step
accumulates over the neighbours one shift at a time, one fused multiply-add pass per neighbour. The refinement runs
a few mask channels at a time, all steps of a chunk before the next (channels do not interact): a chunk and its
padded copy stay in the CPU's cache through the 8 * len(dilations) passes of a step, where the whole mask (171 x
480 x 640 floats, 210 MB) went to memory on every pass (issue 28: 16 s of NACLIP's 17 s per image on a CPU).
The sum runs over the neighbours in the plain formula's order; a product is not rounded before it is added where
the CPU fuses them, so the result equals the plain formula's to float32 rounding (a few 1e-6 of the logits' range;
tests/components/test_pamr.py keeps the previous, product-then-sum code as the reference), not bit for bit. How
the channels are chunked and threaded does not change a bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn.functional as F
from torch import Tensor

from harness.errors import ConfigError

NACLIP_STEPS = 10
NACLIP_DILATIONS = (8, 16)
# Bytes of padded mask refined together: 2 channels at 480x640. Small enough to stay in cache (one thread, 10
# steps at 480x640 with the fused passes: 9.5, 7.4, 8.5, 9.1 and 13.5 ms per channel for chunks of 1, 2, 4, 8 and
# 16 channels), large enough that each op's thread fork/join is negligible. At least one channel.
CHUNK_BYTES = 3 << 20


def _offsets(dilations: Sequence[int], centre: bool) -> list[tuple[int, int, int]]:
    return [(d, dy * d, dx * d) for d in dilations for dy in (-1, 0, 1) for dx in (-1, 0, 1)
            if centre or (dy, dx) != (0, 0)]


def pamr_affinity(image: Tensor, dilations: Sequence[int]) -> Tensor:
    """image (B, K, H, W) -> affinities (B, P, H, W), P = 8 * len(dilations), summing to 1 over P.

    One shifted view at a time of one padded copy (stacking the 9 * len(dilations) shifted images, 18 copies of the
    image at NACLIP's dilations, took most of the 0.3 s this cost at 480x640)."""
    size = tuple(image.shape[-2:])
    pad = max(dilations)  # replicate padding by the largest dilation holds the same values for every smaller one
    padded = F.pad(image, [pad] * 4, mode="replicate")
    views = [padded[..., pad + dy:pad + dy + size[0], pad + dx:pad + dx + size[1]]
             for _, dy, dx in _offsets(dilations, centre=True)]
    mean = torch.zeros_like(image)
    for view in views:
        mean += view
    mean /= len(views)
    spread = torch.zeros_like(image)
    for view in views:  # unbiased variance over the 9 * len(dilations) values, about their mean (two passes)
        centred = view - mean
        spread.addcmul_(centred, centred)
    sigma = spread.div_(len(views) - 1).sqrt_()
    scale = (sigma.mul_(0.1).add_(1e-8)).mul_(image.shape[1]).reciprocal_()  # 1 / (K (1e-8 + 0.1 sigma))
    logits = image.new_empty(image.shape[0], 8 * len(dilations), *size)
    for p, (_, dy, dx) in enumerate(_offsets(dilations, centre=False)):
        shifted = padded[..., pad + dy:pad + dy + size[0], pad + dx:pad + dx + size[1]]
        torch.sum(torch.sub(image, shifted).abs_().mul_(scale), dim=1, out=logits[:, p])
    return logits.neg_().softmax(dim=1)


def pamr(image: Tensor, mask: Tensor, steps: int = NACLIP_STEPS, dilations: Sequence[int] = NACLIP_DILATIONS,
         ) -> Tensor:
    """Refine `mask` (B, C, h, w) with the affinities of `image` (B, K, H, W); the mask is first resized to the
    image (bilinear, align_corners=True, as the original). Computed in float32; returns the mask's dtype."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ConfigError(f"PAMR steps must be an integer >= 0, got {steps!r}.")
    if not dilations or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dilations):
        raise ConfigError(f"PAMR dilations must be integers >= 1, got {list(dilations)!r}.")
    if image.dim() != 4 or mask.dim() != 4 or image.shape[0] != mask.shape[0]:
        raise ValueError(f"pamr takes image (B, K, H, W) and mask (B, C, h, w), got {tuple(image.shape)} and "
                         f"{tuple(mask.shape)}")
    out_dtype = mask.dtype
    image = image.float()
    size = tuple(image.shape[-2:])
    mask = F.interpolate(mask.float(), size=size, mode="bilinear", align_corners=True)
    if steps == 0:
        return mask.to(out_dtype)
    affinity = pamr_affinity(image, dilations)
    out = torch.empty_like(mask)
    if image.device.type != "cpu":  # no cache to fit: the whole mask at once, the fewest kernel launches
        out[:] = _refine_chunk(affinity, mask, steps, dilations)
        return out.to(out_dtype)
    pad = max(dilations)
    chunk = max(1, CHUNK_BYTES // (4 * image.shape[0] * (size[0] + 2 * pad) * (size[1] + 2 * pad)))
    starts = range(0, mask.shape[1], chunk)

    def refine(c0: int) -> None:
        out[:, c0:c0 + chunk] = _refine_chunk(affinity, mask[:, c0:c0 + chunk], steps, dilations)

    threads = torch.get_num_threads()
    if threads == 1 or len(starts) == 1:
        for c0 in starts:
            refine(c0)
        return out.to(out_dtype)
    # Chunks share out the threads, each op on one thread: thousands of small ops each forking and joining every
    # thread cost little on a quiet CPU but several times the work on a loaded one (480x640, 171 channels, 2
    # threads, load average 7: 87-90 s with 2-thread ops, 10-11 s with one chunk per thread; bit-identical either way).
    modes = (torch.is_inference_mode_enabled(), torch.is_grad_enabled())  # thread-local: the workers take ours
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda c0: _one_thread(modes, refine, c0), starts))
    finally:
        torch.set_num_threads(threads)
    return out.to(out_dtype)


def _one_thread(modes: tuple[bool, bool], fn, *args) -> None:
    torch.set_num_threads(1)  # this worker thread's own OpenMP setting
    with torch.inference_mode(modes[0]), torch.set_grad_enabled(modes[1]):
        fn(*args)


def _replicate_border(padded: Tensor, pad: int) -> None:
    """Fill the ``pad``-wide border of ``padded`` (..., H + 2 pad, W + 2 pad) from its interior, as
    ``F.pad(interior, [pad] * 4, mode="replicate")`` does: the side columns first, then whole rows."""
    h, w = padded.shape[-2] - 2 * pad, padded.shape[-1] - 2 * pad
    rows = padded[..., pad:pad + h, :]
    rows[..., :pad] = rows[..., pad:pad + 1]
    rows[..., pad + w:] = rows[..., pad + w - 1:pad + w]
    padded[..., :pad, :] = padded[..., pad:pad + 1, :]
    padded[..., pad + h:, :] = padded[..., pad + h - 1:pad + h, :]


def _refine_chunk(affinity: Tensor, mask: Tensor, steps: int, dilations: Sequence[int]) -> Tensor:
    """``steps`` PAMR steps of ``mask`` (B, c, H, W): two padded buffers (one step reads one and writes the
    other's interior); no allocation per step or neighbour."""
    h, w = mask.shape[-2:]
    pad = max(dilations)  # replicate padding by the largest dilation holds the same values for every smaller one
    src = mask.new_empty(*mask.shape[:-2], h + 2 * pad, w + 2 * pad)
    dst = torch.empty_like(src)
    src[..., pad:pad + h, pad:pad + w] = mask
    _replicate_border(src, pad)
    for _ in range(steps):
        refined = dst[..., pad:pad + h, pad:pad + w]
        for p, (_, dy, dx) in enumerate(_offsets(dilations, centre=False)):
            shifted = src[..., pad + dy:pad + dy + h, pad + dx:pad + dx + w]
            if p == 0:  # 0 + a * m is a * m: start from the first product
                torch.mul(affinity[:, p:p + 1], shifted, out=refined)
            else:  # one pass (a fused multiply-add where the CPU has one) instead of a product and a sum
                refined.addcmul_(affinity[:, p:p + 1], shifted)
        _replicate_border(dst, pad)
        src, dst = dst, src
    return src[..., pad:pad + h, pad:pad + w]
