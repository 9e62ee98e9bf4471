"""Build an open_clip CLIP model from a pretrained tag, a local file or explicitly random weights.

`build_clip(arch, pretrained, device, precision) -> (model, WeightsInfo)`; `WeightsInfo.as_record()` is what a
result record stores under `weights` (DESIGN "Contracts"): the tag, or the file and its sha256, or "random".

Rules (DESIGN "Profiles, weights and data"):
- `pretrained=None` is an error, never a silent random model; random weights only with `pretrained="random"`.
- A tag needs the network unless its file is already in open_clip's caches. Offline (`HF_HUB_OFFLINE=1` or a
  failed one-second connectivity probe) a missing file ends in a `WeightsError` within a second that names the
  exact file to download and how to pass it (`--weights PATH`).
- Local files: open_clip checkpoints (state dicts, `.safetensors`) and OpenAI's TorchScript archives
  (`ViT-B-16.pt`, `ViT-L-14-336px.pt`), loaded as plain state dicts; OpenAI weights always get QuickGELU
  (METHOD_SPEC 12.18).
- Tiny configurations (`tiny-vit-p16`, `tiny-vit-p14`) for tests and the smoke profile: real CLIP structure,
  real tokenizer vocabulary, a few layers of width 64. `miniworld-vit-p8` is the CLIP the project pretrains
  itself on MiniWorld (`python -m harness miniworld pretrain`, checkpoint `results/miniworld/clip.pt`).
- Pruned token embeddings: a checkpoint may keep only the token-embedding rows its vocabulary uses (a dict with
  `state_dict` and `token_embedding_rows`, the kept row ids); loading expands them to the full vocabulary with
  zeros elsewhere (`prune_token_embedding` / `expand_token_embedding`).
"""

from __future__ import annotations

import copy
import os
import pickle
import socket
import threading
import warnings
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from harness.errors import WeightsError
from harness.paths import refused_pickle_message
from harness.results import file_sha256 as sha256_of  # noqa: F401 - the name dino.py and this module use

# Small but structurally faithful: 77-token context and the full BPE vocabulary so the real tokenizer works;
# patch 14 exercises the ViT-L stride handling.
TINY_ARCHS: dict[str, dict[str, Any]] = {
    "tiny-vit-p16": {
        "embed_dim": 32,
        "quick_gelu": True,
        "vision_cfg": {"image_size": 64, "layers": 3, "width": 64, "head_width": 32, "patch_size": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
    },
    "tiny-vit-p14": {
        "embed_dim": 32,
        "quick_gelu": True,
        "vision_cfg": {"image_size": 56, "layers": 3, "width": 64, "head_width": 32, "patch_size": 14},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
    },
    # MiniWorld's CLIP (issue 9): a 4-layer width-128 ViT with 8-px patches at 64 px (an 8x8 grid, like
    # ViT-B/16's 14x14 at 224 px in spirit) and a 3-layer width-128 text tower, trained on MiniWorld captions.
    "miniworld-vit-p8": {
        "embed_dim": 128,
        "quick_gelu": True,
        "vision_cfg": {"image_size": 64, "layers": 4, "width": 128, "head_width": 32, "patch_size": 8},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 128, "heads": 4, "layers": 3},
    },
}

TOKEN_ROWS_KEY = "token_embedding_rows"  # in a pruned checkpoint: the ids of the token-embedding rows it keeps
TOKEN_EMBEDDING = "token_embedding.weight"

