"""Talk2DINO (lorebianchi98/Talk2DINO @4918c2d, ICCV 2025): DINOv2 patches against CLIP text mapped into DINOv2's
space by a small MLP; our own code from its facts.

Read from `src/model.py` (ProjectionLayer), `src/open_vocabulary_segmentation/models/dinotext/dinotext.py`
(build_text_embedding, process_self_attention, generate_masks, similarity_assignment_weighted), `masker.py`
(DINOTextSim2Mask), `segmentation/evaluation/dinotext_seg.py` (bg_thresh) and configs/vitb_mlp_infonce.yaml:
- Image side: DINOv2 ViT-B/14 with 4 registers (timm `vit_base_patch14_reg4_dinov2.lvd142m`), ImageNet
  normalisation on [0, 1] pixels; the patch tokens after the final norm (5 prefix tokens dropped).
- Text side (`text_embeddings`): CLIP's `encode_text` per template, *averaged unnormalised* over the templates
  (TCL's 7 `sub_imagenet_template`), through the projection, then L2-normalised.
- Projection (`ProjectionMLP`, "vitb_mlp_infonce"): Linear(512 -> 768), tanh, Linear(768 -> 768); the official
  weights `weights/vitb_mlp_infonce.pth` (keys linear_layer.*, hidden_layers.0.* or the older linear_layer2.*).
- Scores: sigmoid(cos(patch, text)) (`DINOTextSim2Mask` soft mask). Background cleaning (`with_bg_clean`, on in
  the reported configs, lambda_bg 0.2, `background_clean`): the last block's CLS-to-patch attention logits per head
  (q * 0.125, pre-softmax, as the official code passes them) weight the patch features into one embedding per head; each
  class's attention map is the mean of the head maps weighted by softmax over heads of head-text similarity, then
  softmax over patches, min-max rescaled into the score range; scores <- (scores + 0.2 * map) / 1.2.
- Decision: a constant background channel `bg_thresh` (0.55 on VOC-21) before the class scores, argmax.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness.errors import ConfigError, WeightsError
from harness.paths import refused_pickle_message

from .dino import load_vit_file
from .weights import WeightsInfo, hub_offline, local_weights_path, network_reachable, sha256_of

DINOV2_ARCH = "vit_base_patch14_reg4_dinov2"
DINOV2_TAG = "lvd142m"
DINOV2_HUB = ("timm/vit_base_patch14_reg4_dinov2.lvd142m", "model.safetensors")
TINY_DINOV2 = {"tiny-dinov2-reg-p14": {"patch_size": 14, "embed_dim": 32, "depth": 2, "num_heads": 2,
                                       "img_size": 56}}
DINOV2_FLAGS = {"class_token": True, "reg_tokens": 4, "no_embed_class": True, "init_values": 1e-5}
PROJECTION_FILE = "weights/vitb_mlp_infonce.pth (lorebianchi98/Talk2DINO @4918c2d)"
TALK2DINO_TEMPLATES = ("itap of a {}.", "a bad photo of a {}.", "a origami {}.", "a photo of the large {}.",
                       "a {} in a video game.", "art of the {}.", "a photo of the small {}.")
ATTN_SCALE = 0.125  # dinotext.py: self.scale, 1 / sqrt(64) for ViT-B's 64-wide heads


class ProjectionMLP(nn.Module):
    """CLIP text embedding (.., clip_dim) -> DINOv2 space (.., dino_dim): Linear, tanh, Linear."""

    def __init__(self, clip_dim: int = 512, dino_dim: int = 768) -> None:
        super().__init__()
        self.linear_layer = nn.Linear(clip_dim, dino_dim)
        self.hidden_layers = nn.ModuleList([nn.Linear(dino_dim, dino_dim)])

    def forward(self, x: Tensor) -> Tensor:
        return self.hidden_layers[0](torch.tanh(self.linear_layer(x.float())))


def projection_problem(weights: str) -> str | None:
    """Why `load_projection` would fail (None if it would not), without loading anything."""
    if weights == "random" or local_weights_path(weights).is_file():
        return None
    return (f"Talk2DINO projection weights {weights!r}: no such file. Get {PROJECTION_FILE} (or the projection of "
            f"the Hugging Face model lorebianchi98/Talk2DINO-ViTB) on a machine with internet and pass its path "
            f"with the method option projection_weights: PATH.")


def load_projection(weights: str, clip_dim: int = 512, dino_dim: int = 768, *,
                    seed: int = 0) -> tuple[ProjectionMLP, WeightsInfo]:
    """The frozen projection from a file, or random (seeded) weights for timing and tests."""
    problem = projection_problem(weights)
    if problem:
        raise WeightsError(problem)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mlp = ProjectionMLP(clip_dim, dino_dim)
    if weights == "random":
        info = WeightsInfo(arch="talk2dino-mlp", source="random", seed=seed)
    else:
        path = local_weights_path(weights)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            raise WeightsError(refused_pickle_message(path, exc)) from None
        for old, new in (("linear_layer2.weight", "hidden_layers.0.weight"), ("linear_layer2.bias",
                                                                               "hidden_layers.0.bias")):
            if old in state:
                state[new] = state.pop(old)
        try:
            mlp.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise WeightsError(f"Could not load {path} as Talk2DINO's projection ({clip_dim} -> {dino_dim}): "
                               f"{str(exc).splitlines()[0]}") from exc
        info = WeightsInfo(arch="talk2dino-mlp", source="file", path=str(path.resolve()), sha256=sha256_of(path))
    for p in mlp.parameters():
        p.requires_grad_(False)
    return mlp.eval(), info


def dinov2_offline_message() -> str:
    repo, filename = DINOV2_HUB
    return (f"DINOv2 {DINOV2_ARCH!r} with tag {DINOV2_TAG!r} needs https://huggingface.co/{repo}/resolve/main/"
            f"{filename}, which is not in the Hugging Face cache, and the network is unavailable "
            f"(HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', '')!r}). Download it on a machine with internet "
            f"and pass it with dinov2_weights: PATH.")


def build_dinov2(arch: str = DINOV2_ARCH, weights: str = DINOV2_TAG, *, seed: int = 0) -> tuple[nn.Module, WeightsInfo]:
    """A frozen timm DINOv2-with-registers ViT (eval) and what was loaded; fails fast offline, naming the file."""
    import timm
    from timm.models.vision_transformer import VisionTransformer

    if arch != DINOV2_ARCH and arch not in TINY_DINOV2:
        raise ConfigError(f"option dinov2_arch={arch!r}: use {DINOV2_ARCH!r} or {', '.join(TINY_DINOV2)}.")
    path: Path | None = None
    if weights != "random":
        if local_weights_path(weights).is_file():
            path = local_weights_path(weights)
        elif weights != DINOV2_TAG or arch != DINOV2_ARCH:
            raise WeightsError(f"DINOv2 weights {weights!r}: not a file, and not the tag {DINOV2_TAG!r} of "
                               f"{DINOV2_ARCH!r}.")
        else:
            from huggingface_hub import hf_hub_download, try_to_load_from_cache

            cached = try_to_load_from_cache(*DINOV2_HUB)
            if isinstance(cached, str) and os.path.isfile(cached):
                path = Path(cached)
            elif hub_offline() or not network_reachable():
                raise WeightsError(dinov2_offline_message())
            else:
                path = Path(hf_hub_download(*DINOV2_HUB))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if arch in TINY_DINOV2:
            model = VisionTransformer(**TINY_DINOV2[arch], **DINOV2_FLAGS, num_classes=0, dynamic_img_size=True)
        else:
            model = timm.create_model(arch, pretrained=False, num_classes=0, dynamic_img_size=True)
    if path is None:
        info = WeightsInfo(arch=arch, source="random", seed=seed)
    else:
        load_vit_file(model, path, arch, expected="timm's vit_base_patch14_reg4_dinov2.lvd142m model.safetensors")
        tagged = weights == DINOV2_TAG
        info = WeightsInfo(arch=arch, source="tag" if tagged else "file", tag=DINOV2_TAG if tagged else None,
                           path=str(path.resolve()), sha256=sha256_of(path))
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval(), info


class DinoV2Patches(nn.Module):
    """ImageNet-normalised images (B, 3, H, W) -> (patch features (B, C, gh, gw), CLS attention logits
    (B, heads, gh*gw)) of the last block: q_cls . k_patch * 0.125, pre-softmax (`process_self_attention`)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.eval()
        self.patch_size = int(model.patch_embed.patch_size[0])
        self.prefix = int(getattr(model, "num_prefix_tokens", 1))
        self._qkv: Tensor | None = None
        model.blocks[-1].attn.qkv.register_forward_hook(self._keep_qkv)

    def _keep_qkv(self, module: nn.Module, inputs: Any, output: Tensor) -> None:
        self._qkv = output

    def train(self, mode: bool = True) -> DinoV2Patches:
        super().train(mode)
        self.model.eval()
        return self

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        gh, gw = x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size
        tokens = self.model.forward_features(x[..., :gh * self.patch_size, :gw * self.patch_size].float())
        patches = tokens[:, self.prefix:].transpose(1, 2).reshape(x.shape[0], -1, gh, gw)
        b, n, c3 = self._qkv.shape
        heads = self.model.blocks[-1].attn.num_heads
        qkv = self._qkv.reshape(b, n, 3, heads, c3 // 3 // heads).permute(2, 0, 3, 1, 4)
        q, k = qkv[0] * ATTN_SCALE, qkv[1]
        maps = (q @ k.transpose(-2, -1))[:, :, 0, self.prefix:]
        self._qkv = None
        return patches, maps


def text_embeddings(encode_text, projection: nn.Module, names: list[str],
                    templates: tuple[str, ...] = TALK2DINO_TEMPLATES) -> Tensor:
    """encode_text(prompts) -> (P, D) raw CLIP text features. -> (K, dino_dim) normalised: the unnormalised mean
    over templates, projected, normalised (`build_text_embedding`)."""
    prompts = [t.format(n) for n in names for t in templates]
    raw = encode_text(prompts).float().reshape(len(names), len(templates), -1).mean(1)
    return F.normalize(projection(raw), dim=-1)


def similarity_scores(patches: Tensor, text: Tensor) -> Tensor:
    """(B, C, h, w), (K, C) normalised text -> sigmoid(cos) (B, K, h, w)."""
    return torch.sigmoid(torch.einsum("bchw,kc->bkhw", F.normalize(patches, dim=1), text))


def background_clean(scores: Tensor, patches: Tensor, attn_logits: Tensor, text: Tensor,
                     lambda_bg: float = 0.2) -> Tensor:
    """`similarity_assignment_weighted` for one image: scores (1, K, h, w), patches (1, C, h, w), attn_logits
    (1, M, h*w), text (K, C) -> (1, K, h, w)."""
    _, k, h, w = scores.shape
    maps = attn_logits[0]  # (M, hw): the official code passes the pre-softmax logits here
    feats = patches[0].reshape(patches.shape[1], h * w)  # (C, hw)
    head_embed = F.normalize((maps[:, None, :] * feats[None]).mean(-1), dim=-1)  # (M, C)
    head_text = (text @ head_embed.T).softmax(-1)  # (K, M): softmax over heads
    per_class = (head_text @ maps) / head_text.sum(-1, keepdim=True)  # (K, hw)
    per_class = per_class.softmax(-1)
    lo, hi = per_class.min(), per_class.max()  # kept on the device: no read-back per window
    per_class = (per_class - lo) / torch.maximum(hi, hi - lo)
    per_class = per_class * (scores.max() - scores.min()) + scores.min()
    return ((scores.reshape(k, h * w) + lambda_bg * per_class) / (1 + lambda_bg)).reshape(1, k, h, w)
