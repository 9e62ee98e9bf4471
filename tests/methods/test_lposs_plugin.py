"""The `lposs` / `lposs+` plugins on a tiny random CLIP and DINO: the joint-window logits are the components
composed as lposs_eval.slide_inference does (written out here), windows are coupled through the graph, the
CLIP-values stand-in takes the last block's value projection, and options are recorded and checked."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from harness.api import MethodEnv, Vocabulary
from harness.errors import ConfigError
from methods.components.label_propagation import knn_graph, normalise_graph, patch_centres, propagate
from methods.components.sliding import windows
from methods.pipelines.dense import protocol_size
from methods.plugins.lposs import LPOSS, LPOSS_PLUS

TINY = {"clip_arch": "tiny-vit-p16", "clip_weights": "random", "dino_arch": "tiny-dino-p8", "dino_weights": "random",
        "short_side": 64, "crop": 32, "stride": 16, "k": 12, "resize": "torch"}
NAMES = ["red disc", "blue square", "grass"]


def env(tmp_path):
    return MethodEnv(train_dataset="synthetic_coco", data_root=None, cache_dir=tmp_path, device="cpu",
                     progress=False, log=lambda *a: None)


def test_options_recorded_and_checked():
    spec = LPOSS.resolve({})
    part = spec["extra_options"]  # the label-propagation coupling's options, resolved
    assert (spec["coupling"], spec["clip_weights"], part["k"], part["alpha"], part["pixel_refine"]) == (
        "label-propagation", "laion2b_s34b_b88k", 400, 0.95, False)
    assert LPOSS_PLUS.resolve({})["extra_options"]["pixel_refine"] is True and spec["pos_interp"] == "size"
    for bad, key in (({"k": 0}, "k"), ({"alpha": 1.0}, "alpha"), ({"solver": "cupy"}, "solver"),
                     ({"graph_features": "dinov2"}, "graph_features"), ({"pixel_refine": 1}, "pixel_refine")):
        with pytest.raises(ConfigError, match=key):
            LPOSS.resolve(bad)


@torch.no_grad()
def test_joint_window_logits_are_the_components_composed(tmp_path):
    fitted = LPOSS.build_untrained(TINY, env(tmp_path))
    seg = fitted.segmenter
    assert fitted.weights["dino"]["source"] == "random"
    image = torch.randint(0, 256, (3, 40, 56), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    vocab = Vocabulary(NAMES, dataset="synthetic_coco")
    text = seg.text(NAMES).float()
    logits, n = seg._logits(image, seg.spec, text, lambda _: torch.no_grad())
    # written out: resize, windows, MaskCLIP seeds on the DINO grid, one graph over all windows, CG, average
    h, w = protocol_size(40, 56, 64, 2048)
    x = seg.clip.normalise(F.interpolate(image.float()[None], size=(h, w), mode="bilinear"))[0]
    boxes = windows(h, w, seg.spec.slide_config(16))
    crops = torch.stack([x[:, b.y1:b.y2, b.x1:b.x2] for b in boxes])
    feats = F.normalize(F.interpolate(seg.clip(crops), size=(4, 4), mode="bilinear"), dim=1)  # p16 -> p8 grid
    seeds = torch.einsum("bdhw,qd->bhwq", feats, text).reshape(-1, 3)
    nodes = seg.graph(crops).permute(0, 2, 3, 1).reshape(-1, 32)
    graph = normalise_graph(knn_graph(nodes, patch_centres([(b.y1, b.x1, 4, 4) for b in boxes], 8), k=12,
                                      gamma=3.0, sigma=0.01))
    out = propagate(graph, seeds, alpha=0.95, iters=10).reshape(len(boxes), 4, 4, 3).permute(0, 3, 1, 2)
    total, count = torch.zeros(3, h, w), torch.zeros(1, h, w)
    for b, s in zip(boxes, out):
        total[:, b.y1:b.y2, b.x1:b.x2] += F.interpolate(s[None], size=(32, 32), mode="bilinear")[0]
        count[:, b.y1:b.y2, b.x1:b.x2] += 1
    expected = F.interpolate((total / count)[None], size=(40, 56), mode="bilinear")[0]
    assert n == len(boxes) == 15  # 64 x 90: 3 x 5 windows of 32 every 16
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-4)
    scores = seg.predict(image, vocab)
    assert scores.shape == (3, 40, 56) and torch.isfinite(scores).all()


@torch.no_grad()
def test_windows_are_coupled_through_the_graph(tmp_path):
    """Changing pixels seen only by the first window moves the scores where only the last window looks: in the
    dense pipeline windows never see each other, here they share one graph."""
    seg = LPOSS.build_untrained({**TINY, "k": 40}, env(tmp_path)).segmenter
    text = seg.text(NAMES).float()
    image = torch.randint(0, 256, (3, 64, 96), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    changed = image.clone()
    changed[:, :16, :16] = 255 - changed[:, :16, :16]  # inside window (0, 0) only
    a, _ = seg._logits(image, seg.spec, text, lambda _: torch.no_grad())
    b, _ = seg._logits(changed, seg.spec, text, lambda _: torch.no_grad())
    assert (a[:, 40:, 80:] - b[:, 40:, 80:]).abs().max() > 1e-6


@torch.no_grad()
def test_clip_values_stand_in_and_lposs_plus(tmp_path):
    seg = LPOSS_PLUS.build_untrained({**TINY, "graph_features": "clip-values", "radius": 2}, env(tmp_path)).segmenter
    crops = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    tokens, grid = seg.clip.tokens_before_last(crops)
    block = seg.clip.visual.transformer.resblocks[-1]
    c = tokens.shape[-1]
    v = block.ln_1(tokens) @ block.attn.in_proj_weight[2 * c:].T + block.attn.in_proj_bias[2 * c:]
    expected = F.normalize(v[:, 1:], dim=-1).transpose(1, 2).reshape(2, c, *grid)
    torch.testing.assert_close(seg.graph(crops), expected)
    image = torch.randint(0, 256, (3, 40, 56), generator=torch.Generator().manual_seed(3), dtype=torch.uint8)
    scores = seg.predict(image, Vocabulary(NAMES, dataset="synthetic_coco"))
    assert scores.shape == (3, 40, 56) and torch.isfinite(scores).all() and seg.dino is None and seg.graph.dino_model is None