PRECISIONS = ("fp32", "fp16", "bf16", "pure_fp16", "pure_bf16")
_OPENAI_EXTRA_KEYS = ("input_resolution", "context_length", "vocab_size")
_PROBE_HOSTS = (("huggingface.co", 443),)
_PROBE_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class WeightsInfo:
    """What was loaded into a CLIP model; `as_record()` goes into result records."""

    arch: str
    source: Literal["tag", "file", "random"]
    tag: str | None = None
    path: str | None = None
    sha256: str | None = None
    seed: int | None = None
    quick_gelu: bool | None = None

    def as_record(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        if self.source == "random":
            return f"{self.arch}: random weights (seed {self.seed})"
        where = f"tag {self.tag!r}, " if self.tag else ""
        return f"{self.arch}: {where}file {self.path} (sha256 {str(self.sha256)[:12]})"


def build_clip(
    arch: str,
    pretrained: str | os.PathLike | None,
    device: str | Any = "cpu",
    precision: str = "fp32",
    *,
    seed: int = 0,
    cache_dir: str | None = None,
):
    """Build `arch` (an open_clip model name or a `TINY_ARCHS` key) with the weights `pretrained` names.

    `pretrained`: an open_clip tag (e.g. "openai"), a path to a local checkpoint, or "random" (seeded by
    `seed`, recorded as random). `precision` follows open_clip: "fp32", "fp16"/"bf16" (OpenAI-style
    low-precision weights with fp32 LayerNorms), "pure_fp16"/"pure_bf16". For autocast keep "fp32".
    Returns `(model, WeightsInfo)` with the model in eval mode.
    """
    import open_clip

    if precision not in PRECISIONS:
        raise WeightsError(f"Unknown precision {precision!r}; use one of {', '.join(PRECISIONS)} (for autocast "
                           "keep 'fp32' weights and wrap the call in torch.autocast).")
    if ":" in arch:  # "hf-hub:"/"local-dir:" schemas would fetch configs from elsewhere
        raise WeightsError(f"CLIP architecture {arch!r}: schema prefixes are not supported; give an open_clip "
                           "model name (e.g. ViT-B-16-quickgelu) and pass the weights file with --weights PATH.")
    if arch not in TINY_ARCHS and open_clip.get_model_config(arch) is None:
        known = ", ".join(sorted(TINY_ARCHS)) + ", " + ", ".join(
            m for m in open_clip.list_models() if m.startswith("ViT-B-16") or m.startswith("ViT-L-14"))
        raise WeightsError(f"Unknown CLIP architecture {arch!r}. Use an open_clip model name (e.g. {known}).")
    if pretrained is None:
        raise WeightsError(
            f"No weights given for CLIP {arch!r}. Pass a pretrained tag (e.g. 'openai'), a local file "
            "(--weights PATH), or 'random' to ask explicitly for untrained random weights.")

    pretrained = os.fspath(pretrained)
    if pretrained == "random":
        model = _instantiate(arch, device, precision, seed=seed, quick_gelu=None)
        return model.eval(), WeightsInfo(arch=arch, source="random", seed=seed,
                                         quick_gelu=_uses_quick_gelu(arch, None))

    path = local_weights_path(pretrained)
    if path.is_file():
        openai_archive = _is_torchscript_archive(path)
        quick_gelu = True if openai_archive else None
        model = _instantiate(arch, device, precision, seed=seed, quick_gelu=quick_gelu)
        _load_file(model, path, arch, openai_archive)
        return model.eval(), WeightsInfo(arch=arch, source="file", path=str(path.resolve()),
                                         sha256=sha256_of(path), quick_gelu=_uses_quick_gelu(arch, quick_gelu))

    if arch in TINY_ARCHS:
        raise WeightsError(f"{pretrained!r} is not a file, and the tiny test architecture {arch!r} has no "
                           "pretrained tags; pass 'random' or a checkpoint file saved from this architecture.")
    tag_cfg = open_clip.get_pretrained_cfg(arch, pretrained)
    if not tag_cfg:
        looks_like_path = os.sep in pretrained or pretrained.endswith((".pt", ".pth", ".bin", ".safetensors"))
        if looks_like_path:
            raise WeightsError(f"Weights file {pretrained} does not exist. Check the path given with --weights.")
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(arch)) or "none"
        raise WeightsError(f"{pretrained!r} is neither a file nor a pretrained tag of {arch!r} "
                           f"(known tags: {tags}).")
    file = _resolve_tag_file(arch, pretrained, tag_cfg, cache_dir)
    quick_gelu = bool(tag_cfg.get("quick_gelu", False)) or None
    model = _instantiate(arch, device, precision, seed=seed, quick_gelu=quick_gelu)
    _load_file(model, file, arch, _is_torchscript_archive(file))
    return model.eval(), WeightsInfo(arch=arch, source="tag", tag=pretrained, path=str(file),
                                     sha256=sha256_of(file), quick_gelu=_uses_quick_gelu(arch, quick_gelu))


PROJECT_ROOT = Path(__file__).resolve().parents[2]


def local_weights_path(pretrained: str) -> Path:
    """A weights file named relative to the working directory, or else to the project (suites name the committed
    MiniWorld checkpoint as `results/miniworld/clip.pt`, which must work from any directory)."""
    path = Path(pretrained).expanduser()
    if not path.is_absolute() and not path.exists() and (PROJECT_ROOT / path).is_file():
        return PROJECT_ROOT / path
    return path




def hub_offline() -> bool:
    """True when the user asked huggingface_hub to stay offline (the tests do)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def network_reachable(hosts=_PROBE_HOSTS, timeout_s: float = _PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to any of `hosts` opens within `timeout_s` (DNS included).

    Runs in a daemon thread because name resolution ignores socket timeouts and can hang far longer.
    """
    result: list[bool] = []

    def probe() -> None:
        for host, port in hosts:
            try:
                with socket.create_connection((host, port), timeout=timeout_s):
                    result.append(True)
                    return
            except OSError:
                continue
        result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout_s)
    return bool(result and result[0])


