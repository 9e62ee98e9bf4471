"""Load detectron2-format ResNet weights (e.g. `detectron2://DeepLab/R-103.pkl`) into the timm backbone.

detectron2 stores a pickle of numpy arrays, either bare or as {"model": {...}, "__author__": ...}, with names
like `stem.conv1.weight`, `stem.conv1.norm.running_mean`, `res2.0.conv1.weight`, `res2.0.shortcut.norm.bias`,
optionally under a `backbone.` / `backbone.bottom_up.` prefix. The mapping to timm is a renaming only:
the DeepLab stem's conv1..conv3 are timm's `conv1.0/.3/.6` (their norms `conv1.1`, `conv1.4`, `bn1`), resN is
`layer{N-1}`, convK.norm is bnK and the shortcut is `downsample.0/.1` (METHOD_SPEC 1).
"""

from __future__ import annotations

import hashlib
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from harness.errors import WeightsError
from harness.paths import refused_pickle_message

_STEM = {"conv1": ("conv1.0", "conv1.1"), "conv2": ("conv1.3", "conv1.4"), "conv3": ("conv1.6", "bn1")}
_NORM_FIELDS = ("weight", "bias", "running_mean", "running_var")
_BLOCK = re.compile(r"^res([2-5])\.(\d+)\.(conv[1-3]|shortcut)\.(norm\.)?(\w+)$")
_STEM_KEY = re.compile(r"^stem\.(conv[1-3])\.(norm\.)?(\w+)$")
_PREFIXES = ("backbone.bottom_up.", "backbone.")


def detectron2_key_to_timm(key: str, deep_stem: bool = True,
                           shortcut: tuple[str, str] = ("downsample.0", "downsample.1")) -> str | None:
    """The timm name of one detectron2 ResNet key, or None for keys outside the trunk (e.g. a classifier).

    `deep_stem` False maps detectron2's BasicStem (one 7x7 conv) to timm's `conv1`/`bn1`; `shortcut` names the
    timm modules of the projection conv and its norm (timm's avg-down variants put a pool first).
    """
    for prefix in _PREFIXES:
        if key.startswith(prefix):
            key = key[len(prefix):]
            break
    if m := _STEM_KEY.match(key):
        conv, norm, field = m.groups()
        conv_name, norm_name = _STEM[conv] if deep_stem else ("conv1", "bn1")
        if not deep_stem and conv != "conv1":
            return None
        return f"{norm_name}.{field}" if norm else f"{conv_name}.{field}"
    if m := _BLOCK.match(key):
        stage, block, conv, norm, field = m.groups()
        base = f"layer{int(stage) - 1}.{block}"
        if conv == "shortcut":
            return f"{base}.{shortcut[1]}.{field}" if norm else f"{base}.{shortcut[0]}.{field}"
        return f"{base}.bn{conv[-1]}.{field}" if norm else f"{base}.{conv}.{field}"
    return None


def timm_layout(body: nn.Module) -> dict[str, Any]:
    """How a timm ResNet names what detectron2 calls the stem and the shortcut (keyword args of
    `detectron2_key_to_timm`)."""
    layout: dict[str, Any] = {"deep_stem": isinstance(getattr(body, "conv1", None), nn.Sequential)}
    for module in body.modules():
        downsample = getattr(module, "downsample", None)
        if isinstance(downsample, nn.Sequential):
            children = list(downsample.named_children())
            conv = next(name for name, c in children if isinstance(c, nn.Conv2d))
            norm = next(name for name, c in children if not isinstance(c, (nn.Conv2d, nn.AvgPool2d, nn.Identity)))
            layout["shortcut"] = (f"downsample.{conv}", f"downsample.{norm}")
            break
    return layout


# What a detectron2 weights pickle is made of: numpy arrays, their dtypes and scalars, and plain containers.
# Anything else (os.system, subprocess, eval, ...) is refused before it is called, so a crafted .pkl runs nothing.
_PICKLE_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict"),
    ("_codecs", "encode"),  # how protocol 2 stores the bytes of an array written by Python 3
}


