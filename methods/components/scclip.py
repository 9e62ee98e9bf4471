"""SC-CLIP (SuleBai/SC-CLIP @0417ba9, arXiv 2411.15869): self-calibrated CLIP, our own code from its facts.

Read from `clip/model.py` L208-373 (`lof_pytorch`, `VisionTransformer.forward`, `custom_attn`,
`adaptively_aggregate`, `mean_interpolation`); "block b" is the output of the b-th residual block (1-based), the
official `feats_list[b - 1]`:
1. Outliers among the patch tokens entering the last block (block L-1's output): LOF with k = 30 neighbours, the
   5% highest scores (`lof_scores`, variant "official": the repository's `lof_pytorch` on squared Euclidean
   distances, each point's reach distance being its own k-distance, threshold `torch.quantile(scores, 0.95)`,
   strict >; variant "sklearn": scikit-learn's `LocalOutlierFactor`, the textbook LOF the paper cites). Each
   outlier becomes the mean of its non-outlier 3x3 neighbours (`repair_outliers`); the same positions are
   repaired in the pre-aggregation layer's tokens.
2. Pre-aggregation: S = cosine similarity of the (repaired) block-`pre` patch tokens (pre = 9 on ViT-B/16);
   x <- rownorm(S with entries < beta set to 0) x, beta = 0.4, rows normalised by their sum + 1e-6 (`aggregate`).
3. The last block's attention (`mixed_attention`): A = 1/2 [softmax(3 (S - mean S)) with negative entries set to
   -inf, the same for every head; + softmax(k k^T / sqrt(d)) per head]; y = out_proj(A v) + res_cls * CLS (CLS of
   block L-1), residual and FFN dropped.
4. Post-aggregation with the thresholded similarity of block `post` (4 on ViT-B; not repaired).
5. Multi-level: m = sum of blocks multi_start..multi_end (4..10 on ViT-B), CLS included; y_m = mixed_attention(
   ln_1(m patches)) + res_cls * m_CLS, post-aggregated; y <- y + y_m. Features: ln_post(y) W_proj (patches only).
The official code locates an outlier at (i // H, i % H) on an (H, W) grid, which is row-major only when H == W (its
square windows); here it is (i // W, i % W).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness.errors import ConfigError

from .clip_trunk import CLIPTrunk

LOF_VARIANTS = ("official", "sklearn")


@dataclass(frozen=True)
class SCCLIPLayers:
    """Intermediate blocks, 1-based (block b = the output of the b-th residual block)."""

    pre: int
    post: int
    multi_start: int
    multi_end: int  # inclusive

    def check(self, n_blocks: int) -> None:
        for name in ("pre", "post", "multi_start", "multi_end"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= n_blocks - 1:
                raise ConfigError(f"option {name}_layer={value!r}: SC-CLIP's intermediate blocks are 1..{n_blocks - 1}"
                                  f" on this {n_blocks}-block CLIP.")
        if self.multi_start > self.multi_end:
            raise ConfigError(f"options multi_start_layer={self.multi_start} > multi_end_layer={self.multi_end}.")


# Published settings: ViT-B/16 (scclip_segmentor.py defaults pre_adjust_idx 8, post 3, multi 3..10 exclusive, in
# feats_list indices) and ViT-L/14 (16 / 6 / 8..19 per SuleBai/SC-CLIP#5, res_cls 0.1), here as 1-based blocks.
PUBLISHED_LAYERS = {12: SCCLIPLayers(pre=9, post=4, multi_start=4, multi_end=10),
                    24: SCCLIPLayers(pre=17, post=7, multi_start=9, multi_end=19)}
PUBLISHED_RES_CLS = {12: 0.3, 24: 0.1}


def default_layers(n_blocks: int) -> SCCLIPLayers:
    if n_blocks not in PUBLISHED_LAYERS:
        raise ConfigError(f"SC-CLIP has published layer indices for 12- and 24-block CLIPs only; this CLIP has "
                          f"{n_blocks} blocks: give pre_layer, post_layer, multi_start_layer and multi_end_layer.")
    return PUBLISHED_LAYERS[n_blocks]


def lof_scores(x: Tensor, k: int) -> Tensor:
    """The repository's `lof_pytorch` scores of x (N, C): squared distances, reach distance = own k-distance."""
    if not 1 <= k < x.shape[0]:
        raise ConfigError(f"option lof_k={k} needs at least k + 1 = {k + 1} patches, the grid has {x.shape[0]}.")
    d = torch.cdist(x.float(), x.float()) ** 2
    knn_d, knn_i = d.topk(k + 1, dim=1, largest=False)
    knn_d, knn_i = knn_d[:, 1:], knn_i[:, 1:]
    reach = torch.maximum(knn_d, knn_d[:, -1:].expand_as(knn_d))
    lrd = k / torch.nan_to_num(reach.mean(dim=1), nan=1e-6)
    return (lrd[knn_i] / lrd[:, None]).mean(dim=1)


