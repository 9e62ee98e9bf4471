"""The `talk2dino` plugin on tiny random models: windows, scores, PAMR and the bg_thresh channel composed as the
official slide inference does (written out here), options recorded and checked, the projection file named."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from harness.api import MethodEnv, Vocabulary
from harness.errors import ConfigError
from methods.components.pamr import pamr
from methods.components.talk2dino import background_clean, similarity_scores
from methods.pipelines.dense import protocol_size
from methods.plugins.talk2dino import TALK2DINO

TINY = {"clip_arch": "tiny-vit-p16", "clip_weights": "random", "dinov2_arch": "tiny-dinov2-reg-p14",
        "dinov2_weights": "random", "projection_weights": "random", "short_side": 56, "crop": 56, "stride": 28,
        "resize": "torch", "pamr_dilations": [1, 2]}
NAMES = ["background", "red disc", "blue square"]


def env(tmp_path):
    return MethodEnv(train_dataset="synthetic_coco", data_root=None, cache_dir=tmp_path, device="cpu",
                     progress=False, log=lambda *a: None)


def test_options_and_the_missing_projection(tmp_path):
    spec = TALK2DINO.resolve({})
    assert spec["image_model"] == "talk2dino"
    assert (spec["extra_options"]["bg_thresh"], spec["crop"], spec["stride"], spec["pamr_dilations"]) == (0.55, 448, 224,
                                                                                        [1, 2, 4, 8, 12, 24])
    assert any("vitb_mlp_infonce.pth" in p for p in TALK2DINO.preflight({"clip_weights": "random",
                                                                          "dinov2_weights": "random"}))
    for bad, key in (({"bg_thresh": 2}, "bg_thresh"), ({"bg_clean": "yes"}, "bg_clean"),
                     ({"text_templates": "imagenet"}, "text_templates")):
        with pytest.raises(ConfigError, match=key):
            TALK2DINO.resolve(bad)


@torch.no_grad()
def test_prediction_is_the_official_composition(tmp_path):
    fitted = TALK2DINO.build_untrained(TINY, env(tmp_path))
    seg = fitted.segmenter
    assert fitted.weights["projection"]["source"] == "random" and fitted.weights["dinov2"]["source"] == "random"
    image = torch.randint(0, 256, (3, 40, 60), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    vocab = Vocabulary(NAMES, dataset="miniworld_bg", background=0)
    scores = seg.predict(image, vocab)
    h, w = protocol_size(40, 60, 56, 2048)  # 56 x 84: windows at x = 0 and 28
    raw = F.interpolate(image.float()[None], size=(h, w), mode="bilinear")
    x = (raw - seg.pixel_mean) / seg.pixel_std
    text = seg.text(NAMES[1:])
    total, count = torch.zeros(2, h, w), torch.zeros(1, h, w)
    for x1 in (0, 28):
        patches, maps = seg.features(x[..., x1:x1 + 56])
        s = background_clean(similarity_scores(patches, text), patches, maps, text, 0.2)
        s = F.interpolate(s, size=(56, 56), mode="bilinear", align_corners=True)
        s = pamr(raw[..., x1:x1 + 56], s, 10, (1, 2))
        total[:, :, x1:x1 + 56] += s[0]
        count[:, :, x1:x1 + 56] += 1
    expected = F.interpolate((total / count)[None], size=(40, 60), mode="bilinear")[0]
    torch.testing.assert_close(scores[1:], expected, atol=1e-5, rtol=1e-4)
    assert torch.equal(scores[0], torch.full((40, 60), 0.55)) and seg.counts == {"windows": [2]}
    no_bg = seg.predict(image, Vocabulary(NAMES[1:], dataset="synthetic_coco"))
    torch.testing.assert_close(no_bg, expected, atol=1e-5, rtol=1e-4)  # without background: the classes only
