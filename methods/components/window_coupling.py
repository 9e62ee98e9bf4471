"""How the windows of one image become its logits (parts of kind ``coupling``, `harness.parts`; ``harness list
parts``). The dense pipeline resizes and normalises an image, then hands *every* window of it to the selected
coupling at once (`ImageWindows`): a coupling may treat the windows independently (mmseg's slide inference, every
method before LPOSS) or couple them (LPOSS: one graph over the patches of all windows). Selected by the training-free
option ``coupling``; its options are the part's fields (recorded in the spec's ``extra_options``).

- ``independent`` (default): each window's cosine logits at the window's size, averaged per pixel
  (`sliding.slide_logits`).
- ``label-propagation`` (LPOSS / LPOSS+, vladan-stojnic/LPOSS @e489a74 `lposs_eval.py` L268-340): the window
  model's features give the seeds (cosine with the text queries, no softmax), the graph model's features of all
  windows give one kNN graph, CG propagates each query (`label_propagation`), each window's scores are resized to
  the window and averaged; LPOSS+ (``pixel_refine``) propagates again on the pixel graph of the resized image (Lab).
  The graph's nodes are DINO's last-block value features (``graph_features: dino-values``, LPOSS's) or, as the
  MiniWorld stand-in where no DINO exists, the CLIP's own last-block value features (``clip-values``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness.api import Timer
from harness.parts import Part, option, part_table, register_part

from .label_propagation import SOLVERS, knn_graph, normalise_graph, patch_centres, pixel_graph, propagate
from .sliding import SlideConfig, slide_logits, windows

COUPLINGS = part_table("coupling")  # the registered couplings (harness list parts)
GRAPH_FEATURES = ("dino-values", "clip-values")


@dataclass(frozen=True)
class ImageWindows:
    """Everything a coupling gets of one image: ``image`` normalised (3, h, w) at the protocol size, ``raw`` the
    resized pixels (1, 3, h, w) in [0, 255], the text queries ``text`` (Q, D), the ``slide`` windows, and three
    functions of a batch of normalised windows (B, 3, ch, cw): ``window_logits`` -> cosine logits (B, Q, ch, cw) at
    the window's size (the family's own per-window path, timed), ``features`` -> L2-normalised patch features (B,
    D, gh, gw) of the window model, ``graph`` -> the graph model's node features (None without one)."""

    image: Tensor
    raw: Tensor
    text: Tensor
    slide: SlideConfig
    window_logits: Callable[[Tensor], Tensor]
    features: Callable[[Tensor], Tensor]
    graph: Callable[[Tensor], Tensor] | None = None


class WindowCoupling(Part):
    """Base of the ``coupling`` parts: ``combine`` -> (logits (Q, h, w) at the protocol size, windows used)."""

    kind: ClassVar[str] = "coupling"

    def uses_dino(self) -> bool:
        """Whether the pipeline must build the spec's DINO (dino_arch / dino_weights) for `graph_model`."""
        return False

    def graph_model(self, window_model: nn.Module, dino: nn.Module | None) -> nn.Module | None:
        """The module that gives `ImageWindows.graph` (None: the coupling needs no graph features)."""
        return None

    def combine(self, windows: ImageWindows, timer: Timer) -> tuple[Tensor, int]:
        raise NotImplementedError


@register_part
@dataclass(frozen=True)
class IndependentWindows(WindowCoupling):
    name: ClassVar[str] = "independent"
    description: ClassVar[str] = "each window on its own, logits averaged per pixel (mmseg slide inference)"

    def combine(self, windows: ImageWindows, timer: Timer) -> tuple[Tensor, int]:
        return slide_logits(windows.image, windows.window_logits, windows.slide)


