"""Issue 23's methods as parts of the training-free spec: the ``image-model`` and ``coupling`` kinds (selected by
``image_model`` / ``coupling``, their options the parts' fields, resolved into the record's ``extra_options``),
the coupling hook that gets every window of an image at once, and the background lineage in the settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch

from harness.api import MethodEnv
from harness.errors import ConfigError
from harness.parts import find_part, part_table, register_part
from harness.registries import METHODS
from methods.components.sliding import slide_logits, windows
from methods.components.window_coupling import ImageWindows, IndependentWindows, WindowCoupling
from methods.training_free import TrainingFreePlugin

TINY = {"clip_arch": "tiny-vit-p16", "clip_weights": "random", "short_side": 64, "crop": 32, "stride": 16,
        "resize": "torch"}
NAMES = ["red disc", "blue square", "grass"]


def env(tmp_path):
    return MethodEnv(train_dataset="synthetic_coco", data_root=None, cache_dir=tmp_path, device="cpu",
                     progress=False, log=lambda *a: None)


@register_part
@dataclass(frozen=True)
class FirstWindowOnly(WindowCoupling):
    """A coupling written as an outside author would: every pixel gets the logits of the first window's mean
    feature (a nonsense method whose output is easy to write out)."""

    name: ClassVar[str] = "test-first-window"
    description: ClassVar[str] = "test double: the first window's mean feature everywhere"

    def combine(self, w: ImageWindows, timer):
        boxes = windows(*w.image.shape[-2:], w.slide)
        crops = torch.stack([w.image[:, b.y1:b.y2, b.x1:b.x2] for b in boxes])
        first = w.features(crops)[0].mean((1, 2))
        return (w.text @ first)[:, None, None].expand(-1, *w.image.shape[-2:]).clone(), len(boxes)


def test_the_parts_are_selected_by_option_and_listed():
    assert find_part("coupling", "label-propagation").kind == "coupling"
    assert {"last-block", "scclip", "talk2dino"} <= set(part_table("image-model"))
    assert {"independent", "label-propagation"} <= set(part_table("coupling"))
    spec = METHODS.get("lposs").spec({})
    assert spec.coupling_part().graph_sigma == 0.01 and spec.sigma == 5.0  # LPOSS's sigma is not NACLIP's
    assert METHODS.get("lposs").spec({"graph_sigma": 0.07}).coupling_part().graph_sigma == 0.07
    with pytest.raises(ConfigError, match=r"lposs.*coupling 'label-propagation'.*graph_sigma"):
        METHODS.get("lposs").resolve({"graph_sigma": -1.0})
    with pytest.raises(ConfigError, match="k_nn"):  # an option of no selected part
        METHODS.get("lposs").resolve({"k_nn": 3})
    with pytest.raises(ConfigError, match="'k'"):  # the coupling's option, refused where it is not selected
        METHODS.get("maskclip").resolve({"k": 3})
    # defaults stay out of the record: the methods of before issue 23 keep their records' form
    assert "coupling" not in METHODS.get("naclip").resolve({}) and "image_model" not in METHODS.get("naclip").resolve({})


def test_a_new_coupling_sees_every_window_without_a_pipeline_change(tmp_path):
    plugin = TrainingFreePlugin("test-first-window-clip", "test", coupling="test-first-window", attention="identity",
                                residual="drop", ffn="drop", **TINY)
    seg = plugin.build_untrained({}, env(tmp_path)).segmenter
    image = torch.randint(0, 256, (3, 40, 56), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    text = seg.text(NAMES).float()
    logits, n = seg._logits(image, seg.spec, text, lambda _: torch.no_grad())
    x = seg.clip.normalise(torch.nn.functional.interpolate(image.float()[None], size=(64, 90), mode="bilinear"))[0]
    first = seg.clip(x[None, :, :32, :32])[0].mean((1, 2))
    assert n == 15 and logits.shape == (3, 40, 56)
    torch.testing.assert_close(logits[:, 0, 0], text @ first, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(logits, logits[:, :1, :1].expand_as(logits))


def test_the_independent_coupling_is_the_slide_inference():
    x = torch.randn(3, 48, 80, generator=torch.Generator().manual_seed(1))
    text = torch.randn(4, 6)
    slide = METHODS.get("maskclip").spec({"crop": 32, "stride": 16}).slide_config(16)

    def fn(crops):  # a window "model": per-pixel linear map of the crop, at the window's size
        return torch.einsum("bchw,qc->bqhw", crops, text[:, :3])

    w = ImageWindows(x, x[None], text, slide, fn, features=lambda c: c)
    got, n = IndependentWindows().combine(w, lambda _: torch.no_grad())
    expected, m = slide_logits(x, fn, slide)
    assert n == m == 2 * 4  # rows (48 - 32) / 16 + 1, columns (80 - 32) / 16 + 1
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_background_lineage_and_preflight():
    settings = {name: METHODS.get(name).benchmark_settings({}, "voc_21")["background_decision"]
                for name in ("sclip", "lposs", "talk2dino")}
    assert settings == {"sclip": "prob_thd", "lposs": "background queries", "talk2dino": "bg_thresh"}
    assert "background_decision" not in METHODS.get("sclip").benchmark_settings({}, "coco_stuff_171")
    problems = METHODS.get("lposs").preflight({"clip_weights": "random", "dino_weights": "/nonexistent/dino.pth"})
    assert any("dino.pth" in p for p in problems)
    problems = METHODS.get("lposs").preflight({"clip_weights": "random", "dino_weights": "/nonexistent/dino.pth",
                                               "graph_features": "clip-values"})
    assert not any("dino.pth" in p for p in problems)  # the stand-in needs no DINO


def test_the_record_resolves_to_itself_with_the_parts_options():
    record = METHODS.get("lposs+").resolve({"k": 9})
    assert record["extra_options"]["k"] == 9 and record["extra_options"]["pixel_refine"] is True
    assert METHODS.get("lposs+").resolve(record) == record
