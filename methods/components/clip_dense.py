"""Dense CLIP: L2-normalised joint-space features for every patch of an image of any size.

`DenseCLIP` wraps an open_clip `CLIP` (or its `VisionTransformer`) without modifying it: it runs the ViT's own
pieces (conv1, class/positional embeddings, ln_pre, residual blocks, ln_post, proj) in its own forward, so that it
can (METHOD_SPEC 4, 5; paper Sec. 4.1)
- resample the positional embedding bicubically to the input's patch grid (cached per grid),
- add learned visual prompts (additive tables, METHOD_SPEC 4.3-4.4) at the input and before chosen blocks,
- run every block through one block runner (`attention_rules.run_block`: attention through
  `F.scaled_dot_product_attention`, the crop path of `encode_crops` included) and
- replace the attention of chosen blocks by an attention rule (`methods.components.attention_rules`: `Vanilla`,
  `GPS(alpha)` (paper Eq. 2), `CoverageIdentity` (the released code's rule, METHOD_SPEC 5a), `MPS`
  (METHOD_SPEC 5c), or any rule registered there).

Input convention (explicit in the API): `forward(images)` takes raw RGB pixel values in [0, 255] and normalises
them with `input_normalisation` ("imagenet", the official DeOP quirk METHOD_SPEC 4 / 12.2, or "clip");
`forward(images, normalised=True)` takes a tensor that is already normalised (e.g. the very tensor given to
MaskFormer, zero-padded after normalisation as the official code does). Inputs whose size is not a multiple of the
patch size (ViT-L/14) are zero-padded at the bottom/right in normalised space (`remainder="pad"`, padding equals
the mean colour) or cropped (`remainder="crop"`, what a stride-14 convolution does to a 512 input in the
official ViT-L variant).

CLIP weights are frozen (requires_grad False, kept in eval mode); only the visual prompts train.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness.errors import ConfigError

# The rules live in their own module (one table); re-exported here, where DenseCLIP applies them.
from .attention_rules import GPS, MPS, AttnRule, CoverageIdentity, Vanilla, run_block  # noqa: F401

# Pixel statistics in 0-255 units. ImageNet: MaskFormer's PIXEL_MEAN/STD (METHOD_SPEC 1); CLIP: OpenAI's.
IMAGENET_MEAN_255 = (123.675, 116.28, 103.53)
IMAGENET_STD_255 = (58.395, 57.12, 57.375)
CLIP_MEAN_255 = tuple(255.0 * m for m in (0.48145466, 0.4578275, 0.40821073))
CLIP_STD_255 = tuple(255.0 * s for s in (0.26862954, 0.26130258, 0.27577711))
NORMALISATIONS = {"imagenet": (IMAGENET_MEAN_255, IMAGENET_STD_255), "clip": (CLIP_MEAN_255, CLIP_STD_255)}

DEOP_PROMPT_LAYERS = (1, 2, 3, 4, 5)  # METHOD_SPEC 4.4 (deop_train.sh POSITION_LAYERS), plus the input prompt
DEOP_PROMPT_GRID = 24  # 384 / 16, METHOD_SPEC 4.3 (INPUT.LEARNPOSITIONRES)


class DenseOutput(NamedTuple):
    """`patch_features` (B, D, gh, gw) and `cls` (B, D), both L2-normalised in CLIP's joint space."""

    patch_features: Tensor
    cls: Tensor | None
    grid: tuple[int, int]


# ----------------------------------------------------------------------------------------------- grid tables


def resample_token_table(table: Tensor, src_grid: tuple[int, int], dst_grid: tuple[int, int]) -> Tensor:
    """(1 + src_h*src_w, C) -> (1 + dst_h*dst_w, C): CLS row kept, patch rows resized bicubically
    (F.interpolate defaults, align_corners=False), as the official code resizes CLIP's positional embedding
    and its learned prompt tables (METHOD_SPEC 4.2-4.4)."""
    if tuple(src_grid) == tuple(dst_grid):
        return table
    width = table.shape[-1]
    patches = table[1:].reshape(1, src_grid[0], src_grid[1], width).permute(0, 3, 1, 2)
    work_dtype = torch.promote_types(table.dtype, torch.float32)  # bicubic in at least fp32
    patches = F.interpolate(patches.to(work_dtype), size=dst_grid, mode="bicubic", align_corners=False)
    patches = patches.permute(0, 2, 3, 1).reshape(-1, width).to(table.dtype)
    return torch.cat([table[:1], patches], dim=0)


