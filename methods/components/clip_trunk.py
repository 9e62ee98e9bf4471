"""The one dense CLIP trunk: a frozen open_clip ViT run piece by piece, as open_clip's `VisionTransformer` runs it
(conv1, class and positional embeddings, ln_pre, the residual blocks, ln_post, proj), with what a method changes
passed in rather than written again:

- `CLIPTrunk(clip_model, blocks={i: BlockChange(rule, residual, ffn)})`: the blocks that depart from CLIP's own, each
  with an attention rule of the registered table (`attention_rules.ATTENTION_RULES`) and, for the training-free last
  blocks, its residual and FFN kept or dropped. Every block, changed or not, runs through `attention_rules.run_block`
  (one SDPA kernel for every method, issue 17).
- the positional table resampled to each input's patch grid by `pos_interp` (`protocol_resize`: "size", DeOP's
  official resize, or "scale-factor", the SCLIP family's (g + 0.1) / n0), cached per grid;
- `remainder`: a side that is not a multiple of the patch is zero-padded (in normalised space) or cut;
- `added_tokens(where, grid)`: a hook for tokens added to the residual stream at the input and before chosen blocks
  (DeOP's visual prompts, `clip_dense.DenseCLIP`); none by default.

Its users: `clip_dense.DenseCLIP` (DeOP's family: patch severance on the last blocks, prompts, proposal masks),
`last_block.TrainingFreeCLIP` (the training-free family's last block) and `scclip.SCCLIPEncoder` (blocks 1..L-1).
CLIP stays frozen (requires_grad False, eval mode whatever the caller's mode).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness.errors import ConfigError

from .attention_rules import AttnRule, run_block
from .protocol_resize import POS_INTERPS, resample_positions

# Pixel statistics in 0-255 units. ImageNet: MaskFormer's PIXEL_MEAN/STD (METHOD_SPEC 1); CLIP: OpenAI's.
IMAGENET_MEAN_255 = (123.675, 116.28, 103.53)
IMAGENET_STD_255 = (58.395, 57.12, 57.375)
CLIP_MEAN_255 = tuple(255.0 * m for m in (0.48145466, 0.4578275, 0.40821073))
CLIP_STD_255 = tuple(255.0 * s for s in (0.26862954, 0.26130258, 0.27577711))
NORMALISATIONS = {"imagenet": (IMAGENET_MEAN_255, IMAGENET_STD_255), "clip": (CLIP_MEAN_255, CLIP_STD_255)}
REMAINDERS = ("pad", "crop")


class DenseOutput(NamedTuple):
    """`patch_features` (B, D, gh, gw) and `cls` (B, D), both L2-normalised in CLIP's joint space; a rule whose
    output lies on a foundation model's grid (`proxy`) gives no CLS and that grid."""

    patch_features: Tensor
    cls: Tensor | None
    grid: tuple[int, int]


def keeps_cls(rule: AttnRule) -> bool:
    """Whether the rule's output is the block's own tokens (CLS + patches); `proxy` returns the proxy grid's."""
    return "proxy" not in rule.context


@dataclass(frozen=True)
class BlockChange:
    """How one block departs from CLIP's own: its attention `rule`, and whether it keeps its residual
    (y = x + out(A), else y = out(A)) and its FFN (y + mlp(ln_2(y)), else y)."""

    rule: AttnRule
    residual: bool = True
    ffn: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.rule, AttnRule):
            raise ConfigError(f"attention rules must be AttnRule instances (Vanilla(), GPS(alpha), "
                              f"CoverageIdentity(), MPS(), ...), got {self.rule!r}.")
        if self.residual and not keeps_cls(self.rule):
            raise ConfigError(f"attention {self.rule.name!r} returns tokens on another grid: it needs residual: drop.")


# ----------------------------------------------------------------------------------------------- grid tables


class GridTableCache:
    """Resampled tables keyed by grid and by the source tensor's identity, device, dtype and in-place
    version: moving the module or loading new weights can never serve a stale entry."""

    def __init__(self, max_entries: int = 16) -> None:
        self._entries: dict[tuple, Tensor] = {}
        self.max_entries = max_entries

    def get(self, source: Tensor, grid: tuple[int, int], compute: Callable[[], Tensor]) -> Tensor:
        if source.requires_grad and torch.is_grad_enabled():
            return compute()  # a trainable table needs its autograd graph every time
        key = (tuple(grid), source.data_ptr(), source.device, source.dtype, source._version)
        hit = self._entries.get(key)
        if hit is None:
            if len(self._entries) >= self.max_entries:
                self._entries.pop(next(iter(self._entries)))
            # Never an inference tensor: a table cached under inference_mode must still serve training later.
            with torch.inference_mode(False), torch.no_grad():
                hit = self._entries[key] = compute()
        return hit

    def __len__(self) -> int:
        return len(self._entries)


# ----------------------------------------------------------------------------------------------- the trunk


