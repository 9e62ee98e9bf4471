"""DINO ViT-B/8 through timm, ProxyCLIP's default proxy (TRAINING_FREE_SPEC 1): last-layer patch features.

`build_dino(arch, pretrained, device, seed) -> (model, WeightsInfo)`, with the rules of CLIP's `build_clip`:
- `pretrained`: "dino" (timm's pretrained tag: the Hugging Face hub file `timm/vit_base_patch8_224.dino`, from
  its cache or downloaded), a local checkpoint file (timm's `.safetensors`, or facebookresearch/dino's
  `dino_vitbase8_pretrain.pth`: same key names), or "random" (seeded, recorded as random). None is an error.
- Offline (`HF_HUB_OFFLINE=1` or a failed one-second probe) a tag whose file is not cached ends in a
  `WeightsError` within a second that names the file to download and the option that takes it.
- Tiny configurations (`TINY_DINO`) for tests: the same timm ViT with two blocks of width 32.

`DinoFeatures` renormalises CLIP-normalised input to ImageNet statistics (ProxyCLIP un-normalises and
re-normalises the same way) and returns the final-LayerNorm patch tokens (DINO's `get_intermediate_layers(x)[0]`
without CLS) as (B, C, H/8, W/8); the positional embedding is resampled bicubically to each input (timm's
`dynamic_img_size`; DINO's own code uses a scale factor with +0.1, a sub-pixel difference).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from harness.errors import WeightsError
from harness.paths import refused_pickle_message

from .clip_trunk import CLIP_MEAN_255, CLIP_STD_255, IMAGENET_MEAN_255, IMAGENET_STD_255
from .weights import WeightsInfo, hub_offline, local_weights_path, network_reachable, sha256_of

DINO_ARCH = "vit_base_patch8_224"
DINO_TAG = "dino"
DINO_HUB = ("timm/vit_base_patch8_224.dino", "model.safetensors")
# LPOSS's graph features: DINO ViT-B/16 (timm `vit_base_patch16_224.dino`), the same tag
DINO_HUBS = {DINO_ARCH: DINO_HUB, "vit_base_patch16_224": ("timm/vit_base_patch16_224.dino", "model.safetensors")}
DINO_URL = "https://dl.fbaipublicfiles.com/dino/dino_vitbase8_pretrain/dino_vitbase8_pretrain.pth"
TINY_DINO: dict[str, dict[str, Any]] = {
    "tiny-dino-p8": {"patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2, "img_size": 64},
}


def _create(arch: str, seed: int):
    import timm

    kwargs = dict(num_classes=0, dynamic_img_size=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if arch in TINY_DINO:
            from timm.models.vision_transformer import VisionTransformer

            return VisionTransformer(**TINY_DINO[arch], **kwargs)
        return timm.create_model(arch, pretrained=False, **kwargs)


def _check_arch(arch: str) -> None:
    if arch not in DINO_HUBS and arch not in TINY_DINO:
        raise WeightsError(f"Unknown DINO architecture {arch!r}; use {DINO_ARCH!r} (ProxyCLIP's DINO ViT-B/8), "
                           f"'vit_base_patch16_224' (LPOSS's ViT-B/16) or a test configuration "
                           f"({', '.join(TINY_DINO)}).")


def offline_message(arch: str = DINO_ARCH) -> str:
    repo, filename = DINO_HUBS.get(arch, DINO_HUB)
    return (f"DINO {arch!r} with pretrained tag {DINO_TAG!r} needs its weights file, which is not in the Hugging "
            f"Face cache, and the network is unavailable (HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', '')!r}). "
            f"On a machine with internet download https://huggingface.co/{repo}/resolve/main/{filename}"
            f"{f' (or {DINO_URL})' if arch == DINO_ARCH else ''}, copy it here and pass it with the method option "
            f"dino_weights: PATH (e.g. --set methods.proxyclip.dino_weights=PATH).")


def _cached_hub_file(arch: str = DINO_ARCH) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(*DINO_HUBS[arch])
    return Path(found) if isinstance(found, str) and os.path.isfile(found) else None


def dino_weights_problem(arch: str, pretrained: str | os.PathLike | None) -> str | None:
    """Why `build_dino` would fail for want of weights, without building anything (None if it would not)."""
    if pretrained is None:
        return f"no weights given for DINO {arch!r} (the tag 'dino', a file, or 'random')."
    pretrained = os.fspath(pretrained)
    if pretrained == "random" or local_weights_path(pretrained).is_file():
        return None
    if pretrained != DINO_TAG or arch not in DINO_HUBS:
        return f"DINO weights {pretrained!r}: not a file, and not the tag {DINO_TAG!r} of {arch!r}."
    if _cached_hub_file(arch) is None and (hub_offline() or not network_reachable()):
        return offline_message(arch)
    return None


def load_vit_file(model: nn.Module, path: Path, arch: str,
                  expected: str = "timm's model.safetensors or dino_vitbase8_pretrain.pth") -> None:
    """Weights of a timm ViT (DINO, DINOv2) from a local .safetensors or tensors-only checkpoint, strictly;
    a pickle of Python objects is refused without running it, any other failure names the file and ``expected``."""
    from timm.models.vision_transformer import checkpoint_filter_fn

    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
            state = state.get("state_dict", state.get("model", state)) if isinstance(state, dict) else state
        state = checkpoint_filter_fn(state, model)
        state = {k: v for k, v in state.items() if not k.startswith("head.")}  # DINO's projection head, unused
        model.load_state_dict(state, strict=True)
    except pickle.UnpicklingError as exc:
        raise WeightsError(refused_pickle_message(path, exc)) from None
    except (RuntimeError, KeyError, ValueError, OSError, EOFError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"Could not load {path} into {arch!r}: {first}. Check that it holds weights of "
                           f"this architecture ({expected}).") from exc


def _weights_file(arch: str, pretrained: str) -> Path | None:
    """The checkpoint to load (None for random weights): a local file, or the tag's hub file (cached or
    downloaded)."""
    if pretrained == "random":
        return None
    if (path := local_weights_path(pretrained)).is_file():
        return path
    if pretrained != DINO_TAG or arch not in DINO_HUBS:
        raise WeightsError(f"DINO weights {pretrained!r}: not a file, and not the tag {DINO_TAG!r} of "
                           f"{arch!r}. Check the path given with dino_weights.")
    path = _cached_hub_file(arch)
    if path is not None:
        return path
    if hub_offline() or not network_reachable():
        raise WeightsError(offline_message(arch))
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(*DINO_HUBS[arch]))
    except Exception as exc:  # noqa: BLE001 - any download failure gets the same advice
        raise WeightsError(offline_message(arch) + f" (Download failed: {exc})") from exc


def build_dino(arch: str = DINO_ARCH, pretrained: str | os.PathLike | None = DINO_TAG, device: Any = "cpu", *,
               seed: int = 0) -> tuple[nn.Module, WeightsInfo]:
    """A frozen timm DINO ViT in eval mode and what was loaded into it (see the module docstring)."""
    _check_arch(arch)
    if pretrained is None:
        raise WeightsError(f"No weights given for DINO {arch!r}. Pass the tag {DINO_TAG!r}, a local file, or "
                           "'random' to ask explicitly for untrained random weights.")
    pretrained = os.fspath(pretrained)
    path = _weights_file(arch, pretrained)  # before building: a missing file fails within a second
    model = _create(arch, seed)
    if path is None:
        info = WeightsInfo(arch=arch, source="random", seed=seed)
    else:
        load_vit_file(model, path, arch)
        tagged = pretrained == DINO_TAG and not local_weights_path(pretrained).is_file()
        info = WeightsInfo(arch=arch, source="tag" if tagged else "file", tag=DINO_TAG if tagged else None,
                           path=str(path.resolve()), sha256=sha256_of(path))
    for p in model.parameters():
        p.requires_grad_(False)
    return model.to(device).eval(), info


class DinoFeatures(nn.Module):
    """CLIP-normalised images (B, 3, H, W) -> DINO's last-layer patch features (B, C, H // p, W // p)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.eval()
        self.patch_size = int(model.patch_embed.patch_size[0])
        clip_mean, clip_std = (torch.tensor(s).view(1, 3, 1, 1) for s in (CLIP_MEAN_255, CLIP_STD_255))
        net_mean, net_std = (torch.tensor(s).view(1, 3, 1, 1) for s in (IMAGENET_MEAN_255, IMAGENET_STD_255))
        # x_imagenet = (x_clip * std_c + mean_c - mean_i) / std_i, one affine map per channel
        self.register_buffer("scale", clip_std / net_std, persistent=False)
        self.register_buffer("shift", (clip_mean - net_mean) / net_std, persistent=False)

    def train(self, mode: bool = True) -> DinoFeatures:
        super().train(mode)
        self.model.eval()
        return self

    def forward(self, x: Tensor) -> Tensor:
        x = x.float() * self.scale + self.shift
        gh, gw = x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size
        tokens = self.model.forward_features(x[..., :gh * self.patch_size, :gw * self.patch_size])
        patches = tokens[:, getattr(self.model, "num_prefix_tokens", 1):]
        return patches.transpose(1, 2).reshape(x.shape[0], -1, gh, gw)
