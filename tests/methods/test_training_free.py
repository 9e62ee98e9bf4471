"""The dense pipeline of the training-free plugins, end to end on tiny random CLIPs (and a tiny DINO)."""

from __future__ import annotations

import cv2
import pytest
import torch
import torch.nn.functional as F

from harness.api import MethodEnv, Segmenter, Vocabulary
from harness.errors import ConfigError
from harness.registries import METHODS
from methods.components.sliding import window_count
from methods.pipelines.dense import protocol_size

PLUGINS = ["clip", "maskclip", "sclip", "clearclip", "naclip", "proxyclip"]
TINY = {"clip_arch": "tiny-vit-p16", "clip_weights": "random", "short_side": 48, "crop": 32, "stride": 16,
        "dino_arch": "tiny-dino-p8", "dino_weights": "random", "pamr_dilations": [1, 2]}
NAMES = ["red disc", "blue square", "grass"]


def build(name, **options):
    env = MethodEnv(train_dataset="synthetic_coco", data_root=None, cache_dir=None, device="cpu",
                    progress=False, log=lambda *a: None)
    opts = {**TINY, **options}
    if name not in ("proxyclip",):
        opts = {k: v for k, v in opts.items() if not k.startswith("dino_")}
    return METHODS.get(name).fit(opts, env)


@pytest.mark.parametrize("name", PLUGINS)
def test_every_plugin_predicts_with_its_window_count(name):
    fitted = build(name)
    assert fitted.stages == {} and not fitted.spec.trains  # training-free: nothing to train, no stage
    assert fitted.weights["clip"]["source"] == "random"
    assert (fitted.weights.get("dino", {}).get("source") == "random") == (name == "proxyclip")
    image = torch.randint(0, 256, (3, 50, 70), dtype=torch.uint8)
    assert isinstance(fitted.segmenter, Segmenter)
    scores = fitted.segmenter.predict(image, Vocabulary(NAMES, dataset="synthetic_coco"))
    assert scores.shape == (3, 50, 70) and torch.isfinite(scores).all()
    assert torch.allclose(scores.sum(0), torch.ones(50, 70), atol=1e-4)  # probabilities, no background rule
    h, w = protocol_size(50, 70, 48, 2048)
    spec = fitted.spec
    expected = 1 if spec.mode == "whole" else window_count(h, spec.crop, spec.stride) * window_count(
        w, spec.crop, spec.stride)
    assert fitted.segmenter.counts == {"windows": [expected]}


@pytest.mark.parametrize("resize", ["cv2", "torch"])
def test_whole_image_prediction_by_hand(resize):
    fitted = build("maskclip", mode="whole", short_side=64, resize=resize)
    seg = fitted.segmenter
    image = torch.randint(0, 256, (3, 40, 56), dtype=torch.uint8)
    scores = seg.predict(image, Vocabulary(NAMES))
    h, w = protocol_size(40, 56, 64, 2048)  # 64 x 90
    assert (h, w) == (64, 90)
    if resize == "cv2":  # mmseg's Resize: cv2 on the uint8 image
        hwc = cv2.resize(image.permute(1, 2, 0).numpy().copy(), (w, h), interpolation=cv2.INTER_LINEAR)
        x = torch.from_numpy(hwc).permute(2, 0, 1)[None].float()
    else:
        x = F.interpolate(image.float()[None], size=(h, w), mode="bilinear", align_corners=False)
    feats = seg.clip(seg.clip.normalise(x))  # (1, D, 4, 5): 90 // 16 = 5 (the remainder is cut)
    text = seg.text(NAMES)
    logits = torch.einsum("bdhw,qd->bqhw", feats, text)
    logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
    logits = F.interpolate(logits, size=(40, 56), mode="bilinear", align_corners=False)
    torch.testing.assert_close(scores, torch.softmax(40 * logits[0], dim=0), atol=1e-5, rtol=1e-4)


def test_protocol_resize_matches_mmseg_keep_ratio():
    assert protocol_size(375, 500, 336, 2048) == (336, 448)  # VOC image
    assert protocol_size(1024, 2048, 560, 2048) == (560, 1120)  # Cityscapes at 560
    assert protocol_size(100, 5000, 336, 2048) == (41, 2048)  # long side capped


def test_threshold_without_background_is_refused_before_predicting():
    fitted = build("clip", prob_thd=0.1)
    image = torch.randint(0, 256, (3, 40, 40), dtype=torch.uint8)
    with pytest.raises(ConfigError, match="prob_thd=0.1 needs a background class, and miniworld has none"):
        fitted.segmenter.predict(image, Vocabulary(NAMES, dataset="miniworld"))