def _uses_quick_gelu(arch: str, forced: bool | None) -> bool:
    import open_clip

    if forced:
        return True
    cfg = TINY_ARCHS.get(arch) or open_clip.get_model_config(arch)
    return bool(cfg.get("quick_gelu", False))


def _instantiate(arch: str, device, precision: str, *, seed: int, quick_gelu: bool | None):
    """A randomly initialised model of `arch` (reproducible from `seed`, global RNG untouched).

    Built from the config directly rather than `open_clip.create_model`, which would log "initialized randomly"
    even when we load weights next. Device and precision handling mirror open_clip's factory.
    """
    import open_clip
    import torch
    from open_clip.model import convert_weights_to_lp, get_cast_dtype

    cfg = copy.deepcopy(TINY_ARCHS.get(arch) or open_clip.get_model_config(arch))
    if cfg.pop("custom_text", False) or "timm_model_name" in cfg["vision_cfg"] or "hf_model_name" in cfg["text_cfg"]:
        raise WeightsError(f"CLIP {arch!r} is not a plain open_clip ViT/text-transformer CLIP; this harness "
                           "supports ViT-B-16(-quickgelu), ViT-L-14-336(-quickgelu) and their relatives.")
    if quick_gelu:
        cfg["quick_gelu"] = True
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = open_clip.CLIP(**cfg, cast_dtype=get_cast_dtype(precision))
    model.to(device=device)
    if precision in ("fp16", "bf16"):
        convert_weights_to_lp(model, dtype=torch.float16 if precision == "fp16" else torch.bfloat16)
    elif precision in ("pure_fp16", "pure_bf16"):
        model.to(dtype=torch.float16 if precision == "pure_fp16" else torch.bfloat16)
    return model