class _ArraysOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _PICKLE_ALLOWED:
            raise pickle.UnpicklingError(
                f"it asks for {module}.{name}, and a weights pickle holds only numpy arrays; refused without running "
                "it (a crafted pickle runs code)")
        return super().find_class(module, name)


def read_detectron2_pickle(path: str | Path) -> dict[str, np.ndarray]:
    """The name -> array dict of a detectron2 .pkl, read by an unpickler that builds only numpy arrays, dtypes and
    plain containers (a plain pickle.load would run whatever a crafted file names)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(
            f"Backbone weights file {path} does not exist. Download detectron2's DeepLab ImageNet R-103 "
            "(https://dl.fbaipublicfiles.com/detectron2/DeepLab/R-103.pkl) on a machine with internet, copy it "
            "here and pass its path as pretrained_backbone, or set pretrained_backbone to null for random init."
        )
    try:
        with path.open("rb") as f:
            data: Any = _ArraysOnlyUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise WeightsError(f"{path} is not a readable detectron2 pickle ({exc}). Re-download the file.") from exc
    if isinstance(data, dict) and isinstance(data.get("model"), dict):
        data = data["model"]
    if not isinstance(data, dict) or not data:
        raise WeightsError(f"{path} holds no name -> array dict; it is not a detectron2 weights pickle.")
    arrays = {str(k): np.asarray(v) for k, v in data.items()}
    foreign = sorted(k for k, v in arrays.items() if v.dtype.kind not in "biuf")
    if foreign:  # strings or objects where weights belong: not a weights file (torch could not convert them)
        raise WeightsError(f"{path} holds non-numeric arrays ({', '.join(foreign[:3])}); it is not a detectron2 "
                           f"weights pickle. Re-download the file.")
    return arrays


def detectron2_to_timm_state(arrays: dict[str, np.ndarray], **layout: Any) -> dict[str, torch.Tensor]:
    """Rename a detectron2 ResNet state to timm names (`layout` as `timm_layout`); keys outside the trunk are
    dropped. A state already in timm names (no detectron2 key in it) is taken as it is."""
    if not any(detectron2_key_to_timm(k, **layout) for k in arrays):
        return {k: torch.from_numpy(np.ascontiguousarray(v)).float() for k, v in arrays.items()}
    state: dict[str, torch.Tensor] = {}
    for key, value in arrays.items():
        name = detectron2_key_to_timm(key, **layout)
        if name is not None:
            state[name] = torch.from_numpy(np.ascontiguousarray(value)).float()
    return state


def load_backbone_weights(body: nn.Module, path: str | Path) -> dict[str, str]:
    """Load a detectron2 .pkl or a torch state dict (timm names) into `body`; every trunk tensor must match.

    Returns what the record's `weights` entry needs: the file and its sha256.
    """
    path = Path(path)
    if path.suffix == ".pkl":
        state = detectron2_to_timm_state(read_detectron2_pickle(path), **timm_layout(body))
    else:
        if not path.is_file():
            raise WeightsError(f"Backbone weights file {path} does not exist; fix pretrained_backbone.")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            raise WeightsError(refused_pickle_message(path, exc)) from None
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
    own = body.state_dict()
    wanted = {k for k in own if not k.endswith("num_batches_tracked")}
    missing = sorted(wanted - state.keys())
    unexpected = sorted(k for k in state.keys() - own.keys() if not k.startswith("fc."))
    mismatched = sorted(k for k in wanted & state.keys() if tuple(state[k].shape) != tuple(own[k].shape))
    if missing or unexpected or mismatched:
        detail = "; ".join(
            f"{label}: {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched))
            if keys
        )
        raise WeightsError(
            f"Backbone weights {path} do not fit the configured backbone ({detail}). Check that the backbone "
            "name, stem_width and channels in the proposal config describe the network the file was saved from."
        )
    body.load_state_dict({k: state[k] for k in wanted}, strict=False)
    return {"file": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