def test_per_dataset_settings_apply_by_name():
    spec = METHODS.get("sclip").spec({})
    assert (spec.tau, spec.prob_thd, spec.area_thd) == (40.0, 0.0, 0.0)
    voc = spec.for_dataset("voc_21")
    assert (voc.tau, voc.prob_thd, voc.area_thd) == (65.0, 0.1, 0.1)
    assert spec.for_dataset("cityscapes").short_side == 560
    assert METHODS.get("naclip").spec({}).for_dataset("voc_20").mode == "whole"
    clear = METHODS.get("clearclip").spec({})
    assert clear.slide_config(14).pad_to == 14 and clear.slide_config(16).pad_to == 16  # the CLIP's patch size
    assert METHODS.get("proxyclip").spec({}).slide_config(16).pad_to == 56
    with pytest.raises(ConfigError, match="only .* may change per dataset"):
        METHODS.get("sclip").spec({"per_dataset": {"voc_21": {"attention": "qq"}}})


def test_options_are_typed_and_checked():
    plugin = METHODS.get("naclip")
    with pytest.raises(ConfigError, match="unknown option.*'sigmaa'.*did you mean 'sigma'"):
        plugin.spec({"sigmaa": 3})
    with pytest.raises(ConfigError, match="attention='kq'"):
        plugin.spec({"attention": "kq"})
    with pytest.raises(ConfigError, match="short_side=.big. must be an integer"):
        plugin.spec({"short_side": "big"})
    with pytest.raises(ConfigError, match="residual: drop"):
        METHODS.get("proxyclip").spec({"residual": "keep"})
    assert plugin.resolve({})["source"].startswith("sinahmr/NACLIP @0cac3a6")


def test_autocast_runs_and_agrees_with_fp32():
    fitted = build("sclip")
    image = torch.randint(0, 256, (3, 40, 60), dtype=torch.uint8)
    ref = fitted.segmenter.predict(image, Vocabulary(NAMES))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = fitted.segmenter.predict(image, Vocabulary(NAMES))
    assert low.dtype == torch.float32 and torch.isfinite(low).all()
    assert (low - ref).abs().max() < 0.1


def test_background_threshold_applies_where_the_vocabulary_has_one():
    fitted = build("clip", prob_thd=0.9)  # most pixels of a random CLIP fall below 0.9: background
    image = torch.randint(0, 256, (3, 40, 40), dtype=torch.uint8)
    scores = fitted.segmenter.predict(image, Vocabulary(["background", *NAMES], dataset=None, background=0))
    labels = scores.argmax(0)
    probs_max = scores[1:].max(0).values
    assert (labels[probs_max < 0.9] == 0).all() and (labels == 0).any()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ["sclip", "naclip", "proxyclip"])
def test_cuda_fp32_matches_cpu_and_autocast_runs(name):
    cpu = build(name)
    image = torch.randint(0, 256, (3, 50, 70), dtype=torch.uint8)
    ref = cpu.segmenter.predict(image, Vocabulary(NAMES))
    gpu = cpu.segmenter.to("cuda")
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.predict(image, Vocabulary(NAMES)).cpu(), ref, atol=1e-3, rtol=1e-3)
    for dtype in (torch.float16, torch.bfloat16):
        with torch.autocast("cuda", dtype=dtype):
            low = gpu.predict(image, Vocabulary(NAMES)).cpu()
        assert torch.isfinite(low).all() and (low - ref).abs().max() < 0.1


def test_name_file_families_give_synonyms_and_background_words():
    from harness.data import get_info
    from harness.data.name_files import FAMILIES
    from methods.training_free_spec import NAME_FAMILIES

    assert set(NAME_FAMILIES) == set(FAMILIES)
    fitted = build("sclip", names="sclip")
    info = get_info("voc_21")
    vocab = Vocabulary(tuple(info.class_names), dataset="voc_21", background=0)
    queries = fitted.segmenter.queries(vocab, "sclip")
    assert queries.n_classes == 21 and queries.background == 0 and len(queries.queries) > 21
    person = info.class_names.index("person")
    assert {"person", "person in shirt"} <= {q for q, c in zip(queries.queries, queries.query_class) if c == person}
    assert {"sky", "wall", "fence"} <= {q for q, c in zip(queries.queries, queries.query_class) if c == 0}
    image = torch.randint(0, 256, (3, 40, 40), dtype=torch.uint8)
    scores = fitted.segmenter.predict(image, vocab)  # sclip's VOC-21 settings: tau 65, prob_thd, area_thd
    assert scores.shape == (21, 40, 40)
    plain = fitted.segmenter.queries(vocab, "plain")
    assert plain.queries == tuple(info.class_names)
    # a free class list (the demo's --classes) has no name file: its own names, one query each
    assert fitted.segmenter.queries(Vocabulary(("cat", "dog")), "sclip").queries == ("cat", "dog")