class ValueFeatures(nn.Module):
    """Normalised windows -> L2-normalised last-block value features (B, C, gh, gw): of a timm DINO (its qkv output
    kept by a forward hook; CLIP-normalised input re-normalised for ImageNet by `DinoFeatures`) or, without one, of
    the window model's CLIP (its last block's value projection of ln_1 of the tokens before it)."""

    def __init__(self, window_model: nn.Module, dino: nn.Module | None) -> None:
        super().__init__()
        self.window_model = window_model
        self.dino_model = dino.eval() if dino is not None else None
        self._values: Tensor | None = None
        if dino is not None:
            from .dino import DinoFeatures

            dino.blocks[-1].attn.qkv.register_forward_hook(self._keep_values)
            self.dino = DinoFeatures(dino)

    def _keep_values(self, module: nn.Module, inputs: Any, output: Tensor) -> None:
        self._values = output[..., 2 * output.shape[-1] // 3:]

    def forward(self, crops: Tensor) -> Tensor:
        if self.dino_model is not None:
            patch = self.dino.patch_size
            gh, gw = crops.shape[-2] // patch, crops.shape[-1] // patch
            self.dino(crops)
            values = self._values[:, getattr(self.dino_model, "num_prefix_tokens", 1):]
        else:
            clip = self.window_model
            tokens, (gh, gw) = clip.tokens_before_last(crops)
            block = clip.visual.transformer.resblocks[-1]
            c = tokens.shape[-1]
            values = F.linear(block.ln_1(tokens), block.attn.in_proj_weight[2 * c:],
                              block.attn.in_proj_bias[2 * c:])[:, 1:]
        values = F.normalize(values.float(), dim=-1)
        return values.transpose(1, 2).reshape(crops.shape[0], -1, gh, gw)


@register_part
@dataclass(frozen=True)
class LabelPropagation(WindowCoupling):
    """configs/lposs.yaml and lposs_plus.yaml: k 400, gamma 3, sigma 0.01, distance power 1, alpha 0.95, 10 CG
    iterations; LPOSS+: r 13 -> radius 6, tau 0.01. ``graph_gamma`` / ``graph_sigma`` are LPOSS's gamma and sigma
    (renamed: the training-free spec's ``gamma`` and ``sigma`` are ProxyCLIP's and NACLIP's)."""

    name: ClassVar[str] = "label-propagation"
    description: ClassVar[str] = ("LPOSS: one kNN graph over the patches of all windows, per-query CG propagation of "
                                  "the window model's seeds (LPOSS+: and a Lab pixel graph)")

    graph_features: str = option("dino-values", "graph nodes: DINO's (dino_arch) or the CLIP's last-block values",
                                 choices=GRAPH_FEATURES)
    k: int = option(400, "neighbours per node of the kNN graph", low=1, high=100_000)
    graph_gamma: float = option(3.0, "power of the cosine similarity of an edge", low=0.0, high=100.0)
    graph_sigma: float = option(0.01, "spatial decay exp(-sigma dist) of an edge", low=0.0, high=1e6)
    dist_pow: float = option(1.0, "power of the spatial distance", low=0.0, high=4.0)
    alpha: float = option(0.95, "propagation weight (I - alpha W)", low=0.0, high=1.0, high_open=True)
    iters: int = option(10, "CG iterations", low=1, high=10_000)
    tol: float = option(1e-6, "CG residual tolerance", low=0.0, high=1.0)
    solver: str = option("scipy", "CG on the CPU (scipy sparse) or batched torch", choices=SOLVERS)
    pixel_refine: bool = option(False, "LPOSS+: a second propagation on the pixel graph of the resized image")
    radius: int = option(6, "LPOSS+ pixel neighbourhood radius", low=1, high=256)
    lab_tau: float = option(0.01, "LPOSS+ temperature of the Lab colour distance", low=0.0, high=1e6, low_open=True)

    def uses_dino(self) -> bool:
        return self.graph_features == "dino-values"

    def graph_model(self, window_model: nn.Module, dino: nn.Module | None) -> nn.Module:
        return ValueFeatures(window_model, dino if self.uses_dino() else None)

    def combine(self, windows: ImageWindows, timer: Timer) -> tuple[Tensor, int]:
        x, text = windows.image, windows.text
        boxes = list(_windows(x, windows.slide))
        crops = torch.stack([x[:, b.y1:b.y2, b.x1:b.x2] for b in boxes])
        with timer("clip"):
            feats = windows.features(crops)
        with timer("dino" if self.uses_dino() else "clip"):  # the graph's node features, a stage of their model
            nodes = windows.graph(crops)
        with timer("graph"):  # the kNN graph: independent of the vocabulary
            gh, gw = nodes.shape[-2:]
            node_feats = nodes.permute(0, 2, 3, 1).reshape(-1, nodes.shape[1])
            patch = round(crops.shape[-2] / gh)
            centres = patch_centres([(b.y1, b.x1, gh, gw) for b in boxes], patch)
            w_norm = normalise_graph(knn_graph(node_feats, centres, k=self.k, gamma=self.graph_gamma,
                                               sigma=self.graph_sigma, dist_pow=self.dist_pow))
        with timer("propagation"):  # one CG solve per query (and LPOSS+'s pixel pass): grows with the vocabulary
            if feats.shape[-2:] != (gh, gw):  # window-model features to the graph's grid, then renormalised
                feats = F.normalize(F.interpolate(feats, size=(gh, gw), mode="bilinear", align_corners=False), dim=1)
            seeds = torch.einsum("bdhw,qd->bhwq", feats.float(), text.float()).reshape(-1, text.shape[0])
            scores = propagate(w_norm, seeds, alpha=self.alpha, iters=self.iters, tol=self.tol, solver=self.solver)
            scores = scores.reshape(len(boxes), gh, gw, -1).permute(0, 3, 1, 2)
            total = scores.new_zeros((scores.shape[1], *x.shape[-2:]))
            count = scores.new_zeros((1, *x.shape[-2:]))
            for b, s in zip(boxes, scores):
                total[:, b.y1:b.y2, b.x1:b.x2] += F.interpolate(s[None], size=(b.y2 - b.y1, b.x2 - b.x1),
                                                                mode="bilinear", align_corners=False)[0]
                count[:, b.y1:b.y2, b.x1:b.x2] += 1
            logits = total / count
            if self.pixel_refine:
                h, w = logits.shape[-2:]
                w_pix = normalise_graph(pixel_graph(windows.raw[0].cpu() / 255.0, radius=self.radius,
                                                    tau=self.lab_tau))
                flat = logits.permute(1, 2, 0).reshape(h * w, -1)
                logits = propagate(w_pix, flat, alpha=self.alpha, iters=self.iters, tol=self.tol,
                                   solver=self.solver).reshape(h, w, -1).permute(2, 0, 1)
        return logits.to(x.device), len(boxes)


def _windows(x: Tensor, slide: SlideConfig):
    boxes = windows(*x.shape[-2:], slide)
    sizes = {(b.y2 - b.y1, b.x2 - b.x1) for b in boxes}
    if len(sizes) != 1:
        raise ValueError(f"label propagation needs windows of one size, got {sorted(sizes)}")
    return boxes