class CLIPTrunk(nn.Module):
    """A frozen open_clip ViT image tower run block by block (module docstring). ``normalisation`` names the pixel
    statistics of `normalise` ("clip" or "imagenet", `NORMALISATIONS`)."""

    def __init__(self, clip_model: nn.Module, *, blocks: Mapping[int, BlockChange] | None = None,
                 normalisation: str = "clip", remainder: str = "pad", pos_interp: str = "size") -> None:
        super().__init__()
        self.visual = visual = frozen_vision_transformer(clip_model)
        n_blocks = len(visual.transformer.resblocks)
        self.block_changes = _normalise_changes(blocks or {}, n_blocks)
        for name, value, choices in (("input_normalisation", normalisation, tuple(NORMALISATIONS)),
                                     ("remainder", remainder, REMAINDERS), ("pos_interp", pos_interp, POS_INTERPS)):
            if value not in choices:
                raise ConfigError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}.")
        self.normalisation, self.remainder, self.pos_interp = normalisation, remainder, pos_interp
        mean, std = NORMALISATIONS[normalisation]
        self.register_buffer("pixel_mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.patch_size = tuple(visual.patch_size)
        self.native_grid = tuple(visual.grid_size)
        self._pos_cache = GridTableCache()

    @property
    def attention_rules(self) -> dict[int, AttnRule]:
        """Block index (0-based) -> the rule of each changed block."""
        return {i: change.rule for i, change in self.block_changes.items()}

    def train(self, mode: bool = True) -> CLIPTrunk:
        super().train(mode)
        self.visual.eval()  # frozen CLIP: no dropout / patch dropout, whatever the caller's mode
        return self

    def normalise(self, images: Tensor, normalisation: str | None = None) -> Tensor:
        """Raw RGB [0, 255] (B, 3, H, W) -> normalised float tensor (the trunk's statistics unless named)."""
        if normalisation is None or normalisation == self.normalisation:
            mean, std = self.pixel_mean, self.pixel_std
        else:
            stats = NORMALISATIONS[normalisation]
            mean, std = (torch.tensor(s, device=images.device).view(1, 3, 1, 1) for s in stats)
        return (images.float() - mean) / std

    def grid_for(self, height: int, width: int) -> tuple[int, int]:
        """The patch grid an input of this size produces under the remainder policy."""
        ph, pw = self.patch_size
        if self.remainder == "pad":
            return math.ceil(height / ph), math.ceil(width / pw)
        return height // ph, width // pw

    def nonempty_grid(self, height: int, width: int) -> tuple[int, int]:
        """`grid_for`, refusing an input smaller than one patch."""
        grid = self.grid_for(height, width)
        if min(grid) < 1:
            raise ValueError(f"image {height}x{width} is smaller than one {self.patch_size} patch")
        return grid

    def to_whole_patches(self, x: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """Normalised (B, 3, H, W) -> the input padded or cut to whole patches, and its grid."""
        height, width = x.shape[-2:]
        grid = self.nonempty_grid(height, width)
        ph, pw = self.patch_size
        if self.remainder == "pad":
            return F.pad(x, (0, grid[1] * pw - width, 0, grid[0] * ph - height)), grid
        return x[..., : grid[0] * ph, : grid[1] * pw], grid

    def added_tokens(self, where: int | None, grid: tuple[int, int]) -> Tensor | None:
        """A (1 + gh*gw, C) table added to the residual stream at the input (``where`` None, with the positions)
        or before block ``where``; None: nothing (the default; DeOP's prompts override this)."""
        return None

    def embed(self, x: Tensor, grid: tuple[int, int], added: Tensor | None = None) -> Tensor:
        """Whole-patch normalised images -> ln_pre(CLS + patch embeddings + positions (+ added)) (B, 1 + N, C)."""
        v = self.visual
        if not torch.is_autocast_enabled(x.device.type):
            x = x.to(v.conv1.weight.dtype)
        x = v.conv1(x).flatten(2).transpose(1, 2)
        cls = v.class_embedding.to(x.dtype).view(1, 1, -1).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1)
        x = x + self.positions(grid).to(x.dtype)
        if added is not None:
            x = x + added.to(x.dtype)
        return v.ln_pre(v.patch_dropout(x))

    def positions(self, grid: tuple[int, int]) -> Tensor:
        table = self.visual.positional_embedding
        return self._pos_cache.get(table, grid, lambda: resample_positions(table, self.native_grid, grid,
                                                                           self.pos_interp))

    def run_blocks(self, tokens: Tensor, grid: tuple[int, int], *, masks: Tensor | None = None,
                   proxy: Tensor | None = None, stop: int | None = None,
                   outputs: list[Tensor] | None = None) -> Tensor:
        """The tokens after blocks[:stop], each block with its change and its added tokens (each block's output
        appended to ``outputs`` when given). ``masks`` (B, T, N) go to rules that need them, ``grid`` and
        ``proxy`` to rules whose `context` names them."""
        for i, block in enumerate(self.visual.transformer.resblocks[:stop]):
            added = self.added_tokens(i, grid)
            if added is not None:
                tokens = tokens + added.to(tokens.dtype)
            change = self.block_changes.get(i)
            if change is None:
                tokens = run_block(block, tokens, None, masks)
            else:
                tokens = run_block(block, tokens, change.rule, masks, residual=change.residual, ffn=change.ffn,
                                   grid=grid, proxy=proxy)
            if outputs is not None:
                outputs.append(tokens)
        return tokens

    def tokens_before_last(self, x: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """Normalised images -> the (B, 1 + gh*gw, C) tokens entering the last block, and the grid."""
        x, grid = self.to_whole_patches(x)
        return self.run_blocks(self.embed(x, grid, self.added_tokens(None, grid)), grid, stop=-1), grid

    def encode(self, x: Tensor, *, masks: Tensor | None = None, proxy: Tensor | None = None) -> DenseOutput:
        """Normalised images (B, 3, H, W) -> L2-normalised joint-space features of every patch and of CLS."""
        x, grid = self.to_whole_patches(x)
        tokens = self.embed(x, grid, self.added_tokens(None, grid))
        return self.project(self.run_blocks(tokens, grid, masks=masks, proxy=proxy), grid, proxy)

    def project(self, tokens: Tensor, grid: tuple[int, int], proxy: Tensor | None = None) -> DenseOutput:
        """Final tokens -> ln_post, proj, L2-normalised, patches on their grid (the proxy's for `proxy` rules)."""
        feats = F.normalize(self.visual.ln_post(tokens) @ self.visual.proj, dim=-1)
        last = self.block_changes.get(len(self.visual.transformer.resblocks) - 1)
        if last is not None and not keeps_cls(last.rule):
            out_grid = tuple(proxy.shape[-2:])
            return DenseOutput(feats.transpose(1, 2).reshape(feats.shape[0], -1, *out_grid), None, out_grid)
        b, _, d = feats.shape
        patch = feats[:, 1:].transpose(1, 2).reshape(b, d, grid[0], grid[1])
        return DenseOutput(patch_features=patch, cls=feats[:, 0], grid=grid)


# ----------------------------------------------------------------------------------------------- checks


def frozen_vision_transformer(clip_model: nn.Module) -> nn.Module:
    """The checked open_clip ViT image tower of ``clip_model`` (see `_vision_transformer`), frozen and in eval
    mode: what the trunk runs."""
    visual = _vision_transformer(clip_model)
    for p in visual.parameters():
        p.requires_grad_(False)
    return visual.eval()


def _vision_transformer(clip_model: nn.Module) -> nn.Module:
    from open_clip.transformer import ResidualAttentionBlock, VisionTransformer

    visual = getattr(clip_model, "visual", clip_model)
    if not isinstance(visual, VisionTransformer):
        raise ConfigError(f"The dense CLIP trunk needs an open_clip ViT image tower, got {type(visual).__name__} "
                          "(ResNet and timm towers are not supported).")
    if visual.attn_pool is not None or visual.pool_type != "tok" or visual.final_ln_after_pool:
        raise ConfigError("The dense CLIP trunk supports CLIP ViTs with CLS-token pooling (pool_type 'tok', no "
                          "attentional pooler), as in ViT-B-16 and ViT-L-14-336.")
    for block in visual.transformer.resblocks:
        if not isinstance(block, ResidualAttentionBlock) or not block.attn._qkv_same_embed_dim:
            raise ConfigError("The dense CLIP trunk supports open_clip's standard ResidualAttentionBlock "
                              "(nn.MultiheadAttention with a packed in-projection).")
    return visual


def normalise_indices(indices: Sequence[int], n_blocks: int, what: str) -> tuple[int, ...]:
    """Block indices (negative: from the end) -> sorted 0-based indices; out of range or repeated is an error."""
    out: list[int] = []
    for i in indices:
        if not -n_blocks <= int(i) < n_blocks:
            raise ConfigError(f"{what}: block index {i} is out of range for a ViT with {n_blocks} blocks "
                              f"(use 0..{n_blocks - 1}, or -1 for the last block).")
        j = int(i) % n_blocks
        if j in out:
            raise ConfigError(f"{what}: block {j} is listed twice (indices {list(indices)}).")
        out.append(j)
    return tuple(sorted(out))


def _normalise_changes(changes: Mapping[int, BlockChange], n_blocks: int) -> dict[int, BlockChange]:
    keys = normalise_indices(list(changes), n_blocks, "attention_rules")
    normalised = {int(i) % n_blocks: change for i, change in changes.items()}
    for i, change in normalised.items():
        if not keeps_cls(change.rule) and i != n_blocks - 1:
            raise ConfigError(f"attention {change.rule.name!r} returns tokens on another grid: only the last block "
                              "can follow it.")
    return {k: normalised[k] for k in keys}
