"""Dense CLIP, DeOP's family: L2-normalised joint-space features for every patch of an image of any size.

`DenseCLIP` is the one dense trunk (`clip_trunk.CLIPTrunk`: open_clip's ViT run piece by piece, every block through
`attention_rules.run_block`, the positional embedding resampled bicubically to the input's grid and cached) with
what DeOP's family passes in (METHOD_SPEC 4, 5; paper Sec. 4.1):
- the attention of chosen blocks replaced by an attention rule (`methods.components.attention_rules`: `Vanilla`,
  `GPS(alpha)` (paper Eq. 2), `CoverageIdentity` (the released code's rule, METHOD_SPEC 5a), `MPS`
  (METHOD_SPEC 5c), or any rule registered there), residual and FFN kept;
- learned visual prompts (additive tables, METHOD_SPEC 4.3-4.4) at the input and before chosen blocks;
- the proposal masks as per-token probabilities for the rules that need them;
- `encode_crops`: CLS embeddings of native-size crops (SimBaseline), CLIP's own blocks, no prompts or rules.

Input convention (explicit in the API): `forward(images)` takes raw RGB pixel values in [0, 255] and normalises
them with `input_normalisation` ("imagenet", the official DeOP quirk METHOD_SPEC 4 / 12.2, or "clip");
`forward(images, normalised=True)` takes a tensor that is already normalised (e.g. the very tensor given to
MaskFormer, zero-padded after normalisation as the official code does). Inputs whose size is not a multiple of the
patch size (ViT-L/14) are zero-padded at the bottom/right in normalised space (`remainder="pad"`, padding equals
the mean colour) or cropped (`remainder="crop"`, what a stride-14 convolution does to a 512 input in the
official ViT-L variant).

CLIP weights are frozen (requires_grad False, kept in eval mode); only the visual prompts train."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness.errors import ConfigError

# The rules live in their own module (one table); re-exported here, where DenseCLIP applies them.
from .attention_rules import GPS, MPS, AttnRule, CoverageIdentity, Vanilla, run_block  # noqa: F401
from .clip_trunk import BlockChange, CLIPTrunk, DenseOutput, GridTableCache, normalise_indices
from .protocol_resize import resample_token_table

DEOP_PROMPT_LAYERS = (1, 2, 3, 4, 5)  # METHOD_SPEC 4.4 (deop_train.sh POSITION_LAYERS), plus the input prompt
DEOP_PROMPT_GRID = 24  # 384 / 16, METHOD_SPEC 4.3 (INPUT.LEARNPOSITIONRES)


# ----------------------------------------------------------------------------------------------- the module


class DenseCLIP(CLIPTrunk):
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
        changes = {i: BlockChange(rule) for i, rule in (attention_rules or {}).items()}
        super().__init__(clip_model, blocks=changes, normalisation=input_normalisation, remainder=remainder,
                         pos_interp="size")
        visual = self.visual
        self.prompt_layers = normalise_indices(prompt_layers, len(visual.transformer.resblocks), "prompt_layers")
        if prompt_init not in ("randn", "zeros"):
            raise ConfigError(f"prompt_init must be 'randn' or 'zeros', got {prompt_init!r}.")
        self.input_normalisation = input_normalisation
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
        self._prompt_of = dict(zip(self.prompt_layers, range(len(self.prompt_layers)), strict=True))
        self._prompt_cache = GridTableCache(max_entries=4 * (1 + len(self.prompt_layers)))

    # -------------------------------------------------------------------------------------------- public

    def forward(self, images: Tensor, masks: Tensor | None = None, *, normalised: bool = False) -> DenseOutput:
        """images (B, 3, H, W): raw [0, 255] RGB, or already normalised with `normalised=True`.
        masks (B, N, Hm, Wm): proposal mask logits covering the same image extent, required by rules with
        `needs_masks` (resized bilinearly to the patch grid, then sigmoid, METHOD_SPEC 5a)."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
        x = images if normalised else self.normalise(images)
        height, width = x.shape[-2:]
        mask_tokens = self._mask_tokens(masks, self.nonempty_grid(height, width), (height, width), x.shape[0])
        return self.encode(x, masks=mask_tokens)

    def added_tokens(self, where: int | None, grid: tuple[int, int]) -> Tensor | None:
        """The visual prompts, resampled to the input's grid: the input prompt, and each layer's before its block."""
        table = self.input_prompt if where is None else (
            self.layer_prompts[self._prompt_of[where]] if where in self._prompt_of else None)
        if table is None:
            return None
        return self._prompt_cache.get(table, grid, lambda: resample_token_table(table, self.prompt_grid, grid))

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
        tokens = self.embed(x, self.native_grid)
        for block in self.visual.transformer.resblocks:
            tokens = run_block(block, tokens)
        cls = self.visual.ln_post(tokens[:, 0]) @ self.visual.proj  # layer norm is per token: CLS alone suffices
        return F.normalize(cls, dim=-1)

    # -------------------------------------------------------------------------------------------- internals

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