def lof_outliers(x: Tensor, k: int = 30, contamination: float = 0.05, variant: str = "official") -> Tensor:
    """Boolean (N,) mask of the outliers among x (N, C)."""
    if not 0 < contamination < 0.5:
        raise ConfigError(f"option lof_contamination must be in (0, 0.5), got {contamination!r}.")
    if variant == "official":
        scores = lof_scores(x, k)
        return scores > torch.quantile(scores, 1 - contamination)
    if variant != "sklearn":
        raise ConfigError(f"option lof={variant!r} is not one of {', '.join(LOF_VARIANTS)}.")
    from sklearn.neighbors import LocalOutlierFactor

    labels = LocalOutlierFactor(n_neighbors=k, contamination=contamination).fit_predict(x.detach().cpu().numpy())
    return torch.from_numpy(labels == -1).to(x.device)


def repair_outliers(grid: Tensor, outliers: Tensor) -> Tensor:
    """grid (B, C, H, W), outliers (H, W) bool -> each outlier replaced by the mean of its non-outlier 3x3
    neighbours inside the grid (left as it is when it has none)."""
    keep = (~outliers).to(grid.dtype)[None, None]
    # the 3x3 neighbours without the centre, padded out of one zero: no host value written into a device tensor
    ones = F.pad(torch.zeros(1, 1, 1, 1, dtype=grid.dtype, device=grid.device), (1, 1, 1, 1), value=1.0)
    c = grid.shape[1]
    sums = F.conv2d(grid * keep, ones.expand(c, 1, 3, 3), padding=1, groups=c)
    counts = F.conv2d(keep, ones, padding=1)
    update = outliers[None, None] & (counts > 0)
    return torch.where(update, sums / counts.clamp_min(1), grid)


def cosine_similarity(tokens: Tensor) -> Tensor:
    """(B, N, C) -> (B, N, N)."""
    t = F.normalize(tokens, dim=-1)
    return t @ t.transpose(1, 2)


def aggregate(x: Tensor, similarity: Tensor, beta: float) -> Tensor:
    """x (B, N, C) <- rownorm(similarity with entries < beta zeroed) x; rows divided by their sum + 1e-6."""
    s = torch.where(similarity < beta, torch.zeros_like(similarity), similarity)
    return (s / (s.sum(-1, keepdim=True) + 1e-6)) @ x


