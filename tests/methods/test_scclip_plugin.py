"""The `scclip` plugin on a tiny random CLIP: options recorded and range-checked, its windows are SC-CLIP's
encoder, and it predicts through the dense pipeline."""

from __future__ import annotations

import pytest
import torch

from harness.api import MethodEnv, Vocabulary
from harness.errors import ConfigError
from methods.components.scclip import SCCLIPEncoder, SCCLIPLayers
from methods.plugins.scclip import SCCLIP

TINY = {"clip_arch": "tiny-vit-p16", "clip_weights": "random", "short_side": 64, "crop": 64, "stride": 32,
        "pre_layer": 2, "post_layer": 1, "multi_start_layer": 1, "multi_end_layer": 2, "lof_k": 8}
NAMES = ["red disc", "blue square", "grass"]


def env(tmp_path):
    return MethodEnv(train_dataset="synthetic_coco", data_root=None, cache_dir=tmp_path, device="cpu",
                     progress=False, log=lambda *a: None)


def test_options_are_recorded_and_checked():
    spec = SCCLIP.resolve(TINY)
    part = spec["extra_options"]  # the scclip image model's options, resolved
    assert spec["image_model"] == "scclip" and part["pre_layer"] == 2 and part["res_cls"] == 0.3
    assert spec["per_dataset"]["voc_21"] == {"tau": 50.0, "prob_thd": 0.15, "area_thd": 0.1}
    assert (spec["pos_interp"], spec["resize"]) == ("scale-factor", "cv2")
    for bad, key in (({"pre_layer": 2}, "go together"), ({"agg_beta": 1.5}, "agg_beta"), ({"lof": "iforest"}, "lof"),
                     ({"lof_k": 0}, "lof_k"), ({"pre_layr": 1}, "did you mean 'pre_layer'")):
        with pytest.raises(ConfigError, match=key):
            SCCLIP.resolve({**{k: v for k, v in TINY.items() if not k.endswith("layer")}, **bad})


def test_a_shallow_clip_needs_explicit_indices(tmp_path):
    options = {k: v for k, v in TINY.items() if not k.endswith("layer")}
    with pytest.raises(ConfigError, match="pre_layer, post_layer, multi_start_layer and multi_end_layer"):
        SCCLIP.build_untrained(options, env(tmp_path))


@torch.no_grad()
def test_windows_are_scclip_and_prediction_runs(tmp_path):
    fitted = SCCLIP.build_untrained(TINY, env(tmp_path))
    seg = fitted.segmenter
    x = torch.randn(2, 3, 64, 80, generator=torch.Generator().manual_seed(0))
    direct = SCCLIPEncoder(seg.clip.encoder.visual, SCCLIPLayers(2, 1, 1, 2), lof_k=8)
    torch.testing.assert_close(seg.clip(x), direct(x))
    image = torch.randint(0, 256, (3, 50, 70), dtype=torch.uint8)
    scores = seg.predict(image, Vocabulary(NAMES, dataset="synthetic_coco"))
    assert scores.shape == (3, 50, 70) and torch.isfinite(scores).all()
    assert seg.counts == {"windows": [2]} and fitted.weights["clip"]["source"] == "random"