class _TableCache:
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


# ----------------------------------------------------------------------------------------------- the module


class DenseCLIP(nn.Module):
    """Dense joint-space features from a frozen open_clip ViT (see the module docstring for conventions).

    Args:
        clip_model: an open_clip `CLIP` (its `.visual` is used) or an open_clip `VisionTransformer`.
        attention_rules: block index -> rule; negative indices count from the end (-1 = last block). A block
            without a rule runs CLIP's own attention (`Vanilla`, through SDPA).
        prompt_layers: blocks that get an additive prompt table added to the residual stream before their ln_1
            (DeOP: `DEOP_PROMPT_LAYERS`). Empty = no layer prompts.
        input_prompt: add a prompt table together with the positional embedding before ln_pre.
        prompt_grid: the stored patch grid of each table (DeOP: 24 = 384/16); resampled to the input's grid.
        prompt_init: "randn" (randn * width^-0.5, the official init) or "zeros" (starts as plain CLIP).
        input_normalisation: statistics applied to raw [0, 255] inputs: "imagenet" (faithful) or "clip".
        remainder: "pad" or "crop" for inputs that are not a multiple of the patch size.
    """

    def __init__(
        self,
        clip_model: nn.Module,
        *,
        attention_rules: Mapping[int, AttnRule] | None = None,
        prompt_layers: Sequence[int] = (),
        input_prompt: bool = False,
        prompt_grid: int | tuple[int, int] = DEOP_PROMPT_GRID,
        prompt_init: Literal["randn", "zeros"] = "randn",
        input_normalisation: Literal["imagenet", "clip"] = "imagenet",
        remainder: Literal["pad", "crop"] = "pad",
    ) -> None:
        super().__init__()
        self.visual = visual = frozen_vision_transformer(clip_model)
        n_blocks = len(visual.transformer.resblocks)
        self.attention_rules = _normalise_rules(attention_rules or {}, n_blocks)
        self.prompt_layers = _normalise_indices(prompt_layers, n_blocks, "prompt_layers")

        if input_normalisation not in NORMALISATIONS:
            raise ConfigError(f"input_normalisation must be one of {sorted(NORMALISATIONS)}, "
                              f"got {input_normalisation!r}.")
        if remainder not in ("pad", "crop"):
            raise ConfigError(f"remainder must be 'pad' or 'crop', got {remainder!r}.")
        if prompt_init not in ("randn", "zeros"):
            raise ConfigError(f"prompt_init must be 'randn' or 'zeros', got {prompt_init!r}.")
        self.input_normalisation = input_normalisation
        self.remainder = remainder
        mean, std = NORMALISATIONS[input_normalisation]
        self.register_buffer("pixel_mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

        self.patch_size = tuple(visual.patch_size)
        self.native_grid = tuple(visual.grid_size)
        self.prompt_grid = (prompt_grid, prompt_grid) if isinstance(prompt_grid, int) else tuple(prompt_grid)
        width = visual.conv1.out_channels
        n_tokens = 1 + self.prompt_grid[0] * self.prompt_grid[1]

        def new_table() -> nn.Parameter:
            ref = visual.positional_embedding
            data = torch.zeros(n_tokens, width, device=ref.device, dtype=torch.float32)
            if prompt_init == "randn":
                data.normal_().mul_(width ** -0.5)
            return nn.Parameter(data)

        self.input_prompt = new_table() if input_prompt else None
        self.layer_prompts = nn.ParameterList([new_table() for _ in self.prompt_layers])
        self._pos_cache = _TableCache()
        self._prompt_cache = _TableCache(max_entries=4 * (1 + len(self.prompt_layers)))

    # -------------------------------------------------------------------------------------------- public

    def train(self, mode: bool = True) -> DenseCLIP:
        super().train(mode)
        self.visual.eval()  # frozen CLIP: no dropout / patch dropout, whatever the caller's mode
        return self

    def normalise(self, images: Tensor, normalisation: str | None = None) -> Tensor:
        """Raw RGB [0, 255] (B, 3, H, W) -> normalised float tensor."""
        if normalisation is None or normalisation == self.input_normalisation:
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

    def forward(self, images: Tensor, masks: Tensor | None = None, *, normalised: bool = False) -> DenseOutput:
        """images (B, 3, H, W): raw [0, 255] RGB, or already normalised with `normalised=True`.
        masks (B, N, Hm, Wm): proposal mask logits covering the same image extent, required by rules with
        `needs_masks` (resized bilinearly to the patch grid, then sigmoid, METHOD_SPEC 5a)."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
        x = images if normalised else self.normalise(images)
        height, width = x.shape[-2:]
        grid = self.grid_for(height, width)
        if min(grid) < 1:
            raise ValueError(f"image {height}x{width} is smaller than one {self.patch_size} patch")
        ph, pw = self.patch_size
        if self.remainder == "pad":
            x = F.pad(x, (0, grid[1] * pw - width, 0, grid[0] * ph - height))
        else:
            x = x[..., : grid[0] * ph, : grid[1] * pw]

        mask_tokens = self._mask_tokens(masks, grid, (height, width), x.shape[0])
        tokens = self._embed(x, grid)
        blocks = self.visual.transformer.resblocks
        prompt_of = dict(zip(self.prompt_layers, self.layer_prompts))
        for i, block in enumerate(blocks):
            if i in prompt_of:
                tokens = tokens + self._resampled_prompt(prompt_of[i], grid).to(tokens.dtype)
            tokens = run_block(block, tokens, self.attention_rules.get(i), mask_tokens)

        feats = self.visual.ln_post(tokens) @ self.visual.proj
        feats = F.normalize(feats, dim=-1)
        b, _, d = feats.shape
        patch = feats[:, 1:].transpose(1, 2).reshape(b, d, grid[0], grid[1])
        return DenseOutput(patch_features=patch, cls=feats[:, 0], grid=grid)

    def encode_crops(self, crops: Tensor, *, normalised: bool = False, normalisation: str = "clip") -> Tensor:
        """CLS embeddings (N, D), L2-normalised, of crops at the model's native size: open_clip's `encode_image`
        computation (no prompts, no rules) with every block through `run_block`, the kernel of the dense path
        (equal to open_clip's own forward to float tolerance): SimBaseline's region classification (METHOD_SPEC
        3.3). Raw [0, 255] crops are normalised with CLIP statistics by default, as SimBaseline does."""
        expected = tuple(self.visual.image_size)
        if tuple(crops.shape[-2:]) != expected:
            raise ValueError(f"crops must be {expected[0]}x{expected[1]} (the model's native size), "
                             f"got {tuple(crops.shape[-2:])}")
        x = crops if normalised else self.normalise(crops, normalisation)
        tokens = self._embed(x, self.native_grid, prompts=False)
        for block in self.visual.transformer.resblocks:
            tokens = run_block(block, tokens)
        cls = self.visual.ln_post(tokens[:, 0]) @ self.visual.proj  # layer norm is per token: CLS alone suffices
        return F.normalize(cls, dim=-1)

    # -------------------------------------------------------------------------------------------- internals

    def _to_input_dtype(self, x: Tensor) -> Tensor:
        if torch.is_autocast_enabled(x.device.type):
            return x
        return x.to(self.visual.conv1.weight.dtype)

    def _embed(self, x: Tensor, grid: tuple[int, int], prompts: bool = True) -> Tensor:
        v = self.visual
        x = v.conv1(self._to_input_dtype(x)).flatten(2).transpose(1, 2)
        cls = v.class_embedding.to(x.dtype).view(1, 1, -1).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1)
        pos = self._pos_cache.get(v.positional_embedding, grid, lambda: resample_token_table(
            v.positional_embedding, self.native_grid, grid))
        x = x + pos.to(x.dtype)
        if prompts and self.input_prompt is not None:
            x = x + self._resampled_prompt(self.input_prompt, grid).to(x.dtype)
        return v.ln_pre(v.patch_dropout(x))

    def _resampled_prompt(self, table: Tensor, grid: tuple[int, int]) -> Tensor:
        return self._prompt_cache.get(table, grid, lambda: resample_token_table(table, self.prompt_grid, grid))

    def _mask_tokens(self, masks: Tensor | None, grid: tuple[int, int], image_hw: tuple[int, int],
                     batch: int) -> Tensor | None:
        """(B, N, Hm, Wm) logits -> (B, 1 + gh*gw, N) probabilities with a ones row for CLS (METHOD_SPEC 5a)."""
        if not any(rule.needs_masks for rule in self.attention_rules.values()):
            return None
        if masks is None:
            names = sorted({type(r).__name__ for r in self.attention_rules.values() if r.needs_masks})
            raise ConfigError(f"Attention rule(s) {', '.join(names)} need proposal masks; call "
                              "DenseCLIP(images, masks) with mask logits of shape (B, N, Hm, Wm).")
        if masks.dim() != 4 or masks.shape[0] != batch:
            raise ValueError(f"masks must be (B={batch}, N, Hm, Wm), got {tuple(masks.shape)}")
        masks = masks.float()
        if self.remainder == "pad":
            # The image was padded to whole patches; extend the masks by the same fraction of their extent.
            (h, w), (ph, pw), (hm, wm) = image_hw, self.patch_size, masks.shape[-2:]
            extra_h = round((grid[0] * ph - h) * hm / h)
            extra_w = round((grid[1] * pw - w) * wm / w)
            if extra_h or extra_w:
                masks = F.pad(masks, (0, extra_w, 0, extra_h), mode="replicate")
        probs = F.interpolate(masks, size=grid, mode="bilinear", align_corners=False).sigmoid()
        probs = probs.flatten(2).transpose(1, 2)
        ones = probs.new_ones(probs.shape[0], 1, probs.shape[2])
        return torch.cat([ones, probs], dim=1)


def frozen_vision_transformer(clip_model: nn.Module) -> nn.Module:
    """The checked open_clip ViT image tower of ``clip_model`` (see `_vision_transformer`), frozen and in eval
    mode: what every dense CLIP trunk (DeOP's, the training-free last block, SC-CLIP's) runs."""
    visual = _vision_transformer(clip_model)
    for p in visual.parameters():
        p.requires_grad_(False)
    return visual.eval()


def _vision_transformer(clip_model: nn.Module) -> nn.Module:
    from open_clip.transformer import ResidualAttentionBlock, VisionTransformer

    visual = getattr(clip_model, "visual", clip_model)
    if not isinstance(visual, VisionTransformer):
        raise ConfigError(f"DenseCLIP needs an open_clip ViT image tower, got {type(visual).__name__} "
                          "(ResNet and timm towers are not supported).")
    if visual.attn_pool is not None or visual.pool_type != "tok" or visual.final_ln_after_pool:
        raise ConfigError("DenseCLIP supports CLIP ViTs with CLS-token pooling (pool_type 'tok', no attentional "
                          "pooler), as in ViT-B-16 and ViT-L-14-336.")
    for block in visual.transformer.resblocks:
        if not isinstance(block, ResidualAttentionBlock) or not block.attn._qkv_same_embed_dim:
            raise ConfigError("DenseCLIP supports open_clip's standard ResidualAttentionBlock "
                              "(nn.MultiheadAttention with a packed in-projection).")
    return visual


def _normalise_indices(indices: Sequence[int], n_blocks: int, what: str) -> tuple[int, ...]:
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


def _normalise_rules(rules: Mapping[int, AttnRule], n_blocks: int) -> dict[int, AttnRule]:
    keys = _normalise_indices(list(rules), n_blocks, "attention_rules")
    normalised = {int(i) % n_blocks: rule for i, rule in rules.items()}
    for rule in normalised.values():
        if not isinstance(rule, AttnRule):
            raise ConfigError(f"attention_rules values must be AttnRule instances (Vanilla(), GPS(alpha), "
                              f"CoverageIdentity(), MPS()), got {rule!r}.")
    return {k: normalised[k] for k in keys}