def mixed_attention(x: Tensor, attn: nn.Module, similarity: Tensor) -> Tensor:
    """x (B, N, C) = ln_1 of the patch tokens; similarity (B, N, N) -> out_proj(A v), A as in the docstring."""
    b, n, c = x.shape
    heads = attn.num_heads
    d = c // heads
    q, k, v = F.linear(x, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
    k = k.reshape(b, n, heads, d).transpose(1, 2)
    v = v.reshape(b, n, heads, d).transpose(1, 2)
    shifted = 3.0 * (similarity - similarity.mean())  # one mean over the whole batch, as the official code
    shifted = shifted.masked_fill(shifted < 0, float("-inf"))
    weights = (shifted.softmax(-1)[:, None] + (k @ k.transpose(-1, -2) / math.sqrt(d)).softmax(-1)) / 2
    out = (weights @ v).transpose(1, 2).reshape(b, n, c)
    return attn.out_proj(out)


def scclip_tokens(block_outputs: list[Tensor], last_block: nn.Module, grid: tuple[int, int], layers: SCCLIPLayers,
                  *, beta: float = 0.4, res_cls: float = 0.3, lof_k: int = 30, lof_contamination: float = 0.05,
                  lof: str = "official") -> Tensor:
    """block_outputs[b - 1] = block b's tokens (B, 1 + N, C) for b = 1..L-1 -> the (B, N, C) patch tokens that
    SC-CLIP's last block hands to ln_post (steps 1-5 of the module docstring)."""
    layers.check(len(block_outputs) + 1)
    last = block_outputs[-1]
    bsz, n_tok, c = last.shape
    gh, gw = grid
    patches, cls = last[:, 1:], last[:, :1]
    pre = block_outputs[layers.pre - 1][:, 1:]
    repaired, pre_repaired = [], []
    for i in range(bsz):  # LOF per image (the official code runs one window at a time)
        mask = lof_outliers(patches[i], lof_k, lof_contamination, lof).reshape(gh, gw)
        repaired.append(repair_outliers(patches[i].T.reshape(1, c, gh, gw), mask))
        pre_repaired.append(repair_outliers(pre[i].T.reshape(1, c, gh, gw), mask))
    x = torch.cat(repaired).flatten(2).transpose(1, 2)
    pre = torch.cat(pre_repaired).flatten(2).transpose(1, 2)
    mid = cosine_similarity(pre)
    x = aggregate(x, mid, beta)
    x = mixed_attention(last_block.ln_1(x), last_block.attn, mid) + res_cls * cls
    after = cosine_similarity(block_outputs[layers.post - 1][:, 1:])
    x = aggregate(x, after, beta)
    multi = torch.stack(block_outputs[layers.multi_start - 1:layers.multi_end]).sum(0)
    y = mixed_attention(last_block.ln_1(multi[:, 1:]), last_block.attn, mid) + res_cls * multi[:, :1]
    return x + aggregate(y, after, beta)


class SCCLIPEncoder(CLIPTrunk):
    """A frozen open_clip ViT run the SC-CLIP way: normalised images (B, 3, H, W) -> L2-normalised patch features
    (B, D, gh, gw). Blocks 1..L-1 run unchanged on the one trunk (`clip_trunk.CLIPTrunk`, through `run_block`,
    SDPA); positions resampled by `pos_interp` (`protocol_resize`); a side that is not a multiple of the patch is
    cut, as the repository's stride-p conv."""

    def __init__(self, clip_model: nn.Module, layers: SCCLIPLayers | None = None, *, beta: float = 0.4,
                 res_cls: float | None = None, lof_k: int = 30, lof_contamination: float = 0.05,
                 lof: str = "official", pos_interp: str = "scale-factor") -> None:
        super().__init__(clip_model, normalisation="clip", remainder="crop", pos_interp=pos_interp)
        n_blocks = len(self.visual.transformer.resblocks)
        self.layers = default_layers(n_blocks) if layers is None else layers
        self.layers.check(n_blocks)
        if res_cls is None:
            res_cls = PUBLISHED_RES_CLS.get(n_blocks, 0.3)
        for name, value in (("beta", beta), ("res_cls", res_cls)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                raise ConfigError(f"option {name} must be a number in [0, 1], got {value!r}.")
        if lof not in LOF_VARIANTS:
            raise ConfigError(f"option lof={lof!r} is not one of {', '.join(LOF_VARIANTS)}.")
        if isinstance(lof_k, bool) or not isinstance(lof_k, int) or lof_k < 1:
            raise ConfigError(f"option lof_k must be an integer >= 1, got {lof_k!r}.")
        self.beta, self.res_cls, self.lof_k, self.lof_contamination, self.lof = beta, res_cls, lof_k, \
            lof_contamination, lof

    def block_outputs(self, x: Tensor) -> tuple[list[Tensor], tuple[int, int]]:
        """Normalised images -> [block 1 .. block L-1 tokens (B, 1 + N, C)], grid."""
        x, grid = self.to_whole_patches(x)
        outputs: list[Tensor] = []
        self.run_blocks(self.embed(x, grid), grid, stop=-1, outputs=outputs)
        return outputs, grid

    def forward(self, x: Tensor) -> Tensor:
        outputs, grid = self.block_outputs(x)
        y = scclip_tokens(outputs, self.visual.transformer.resblocks[-1], grid, self.layers, beta=self.beta,
                          res_cls=self.res_cls, lof_k=self.lof_k, lof_contamination=self.lof_contamination,
                          lof=self.lof)
        f = F.normalize(self.visual.ln_post(y) @ self.visual.proj, dim=-1)
        return f.transpose(1, 2).reshape(f.shape[0], -1, *grid)
