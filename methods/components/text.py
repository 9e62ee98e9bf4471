"""Class-name text embeddings from a frozen open_clip text tower: fixed templates or a learned context.

`TextEncoder(clip_model, mode, templates, n_ctx, ctx_init)(class_names) -> (K, D)` L2-normalised embeddings
(METHOD_SPEC 2):
- mode "templates": each template formatted with the class name, encoded, L2-normalised, averaged over the
  templates and renormalised. "single" = "a sculpture of a {}." (the config default of both repos), "vild" = the
  14 ViLD templates, "imagenet" = the 80 CLIP ImageNet templates, or any list of "{}" strings.
- mode "learnable" (CoOp, used by DeOP and SimBaseline): [SOS] + n_ctx learned vectors shared by all classes +
  the BPE embeddings of "<name>." + [EOS], no suffix; the EOS feature -> ln_final -> text_projection -> L2.
  Init N(0, 0.02) or, with `ctx_init`, the token embeddings of that phrase (then n_ctx = its token count).

Two speed-ups that do not change a single value:
- The sequence is cut after the longest EOS of the batch. Exact, because the causal mask lets no position see
  what comes after it; the padding after EOS never influences the EOS feature.
- Results are cached per (class list, state of every parameter) so evaluation never re-encodes the same classes.
  The state key holds each parameter's storage pointer, dtype, device and in-place version counter (bumped by
  every optimiser step and `load_state_dict`), so a cached entry cannot go stale. Nothing is cached while a
  trainable parameter would need the autograd graph (grad enabled and some parameter requires grad).
- Template embeddings are also shared by every encoder of the process (`SHARED_TEMPLATE_CACHE`), keyed by the
  digest of the tower's weights, the templates and the options that can change a rounding: methods built side by
  side from the same CLIP (the training-free family, in both speed settings) encode their 171 x 80 prompts once,
  not once each (issue 28: about 100 s per method on a 2-core CPU, 20 of the speed job's 59 minutes).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness.errors import ConfigError

SINGLE_TEMPLATE = ("a sculpture of a {}.",)

# ViLD's 14 templates as SimBaseline/DeOP list them (METHOD_SPEC 2; [S] clip_adapter/utils.py L93-108).
VILD_TEMPLATES = (
    "a photo of a {}.",
    "This is a photo of a {}",
    "There is a {} in the scene",
    "There is the {} in the scene",
    "a photo of a {} in the scene",
    "a photo of a small {}.",
    "a photo of a medium {}.",
    "a photo of a large {}.",
    "This is a photo of a small {}.",
    "This is a photo of a medium {}.",
    "This is a photo of a large {}.",
    "There is a small {} in the scene.",
    "There is a medium {} in the scene.",
    "There is a large {} in the scene.",
)

# The 80 templates of CLIP's ImageNet zero-shot evaluation (METHOD_SPEC 2; [S] clip_adapter/utils.py L11-92).
IMAGENET_TEMPLATES = (
    "a bad photo of a {}.", "a photo of many {}.", "a sculpture of a {}.", "a photo of the hard to see {}.",
    "a low resolution photo of the {}.", "a rendering of a {}.", "graffiti of a {}.", "a bad photo of the {}.",
    "a cropped photo of the {}.", "a tattoo of a {}.", "the embroidered {}.", "a photo of a hard to see {}.",
    "a bright photo of a {}.", "a photo of a clean {}.", "a photo of a dirty {}.", "a dark photo of the {}.",
    "a drawing of a {}.", "a photo of my {}.", "the plastic {}.", "a photo of the cool {}.",
    "a close-up photo of a {}.", "a black and white photo of the {}.", "a painting of the {}.",
    "a painting of a {}.", "a pixelated photo of the {}.", "a sculpture of the {}.", "a bright photo of the {}.",
    "a cropped photo of a {}.", "a plastic {}.", "a photo of the dirty {}.", "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.", "a photo of the {}.", "a good photo of the {}.", "a rendering of the {}.",
    "a {} in a video game.", "a photo of one {}.", "a doodle of a {}.", "a close-up photo of the {}.",
    "a photo of a {}.", "the origami {}.", "the {} in a video game.", "a sketch of a {}.", "a doodle of the {}.",
    "a origami {}.", "a low resolution photo of a {}.", "the toy {}.", "a rendition of the {}.",
    "a photo of the clean {}.", "a photo of a large {}.", "a rendition of a {}.", "a photo of a nice {}.",
    "a photo of a weird {}.", "a blurry photo of a {}.", "a cartoon {}.", "art of a {}.", "a sketch of the {}.",
    "a embroidered {}.", "a pixelated photo of a {}.", "itap of the {}.", "a jpeg corrupted photo of the {}.",
    "a good photo of a {}.", "a plushie {}.", "a photo of the nice {}.", "a photo of the small {}.",
    "a photo of the weird {}.", "the cartoon {}.", "art of the {}.", "a drawing of the {}.",
    "a photo of the large {}.", "a black and white photo of a {}.", "the plushie {}.", "a dark photo of a {}.",
    "itap of a {}.", "graffiti of the {}.", "a toy {}.", "itap of my {}.", "a photo of a cool {}.",
    "a photo of a small {}.", "a tattoo of the {}.",
)

TEMPLATE_SETS = {"single": SINGLE_TEMPLATE, "vild": VILD_TEMPLATES, "imagenet": IMAGENET_TEMPLATES}
DEFAULT_N_CTX = 16  # PROMPT_SHAPE (16, 0), METHOD_SPEC 2
SHARED_TEMPLATE_CACHE: OrderedDict[tuple, Tensor] = OrderedDict()  # see the module docstring
SHARED_TEMPLATE_CACHE_SIZE = 16


@lru_cache(maxsize=1)
def clip_tokenizer():
    """open_clip's BPE tokenizer (its vocabulary ships with the package; no network)."""
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer()