def _is_torchscript_archive(path: Path) -> bool:
    """OpenAI's released `.pt` files are TorchScript zips (they carry `constants.pkl`); state dicts do not."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any(name.endswith("constants.pkl") for name in zf.namelist())


def _load_file(model, path: Path, arch: str, torchscript: bool) -> None:
    import open_clip
    import torch

    try:
        if torchscript:
            with warnings.catch_warnings():  # torch.jit.load is deprecated, yet OpenAI ships only TorchScript
                warnings.simplefilter("ignore", FutureWarning)
                state = torch.jit.load(str(path), map_location="cpu").state_dict()
            expected = model.state_dict().keys()
            # Archives also hold non-persistent buffers (attn_mask) and three OpenAI metadata scalars.
            state = {k: v for k, v in state.items() if k in expected or not (
                k in _OPENAI_EXTRA_KEYS or k.endswith("attn_mask"))}
            model.load_state_dict(state, strict=True)
        elif (pruned := _read_pruned(path)) is not None:
            model.load_state_dict(expand_token_embedding(pruned, model.token_embedding.num_embeddings), strict=True)
        else:
            open_clip.load_checkpoint(model, str(path), strict=True)
    except pickle.UnpicklingError as exc:
        raise WeightsError(refused_pickle_message(path, exc)) from None
    except (RuntimeError, KeyError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"Could not load {path} into CLIP {arch!r}: {first_line}. Check that the file holds "
                           f"weights of this architecture (an open_clip checkpoint or OpenAI's TorchScript "
                           f"archive).") from exc


def prune_token_embedding(state_dict: dict, keep: list[int] | tuple[int, ...]) -> dict:
    """A checkpoint dict that keeps only the token-embedding rows `keep` (sorted, unique row ids).

    A text tower reads only the rows of the tokens it is given, so a model used with a small vocabulary (e.g.
    MiniWorld's words and the prompt templates) loses nothing; 49,408 rows would otherwise dominate its size.
    """
    import torch

    rows = torch.tensor(sorted(set(int(i) for i in keep)), dtype=torch.long)
    state = dict(state_dict)
    state[TOKEN_EMBEDDING] = state[TOKEN_EMBEDDING][rows].clone()
    return {"state_dict": state, TOKEN_ROWS_KEY: rows}


def expand_token_embedding(checkpoint: dict, vocab_size: int) -> dict:
    """The full state dict of a pruned checkpoint: kept rows in place, zeros elsewhere."""
    import torch

    state = dict(checkpoint["state_dict"])
    rows = torch.as_tensor(checkpoint[TOKEN_ROWS_KEY], dtype=torch.long)
    kept = state[TOKEN_EMBEDDING]
    if rows.ndim != 1 or len(rows) != kept.shape[0] or len(rows.unique()) != len(rows) or (
            len(rows) and not 0 <= int(rows.min()) <= int(rows.max()) < vocab_size):
        raise ValueError(f"pruned token embedding: {len(rows)} row ids for {kept.shape[0]} rows must be distinct "
                         f"ids in [0, {vocab_size})")
    full = torch.zeros(vocab_size, kept.shape[1], dtype=kept.dtype)
    full[rows] = kept
    state[TOKEN_EMBEDDING] = full
    return state


def _read_pruned(path: Path) -> dict | None:
    """The checkpoint dict when `path` is a pruned-vocabulary checkpoint (a torch zip file), else None."""
    import torch

    if path.suffix == ".safetensors" or not zipfile.is_zipfile(path):
        return None
    checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    if isinstance(checkpoint, dict) and TOKEN_ROWS_KEY in checkpoint:
        return checkpoint
    return None


def _resolve_tag_file(arch: str, tag: str, tag_cfg: dict, cache_dir: str | None) -> Path:
    """The local file of a pretrained tag: open_clip's caches first, then a download if the network is up."""
    cached = _cached_tag_file(tag_cfg, cache_dir)
    if cached is not None:
        return cached
    if hub_offline() or not network_reachable():
        raise WeightsError(_offline_message(arch, tag, tag_cfg, cache_dir))
    from open_clip.pretrained import download_pretrained

    try:
        return Path(download_pretrained(tag_cfg, cache_dir=cache_dir))
    except Exception as exc:  # noqa: BLE001 - any download failure gets the same actionable advice
        raise WeightsError(_offline_message(arch, tag, tag_cfg, cache_dir) + f" (Download failed: {exc})") from exc


def _cached_tag_file(tag_cfg: dict, cache_dir: str | None) -> Path | None:
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

    hf_hub = tag_cfg.get("hf_hub", "")
    if hf_hub:
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:
            try_to_load_from_cache = None
        if try_to_load_from_cache is not None:
            repo_id, filename = os.path.split(hf_hub)
            names = [filename] if filename else [HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME]
            for name in names:
                found = try_to_load_from_cache(repo_id, name, cache_dir=cache_dir)
                if isinstance(found, str) and os.path.isfile(found):
                    return Path(found)
    url = tag_cfg.get("url", "")
    if url:
        local = Path(cache_dir or os.path.expanduser("~/.cache/clip")) / os.path.basename(url)
        if local.is_file():
            return local
    return None


def _offline_message(arch: str, tag: str, tag_cfg: dict, cache_dir: str | None) -> str:
    url = tag_cfg.get("url", "")
    hf_hub = tag_cfg.get("hf_hub", "")
    sources = []
    if url:
        sources.append(url)
    if hf_hub:
        repo_id, filename = os.path.split(hf_hub)
        sources.append(f"https://huggingface.co/{repo_id}/resolve/main/{filename or 'open_clip_model.safetensors'}")
    cache = cache_dir or os.path.expanduser("~/.cache/clip")
    return (f"CLIP {arch!r} with pretrained tag {tag!r} needs its weights file, which is not in the local caches, "
            f"and the network is unavailable (HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', '')!r}). On a "
            f"machine with internet download {' or '.join(sources)}, copy it here and pass it with "
            f"--weights PATH (or place {os.path.basename(url) or 'it'} in {cache}).")


def weights_problem(arch: str, pretrained: str | os.PathLike | None, cache_dir: str | None = None) -> str | None:
    """Why `build_clip(arch, pretrained)` would fail for want of weights, without building anything (None if it
    would find them): lets a suite report every missing file before its first cell starts."""
    import open_clip

    if pretrained is None:
        return f"no weights given for CLIP {arch!r} (a tag, a file, or 'random')."
    pretrained = os.fspath(pretrained)
    if pretrained == "random" or local_weights_path(pretrained).is_file():
        return None
    if arch in TINY_ARCHS:
        return f"{pretrained!r} is not a file, and the tiny architecture {arch!r} has no pretrained tags."
    tag_cfg = open_clip.get_pretrained_cfg(arch, pretrained)
    if not tag_cfg:
        return f"weights {pretrained!r} for CLIP {arch!r}: neither a file nor a pretrained tag of it."
    if _cached_tag_file(tag_cfg, cache_dir) is not None:
        return None
    if hub_offline() or not network_reachable():
        return _offline_message(arch, pretrained, tag_cfg, cache_dir)
    return None
