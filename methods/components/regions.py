"""SimBaseline's multi-pass mask classification: masked region crops, one CLIP call, geometric ensemble.

METHOD_SPEC 3 ([S] `clip_adapter/adapter.py` L118-197, `utils.py` L111-168, `zero_shot_mask_former_model.py`
L205-278): binarise each mask at 0.5; keep every proposal with a non-empty binary mask (no score threshold, no
top-k); crop its tight box (x2 = max+1) from the resized test image (0-255), fill outside the binary mask with the
CLIP mean colour, normalise with the CLIP mean/std, bicubic-resize to 224x224 ignoring aspect ratio; classify
the CLS embeddings against [text ; void] x100 with the void column dropped before the softmax; ensemble
geometrically with the MaskFormer scores using exponents lam (seen) / 1-lam (unseen).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
import torch.nn.functional as F

from harness.errors import ConfigError

# CLIP's image statistics on 0-255 RGB; MASK_FILL "mean" uses the same colour (122.77, 116.75, 104.09).
CLIP_MEAN_255: tuple[float, float, float] = (0.48145466 * 255, 0.4578275 * 255, 0.40821073 * 255)
CLIP_STD_255: tuple[float, float, float] = (0.26862954 * 255, 0.26130258 * 255, 0.27577711 * 255)


def mask_boxes(binary_masks: torch.Tensor) -> torch.Tensor:
    """(N,H,W) bool -> (N,4) int64 tight boxes (x1, y1, x2, y2) with x2/y2 exclusive (detectron2
    `BitMasks.get_bounding_boxes`); empty masks give (0, 0, 0, 0)."""
    _, h, w = binary_masks.shape
    as_bytes = binary_masks.view(torch.uint8)  # amax over uint8 is several times faster than any() over bool
    rows = as_bytes.amax(dim=2)
    cols = as_bytes.amax(dim=1)
    nonempty = rows.amax(dim=1) > 0
    y1 = rows.argmax(dim=1)
    y2 = h - rows.flip(1).argmax(dim=1)
    x1 = cols.argmax(dim=1)
    x2 = w - cols.flip(1).argmax(dim=1)
    boxes = torch.stack([x1, y1, x2, y2], dim=1).to(torch.int64)
    return boxes * nonempty[:, None]


def region_crops(
    image: torch.Tensor,
    mask_probs: torch.Tensor,
    threshold: float = 0.5,
    size: int = 224,
    fill: tuple[float, float, float] = CLIP_MEAN_255,
    mean: tuple[float, float, float] = CLIP_MEAN_255,
    std: tuple[float, float, float] = CLIP_STD_255,
    batched: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """image (3,H,W) float 0-255, mask_probs (N,H,W) -> (crops (N',3,size,size) CLIP-normalised, keep_index (N',)).

    keep_index lists the proposals whose binary mask (prob > threshold) is non-empty, ascending. Each crop is
    composited and resized on its own (bicubic on the exact tight box, as the official code); normalising the
    image once and filling with the normalised fill colour equals the official fill-then-normalise order.
    Cost is one pass over the masks for the boxes plus, per kept proposal, one multiply and one resize of its
    box (tests/benchmarks/test_bench_regions.py). ``batched`` (default: on any device but a CPU) cuts and resizes
    every crop at once (`_resize_crops_batched`: the same bicubic weights as matrices, equal to the loop up to float
    rounding), so the host reads only N' (one ``nonzero``) and launches a handful of kernels instead of N' resizes.
    """
    if image.dim() != 3 or image.shape[0] != 3 or mask_probs.dim() != 3 or mask_probs.shape[-2:] != image.shape[-2:]:
        raise ConfigError(
            f"region_crops needs image (3,H,W) and mask_probs (N,H,W) of the same H,W; got {tuple(image.shape)} "
            f"and {tuple(mask_probs.shape)}. Bring the masks to the resized test image first."
        )
    binary = mask_probs > threshold
    boxes = mask_boxes(binary)
    keep = (boxes[:, 2] > 0).nonzero()[:, 0]  # N': the one value the host must read (the crops' count)
    if keep.numel() == 0:
        return image.new_zeros((0, 3, size, size), dtype=torch.float32), keep
    img = image.float()
    mean_t = img.new_tensor(mean).view(3, 1, 1)
    std_t = img.new_tensor(std).view(3, 1, 1)
    fill_t = (img.new_tensor(fill).view(3, 1, 1) - mean_t) / std_t
    # where(m, x, fill) = (x - fill) * m + fill, and bicubic weights sum to one: the fill is added after resizing
    shifted = (img - mean_t) / std_t - fill_t
    if batched if batched is not None else image.device.type != "cpu":
        return _resize_crops_batched(shifted, binary[keep], boxes[keep], size) + fill_t, keep
    crops = []
    for n, (x1, y1, x2, y2) in zip(keep.tolist(), boxes[keep].tolist()):
        region = shifted[:, y1:y2, x1:x2] * binary[n, y1:y2, x1:x2]
        crops.append(F.interpolate(region[None], size=(size, size), mode="bicubic", align_corners=False))
    return torch.cat(crops) + fill_t, keep


BICUBIC_A = -0.75  # PyTorch's (and OpenCV's) cubic convolution coefficient


def bicubic_matrix(lo: torch.Tensor, hi: torch.Tensor, size: int, length: int) -> torch.Tensor:
    """(N,) box starts and exclusive ends -> (N, size, length) matrices R with R[n] @ v = F.interpolate of
    v[lo[n]:hi[n]] to ``size`` samples (bicubic, align_corners False, no antialias): PyTorch's source index
    in / out * (dst + 0.5) - 0.5 and coefficients (A = -0.75) in float32 as its kernel computes them, the four
    taps clamped to the box."""
    n_in = (hi - lo).float()
    src = (n_in / size)[:, None] * (torch.arange(size, device=lo.device, dtype=torch.float32)[None] + 0.5) - 0.5
    first = torch.minimum(src.floor(), n_in[:, None] - 1)
    t = (src - first).clamp(0, 1)
    a = BICUBIC_A

    def near(x):  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    weights = torch.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], dim=-1)
    taps = first[..., None] + torch.arange(-1, 3, device=lo.device, dtype=torch.float32)
    taps = torch.minimum(taps.clamp(min=0), n_in[:, None, None] - 1).long() + lo[:, None, None]
    out = torch.zeros(lo.shape[0], size, length, device=lo.device, dtype=torch.float32)
    return out.scatter_add_(2, taps, weights)


def _resize_crops_batched(shifted: torch.Tensor, binary: torch.Tensor, boxes: torch.Tensor, size: int,
                          chunk: int = 16) -> torch.Tensor:
    """shifted (3,H,W), binary (N',H,W) of the kept masks, boxes (N',4) -> (N',3,size,size): each masked box
    resized as `region_crops`' loop does, all at once. The mask is zero outside its tight box, so multiplying the
    whole image by it and weighting rows and columns by box-bounded bicubic matrices is that crop exactly (up to
    summation order); ``chunk`` crops at a time bound the (chunk,3,H,W) masked copies. In fp32 (no autocast, no
    TF32) like the resize it replaces, which runs in the image's precision."""
    _, h, w = shifted.shape
    with torch.autocast(shifted.device.type, enabled=False), _full_fp32_matmul():
        return _resize_in_chunks(shifted.float(), binary, boxes, size, chunk, h, w)


@contextlib.contextmanager
def _full_fp32_matmul():
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old


def _resize_in_chunks(shifted, binary, boxes, size, chunk, h, w):
    rows = bicubic_matrix(boxes[:, 1], boxes[:, 3], size, h)
    cols = bicubic_matrix(boxes[:, 0], boxes[:, 2], size, w)
    out = []
    for i in range(0, binary.shape[0], chunk):
        masked = shifted[None] * binary[i:i + chunk, None]
        out.append(rows[i:i + chunk, None] @ masked @ cols[i:i + chunk, None].transpose(-1, -2))
    return torch.cat(out) if out else shifted.new_zeros((0, 3, size, size))


def clip_region_probs(
    encode_image: Callable[[torch.Tensor], torch.Tensor],
    crops: torch.Tensor,
    text_embeddings: torch.Tensor,
    void_embedding: torch.Tensor | None = None,
    temperature: float = 100.0,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """CLIP class probabilities of the crops: (N',K) = softmax over the K classes of temperature * cos.

    `encode_image` maps (n,3,224,224) to (n,E) (CLIP's CLS embedding). All crops go in one call unless
    `chunk_size` bounds memory. The void logit ([S] adapter non-object embedding) is computed and dropped before
    the softmax (METHOD_SPEC 3 step 3), so it does not change the probabilities; it is accepted for parity.
    """
    k = text_embeddings.shape[0]
    if crops.shape[0] == 0:
        return text_embeddings.new_zeros((0, k), dtype=torch.float32)
    step = chunk_size or crops.shape[0]
    feats = torch.cat([encode_image(crops[i:i + step]) for i in range(0, crops.shape[0], step)])
    classifier = F.normalize(text_embeddings.float(), dim=-1)
    if void_embedding is not None:
        classifier = torch.cat([classifier, F.normalize(void_embedding.float()[None], dim=-1)])
    logits = temperature * F.normalize(feats.float(), dim=-1) @ classifier.t()
    return logits[:, :k].softmax(-1)


def scatter_to_queries(p_clip: torch.Tensor, keep_index: torch.Tensor, num_queries: int
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """(N',K) probabilities of the kept proposals -> ((Q,K) with ones for the others, valid (Q,) bool)."""
    full = p_clip.new_ones((num_queries, p_clip.shape[1]))
    full[keep_index] = p_clip
    valid = torch.zeros(num_queries, dtype=torch.bool, device=p_clip.device)
    valid[keep_index] = True
    return full, valid


def ensemble(
    p_mask: torch.Tensor,
    p_clip: torch.Tensor,
    seen_mask: torch.Tensor | None,
    lam: float,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Geometric ensemble of MaskFormer (Q,K) and CLIP (Q,K) class probabilities (METHOD_SPEC 3 step 4).

    seen class: p_mask^lam * p_clip^(1-lam); unseen (or seen_mask None, as in every cross-dataset test):
    p_mask^(1-lam) * p_clip^lam. Proposals with an empty binary mask (valid False) keep p_clip = 1.
    lam <= 0: CLIP only; the official code then drops the invalid proposals, here their rows are zero so they
    add nothing to the semantic map.
    """
    q, k = p_mask.shape
    if valid is None:
        valid = torch.ones(q, dtype=torch.bool, device=p_mask.device)
    if lam <= 0:
        return p_clip * valid[:, None].to(p_clip.dtype)
    p_clip = torch.where(valid[:, None], p_clip, torch.ones_like(p_clip))
    seen = torch.zeros(k, dtype=torch.bool, device=p_mask.device) if seen_mask is None else seen_mask.bool()
    seen_scores = p_mask.pow(lam) * p_clip.pow(1 - lam)
    unseen_scores = p_mask.pow(1 - lam) * p_clip.pow(lam)
    return torch.where(seen[None, :], seen_scores, unseen_scores)