def resolve_templates(templates: str | Sequence[str]) -> tuple[str, ...]:
    if isinstance(templates, str):
        if templates not in TEMPLATE_SETS:
            raise ConfigError(f"Unknown template set {templates!r}; use one of {sorted(TEMPLATE_SETS)} or a list "
                              "of strings with one '{}' each.")
        return TEMPLATE_SETS[templates]
    out = tuple(templates)
    bad = [t for t in out if t.count("{}") != 1]
    if not out or bad:
        raise ConfigError(f"Templates must be a non-empty list of strings with exactly one '{{}}' each; "
                          f"offending: {bad or 'empty list'}.")
    return out


class TextEncoder(nn.Module):
    """(class names) -> (K, D) L2-normalised text embeddings; see the module docstring.

    Args:
        clip_model: an open_clip `CLIP` (text tower on the model) or a model with a `.text` TextTransformer.
            Its text weights are frozen; only `ctx` (learnable mode) trains.
        mode: "templates" or "learnable".
        templates: template set name or list (templates mode).
        n_ctx: number of learned context vectors (default 16; inferred from `ctx_init` when that is given).
        ctx_init: optional phrase whose token embeddings initialise the context, e.g. "a photo of a".
        truncate: cut sequences after the longest EOS (exact; off only for checking that claim).
        batch_size: prompts per text-transformer call (templates mode can mean thousands of prompts).
        cache_size: number of (class list, state) results kept.
    """

    def __init__(
        self,
        clip_model: nn.Module,
        mode: Literal["templates", "learnable"] = "templates",
        templates: str | Sequence[str] = "single",
        n_ctx: int | None = None,
        ctx_init: str | None = None,
        *,
        truncate: bool = True,
        batch_size: int = 512,
        cache_size: int = 8,
    ) -> None:
        super().__init__()
        tower = getattr(clip_model, "text", clip_model)
        if getattr(tower, "cls_emb", None) is not None:
            raise ConfigError("TextEncoder supports CLIP text towers that pool the EOS token (not CoCa-style "
                              "appended class tokens).")
        self.token_embedding = tower.token_embedding
        self.transformer = tower.transformer
        self.ln_final = tower.ln_final
        self.positional_embedding = tower.positional_embedding
        self.text_projection = tower.text_projection
        self.register_buffer("attn_mask", tower.attn_mask, persistent=False)
        self.context_length = int(self.positional_embedding.shape[0])
        for p in self.parameters():
            p.requires_grad_(False)

        if mode not in ("templates", "learnable"):
            raise ConfigError(f"TextEncoder mode must be 'templates' or 'learnable', got {mode!r}.")
        self.mode = mode
        self.truncate = truncate
        self.batch_size = batch_size
        self.templates = resolve_templates(templates) if mode == "templates" else None
        self.ctx: nn.Parameter | None = None
        if mode == "learnable":
            self.ctx = nn.Parameter(self._initial_context(n_ctx, ctx_init))
        elif n_ctx is not None or ctx_init is not None:
            raise ConfigError("n_ctx/ctx_init apply to mode='learnable' only.")
        self._cache: OrderedDict[tuple, Tensor] = OrderedDict()
        self.cache_size = cache_size
        self.cache_hits = 0
        self.cache_misses = 0
        self.shared_hits = 0  # instance-cache misses served by SHARED_TEMPLATE_CACHE
        self._digests: dict[tuple, str] = {}  # state key -> digest of the weights' content

    @property
    def n_ctx(self) -> int:
        return 0 if self.ctx is None else int(self.ctx.shape[0])

    def forward(self, class_names: Sequence[str]) -> Tensor:
        names = tuple(str(n).strip() for n in class_names)
        if not names:
            raise ConfigError("TextEncoder needs at least one class name.")
        if torch.is_grad_enabled() and any(p.requires_grad for p in self.parameters()):
            return self._encode(names)
        key = (names, self._state_key())
        hit = self._cache.get(key)
        if hit is not None:
            self.cache_hits += 1
            self._cache.move_to_end(key)
            return hit
        self.cache_misses += 1
        shared_key = self._shared_key(names, key[1]) if self.mode == "templates" else None
        out = SHARED_TEMPLATE_CACHE.get(shared_key) if shared_key is not None else None
        if out is not None:
            self.shared_hits += 1
            SHARED_TEMPLATE_CACHE.move_to_end(shared_key)
        else:
            # Never cache an inference tensor: embeddings computed during evaluation must stay usable in training.
            with torch.inference_mode(False), torch.no_grad():
                out = self._encode(names)
            if shared_key is not None:
                SHARED_TEMPLATE_CACHE[shared_key] = out
                if len(SHARED_TEMPLATE_CACHE) > SHARED_TEMPLATE_CACHE_SIZE:
                    SHARED_TEMPLATE_CACHE.popitem(last=False)
        self._cache[key] = out
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return out

    def clear_cache(self) -> None:
        self._cache.clear()

    # -------------------------------------------------------------------------------------------- internals

    def _state_key(self) -> tuple:
        device_type = self.positional_embedding.device.type
        autocast = (torch.is_autocast_enabled(device_type) and torch.get_autocast_dtype(device_type))
        return (autocast,) + tuple((p.data_ptr(), p.device, p.dtype, p._version) for p in self.parameters())

    def _shared_key(self, names: tuple[str, ...], state_key: tuple) -> tuple:
        """What the template embeddings depend on: the weights' content (hashed once per state), the
        templates, the class names, autocast, and the options that change how the prompts are batched."""
        if state_key not in self._digests:
            digest = hashlib.blake2b(digest_size=20)
            for name, t in [*self.named_parameters(), *self.named_buffers()]:
                data = t.detach().cpu().contiguous()
                digest.update(f"{name}{tuple(data.shape)}{data.dtype}".encode())
                digest.update(memoryview(data.view(torch.uint8).reshape(-1).numpy()))
            self._digests = {state_key: digest.hexdigest()}
        return (self._digests[state_key], str(self.positional_embedding.device), state_key[0], self.templates,
                self.truncate, self.batch_size, names)

    def _initial_context(self, n_ctx: int | None, ctx_init: str | None) -> Tensor:
        weight = self.token_embedding.weight
        if ctx_init is None:
            n = DEFAULT_N_CTX if n_ctx is None else int(n_ctx)
            if n < 1:
                raise ConfigError(f"n_ctx must be >= 1, got {n_ctx}.")
            return torch.empty(n, weight.shape[1], device=weight.device).normal_(std=0.02)
        ids = clip_tokenizer().encode(ctx_init)
        if n_ctx is not None and n_ctx != len(ids):
            raise ConfigError(f"ctx_init {ctx_init!r} has {len(ids)} tokens but n_ctx={n_ctx}; drop n_ctx or "
                              "make them agree.")
        return weight[torch.tensor(ids, device=weight.device)].detach().clone().float()

    def _encode(self, names: tuple[str, ...]) -> Tensor:
        if self.mode == "learnable":
            ids, eos = self._learnable_ids(names)
            return F.normalize(self._run(ids, eos, with_context=True), dim=-1)
        prompts = [t.format(n) for n in names for t in self.templates]
        ids = self._template_ids(prompts)
        chunks = []
        for start in range(0, ids.shape[0], self.batch_size):
            part = ids[start:start + self.batch_size]
            chunks.append(F.normalize(self._run(part, part.argmax(dim=-1), with_context=False), dim=-1))
        per_template = torch.cat(chunks).view(len(names), len(self.templates), -1)
        return F.normalize(per_template.mean(dim=1), dim=-1)

    def _template_ids(self, prompts: list[str]) -> Tensor:
        tok = clip_tokenizer()
        rows = [[tok.sot_token_id] + tok.encode(p) + [tok.eot_token_id] for p in prompts]
        too_long = [p for p, r in zip(prompts, rows) if len(r) > self.context_length]
        if too_long:
            raise ConfigError(f"Prompt(s) longer than CLIP's {self.context_length} tokens: {too_long[:3]}.")
        return _pad_rows(rows, self.context_length, self.positional_embedding.device)

    def _learnable_ids(self, names: tuple[str, ...]) -> tuple[Tensor, Tensor]:
        """Token ids with `n_ctx` placeholder slots after SOS, and the EOS index of every row."""
        tok = clip_tokenizer()
        rows = [[tok.sot_token_id] + [0] * self.n_ctx + tok.encode(f"{n}.") + [tok.eot_token_id] for n in names]
        too_long = [n for n, r in zip(names, rows) if len(r) > self.context_length]
        if too_long:
            raise ConfigError(f"Class name(s) too long for {self.n_ctx} context vectors within CLIP's "
                              f"{self.context_length} tokens: {too_long[:3]}.")
        device = self.positional_embedding.device
        return _pad_rows(rows, self.context_length, device), torch.tensor([len(r) - 1 for r in rows], device=device)

    def _run(self, ids: Tensor, eos: Tensor, *, with_context: bool) -> Tensor:
        """The text transformer on `ids` (context slots replaced by `ctx`), pooled at `eos` and projected."""
        length = int(eos.max()) + 1 if self.truncate else self.context_length
        ids = ids[:, :length]
        cast_dtype = self.transformer.get_cast_dtype()
        x = self.token_embedding(ids).to(cast_dtype)
        if with_context:
            ctx = self.ctx.to(cast_dtype).unsqueeze(0).expand(x.shape[0], -1, -1)
            x = torch.cat([x[:, :1], ctx, x[:, 1 + self.n_ctx:]], dim=1)
        x = x + self.positional_embedding[:length].to(cast_dtype)
        mask = None if self.attn_mask is None else self.attn_mask[:length, :length]
        x = self.transformer(x, attn_mask=mask)
        x = self.ln_final(x[torch.arange(x.shape[0], device=x.device), eos])
        if isinstance(self.text_projection, nn.Linear):
            return self.text_projection(x)
        return x if self.text_projection is None else x @ self.text_projection


def _pad_rows(rows: list[list[int]], length: int, device) -> Tensor:
    out = torch.zeros(len(rows), length, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row)
    return out.to(device)
