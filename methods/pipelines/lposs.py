"""LPOSS / LPOSS+ as a segmenter: the first method whose windows are not independent (vladan-stojnic/LPOSS @e489a74
`lposs_eval.py` L268-340). Per image, after the family's resize and normalisation:
1. every window (mmseg's slide positions) through MaskCLIP (identity last block, residual and FFN kept) -> seeds:
   cosine of the L2-normalised patch features with the text queries (no softmax);
2. every window through the graph model -> the nodes' features: DINO's last-block *value* features
   (`graph_features: dino-values`, LPOSS's) or, as a documented stand-in where no DINO exists (MiniWorld), the
   CLIP's own last-block value features (`clip-values`); MaskCLIP features are resized to the graph grid first;
3. one kNN graph over the patches of all windows together, propagation per query (`components/label_propagation`);
4. each window's propagated scores resized to the window and averaged over windows, as mmseg's slide inference;
5. LPOSS+ (`pixel_refine`): a second propagation on the pixel graph of the resized image (Lab, 13 x 13, tau 0.01).
The scores then go through the family's decision (softmax(tau x) is monotone per pixel, so the argmax is LPOSS's;
the background class is the maximum over its queries, as `reduce_to_true_classes`). Timed stages: clip, graph
(the graph model's forward), propagation (graph, CG solves and LPOSS+), postprocess.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness.api import Timer
from harness.errors import ConfigError

from ..components.label_propagation import (
    SOLVERS,
    check_graph_options,
    knn_graph,
    normalise_graph,
    patch_centres,
    pixel_graph,
    propagate,
)
from ..components.protocol_resize import resize_image
from ..components.sliding import windows
from ..extended_plugin import check_number
from .dense import DenseSegmenter, protocol_size

GRAPH_FEATURES = ("dino-values", "clip-values")


@dataclass(frozen=True)
class LPOSSOptions:
    """configs/lposs.yaml and lposs_plus.yaml (k 400, gamma 3, sigma 0.01, distance power 1, alpha 0.95, 10 CG
    iterations; LPOSS+: r 13 -> radius 6, tau 0.01)."""

    graph_features: str = "dino-values"  # the DINO is the spec's dino_arch / dino_weights
    k: int = 400
    gamma: float = 3.0
    sigma: float = 0.01
    dist_pow: float = 1.0
    alpha: float = 0.95
    iters: int = 10
    tol: float = 1e-6
    solver: str = "scipy"
    pixel_refine: bool = False
    radius: int = 6
    lab_tau: float = 0.01

    def __post_init__(self) -> None:
        if self.graph_features not in GRAPH_FEATURES:
            raise ConfigError(f"option graph_features={self.graph_features!r} is not one of "
                              f"{', '.join(GRAPH_FEATURES)}.")
        if self.solver not in SOLVERS:
            raise ConfigError(f"option solver={self.solver!r} is not one of {', '.join(SOLVERS)}.")
        if not isinstance(self.pixel_refine, bool):
            raise ConfigError(f"option pixel_refine must be true or false, got {self.pixel_refine!r}.")
        check_graph_options(k=self.k, gamma=self.gamma, sigma=self.sigma, alpha=self.alpha, iters=self.iters,
                            radius=self.radius, tau=self.lab_tau)
        check_number("dist_pow", self.dist_pow, 0.0, 4.0)
        check_number("tol", self.tol, 0.0, 1.0)

    def weights_problems(self, spec) -> list[str]:
        if self.graph_features != "dino-values":
            return []
        from ..components.dino import dino_weights_problem

        return [dino_weights_problem(spec.dino_arch, spec.dino_weights) or ""]


class LPOSSSegmenter(DenseSegmenter):
    """The dense pipeline's segmenter with LPOSS's joint-window logits (module docstring)."""

    def __init__(self, spec, visual: nn.Module, text: nn.Module, dino: nn.Module | None,
                 options: LPOSSOptions) -> None:
        super().__init__(spec, visual, text, None)
        self.options = options
        self.graph_model = dino.eval() if dino is not None else None
        self._values: Tensor | None = None
        if self.graph_model is not None:
            self.graph_model.blocks[-1].attn.qkv.register_forward_hook(self._keep_values)
            from ..components.dino import DinoFeatures

            self.dino = DinoFeatures(self.graph_model)  # CLIP-normalised -> ImageNet-normalised, forward

    def _keep_values(self, module: nn.Module, inputs: Any, output: Tensor) -> None:
        self._values = output[..., 2 * output.shape[-1] // 3:]

    def graph_features(self, crops: Tensor) -> Tensor:
        """Normalised windows -> L2-normalised value features (B, C, gh, gw) of the graph model."""
        if self.options.graph_features == "dino-values":
            patch = self.dino.patch_size
            gh, gw = crops.shape[-2] // patch, crops.shape[-1] // patch
            self.dino(crops)
            values = self._values[:, getattr(self.graph_model, "num_prefix_tokens", 1):]
        else:
            tokens, (gh, gw) = self.clip.tokens_before_last(crops)
            block = self.clip.visual.transformer.resblocks[-1]
            c = tokens.shape[-1]
            values = F.linear(block.ln_1(tokens), block.attn.in_proj_weight[2 * c:],
                              block.attn.in_proj_bias[2 * c:])[:, 1:]
        values = F.normalize(values.float(), dim=-1)
        return values.transpose(1, 2).reshape(crops.shape[0], -1, gh, gw)

    def _logits(self, image: Tensor, spec, text: Tensor, timer: Timer) -> tuple[Tensor, int]:
        h0, w0 = image.shape[-2:]
        opts = self.options
        with timer("preprocess"):
            size = protocol_size(h0, w0, spec.short_side, spec.max_long_side)
            raw = resize_image(image, size, spec.resize) if size != (h0, w0) else image.float()[None]
            x = self.clip.normalise(raw.to(self.device))[0]
        boxes = windows(*x.shape[-2:], spec.slide_config(self.clip.patch_size[0]))
        sizes = {(b.y2 - b.y1, b.x2 - b.x1) for b in boxes}
        if len(sizes) != 1:
            raise ValueError(f"LPOSS needs windows of one size, got {sorted(sizes)}")
        crops = torch.stack([x[:, b.y1:b.y2, b.x1:b.x2] for b in boxes])
        with timer("clip"):
            feats = self.clip(crops)
        with timer("graph"):
            nodes = self.graph_features(crops)
        with timer("propagation"):
            gh, gw = nodes.shape[-2:]
            if feats.shape[-2:] != (gh, gw):  # MaskCLIP features to the graph's grid, then renormalised
                feats = F.normalize(F.interpolate(feats, size=(gh, gw), mode="bilinear", align_corners=False), dim=1)
            seeds = torch.einsum("bdhw,qd->bhwq", feats.float(), text.float()).reshape(-1, text.shape[0])
            node_feats = nodes.permute(0, 2, 3, 1).reshape(-1, nodes.shape[1])
            patch = round(crops.shape[-2] / gh)
            centres = patch_centres([(b.y1, b.x1, gh, gw) for b in boxes], patch)
            w_norm = normalise_graph(knn_graph(node_feats, centres, k=opts.k, gamma=opts.gamma, sigma=opts.sigma,
                                               dist_pow=opts.dist_pow))
            scores = propagate(w_norm, seeds, alpha=opts.alpha, iters=opts.iters, tol=opts.tol, solver=opts.solver)
            scores = scores.reshape(len(boxes), gh, gw, -1).permute(0, 3, 1, 2)
            total = scores.new_zeros((scores.shape[1], *x.shape[-2:]))
            count = scores.new_zeros((1, *x.shape[-2:]))
            for b, s in zip(boxes, scores):
                total[:, b.y1:b.y2, b.x1:b.x2] += F.interpolate(s[None], size=(b.y2 - b.y1, b.x2 - b.x1),
                                                                mode="bilinear", align_corners=False)[0]
                count[:, b.y1:b.y2, b.x1:b.x2] += 1
            logits = total / count
            if opts.pixel_refine:
                h, w = logits.shape[-2:]
                w_pix = normalise_graph(pixel_graph(raw[0] / 255.0, radius=opts.radius, tau=opts.lab_tau))
                flat = logits.permute(1, 2, 0).reshape(h * w, -1)
                logits = propagate(w_pix, flat, alpha=opts.alpha, iters=opts.iters, tol=opts.tol,
                                   solver=opts.solver).reshape(h, w, -1).permute(2, 0, 1)
        with timer("postprocess"):
            logits = F.interpolate(logits[None].to(self.device), size=(h0, w0), mode="bilinear",
                                   align_corners=False)[0]
        return logits, len(boxes)


def build_lposs(name: str, spec, options: LPOSSOptions, env, random_fallback: bool):
    """MaskCLIP (the spec's CLIP, identity last block), the text queries, the graph model (DINO or none)."""
    import dataclasses

    from harness.errors import WeightsError

    from ..components.dino import build_dino
    from .dense import build_training_free

    fitted = build_training_free(name, spec, env, random_fallback)
    dense = fitted.segmenter
    weights = dict(fitted.weights)
    dino = None
    if options.graph_features == "dino-values":
        try:
            dino, info = build_dino(spec.dino_arch, spec.dino_weights, seed=env.seed)
            weights["dino"] = info.as_record()
        except WeightsError as exc:
            if not random_fallback:
                raise
            dino, info = build_dino(spec.dino_arch, "random", seed=env.seed)
            weights["dino"] = {**info.as_record(), "fallback": f"asked for {spec.dino_weights!r}: {exc}"}
    segmenter = LPOSSSegmenter(spec, dense.clip.visual, dense.text, dino, options).to(dense.device).eval()
    return dataclasses.replace(fitted, segmenter=segmenter, weights=weights)
