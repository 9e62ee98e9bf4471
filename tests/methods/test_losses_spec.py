import numpy as np
import pytest
import torch

from harness.errors import ConfigError
from harness.registries import METHODS
from methods.components.losses import deop_segmentation_loss
from methods.spec import MethodSpec


def _reference_loss(logits, mask_logits, labels, sigma=3.0):
    """METHOD_SPEC 7 written out in float64 numpy, pixel by pixel where it matters."""
    logits, mask_logits, labels = (t.double().numpy() if t.is_floating_point() else t.numpy()
                                   for t in (logits, mask_logits, labels))
    b, q, k1 = logits.shape
    h, w = labels.shape[1:]
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    m = 1 / (1 + np.exp(-mask_logits))  # masks are already at label size in this test
    s = np.einsum("bqc,bqhw->bchw", p, m)
    s = 1 / (1 + np.exp(-(sigma * s - sigma)))
    t = np.zeros((b, k1, h, w))
    for i in range(b):
        for y in range(h):
            for x in range(w):
                c = labels[i, y, x]
                t[i, k1 - 1 if c == 255 else c, y, x] = 1
    pc = np.clip(s, 1e-4, 1 - 1e-4)
    focal = np.mean(-0.25 * (1 - pc) ** 2 * np.log(pc) * t - 0.75 * pc ** 2 * np.log(1 - pc) * (1 - t))
    dice = []
    for i in range(b):
        si, ti = s[i, :-1].ravel(), t[i, :-1].ravel()
        dice.append(1 - (2 * (si * ti).sum() + 1) / (si.sum() + ti.sum() + 1))
    return focal, float(np.mean(dice))


def test_deop_loss_matches_the_official_formula():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 4, generator=g) * 3
    mask_logits = torch.randn(2, 5, 6, 7, generator=g) * 2
    labels = torch.randint(0, 3, (2, 6, 7), generator=g)
    labels[0, :2] = 255  # ignore pixels are positives of the void channel
    out = deop_segmentation_loss(logits, mask_logits, labels, focal_weight=2.0, dice_weight=0.8)
    focal, dice = _reference_loss(logits, mask_logits, labels)
    assert out["loss_focal"].item() == pytest.approx(2.0 * focal, rel=1e-5)
    assert out["loss_dice"].item() == pytest.approx(0.8 * dice, rel=1e-5)


def test_deop_loss_rejects_labels_outside_the_classes():
    with pytest.raises(ValueError, match="outside"):
        deop_segmentation_loss(torch.zeros(1, 2, 3), torch.zeros(1, 2, 4, 4), torch.full((1, 4, 4), 7))


def test_plugins_resolve_to_their_paper_definitions():
    spec = {name: METHODS.get(name).spec({}) for name in
            ("baseline", "baseline+", "baseline+ps", "baseline+cal", "deop", "simbaseline")}
    assert spec["baseline"].text_prompt == "offline" and not spec["baseline"].trains_head
    assert spec["baseline+"].visual_prompt == "add" and spec["baseline+"].text_prompt == "learnable"
    assert spec["baseline+ps"].ps == "gps" and spec["baseline+ps"].alpha == (1.0,)
    assert spec["baseline+cal"].cal == "query" and spec["baseline+cal"].cal_layers == 1
    assert spec["deop"].ps == "coverage" and spec["deop"].cal == "query"  # the released rule by default
    assert METHODS.get("deop").spec({"ps": "gps"}).alpha == (1.0,)  # the paper's GPS alpha = 1 as an option
    assert spec["simbaseline"].kind == "multi-pass" and spec["simbaseline"].test_short_side == 640
    assert spec["simbaseline"].lam("voc_20") == 0.7 and spec["simbaseline"].lam("coco_stuff_171") == 0.8


def test_bad_options_name_the_choices():
    with pytest.raises(ConfigError, match=r"unknown option\(s\) 'alpah' \(did you mean 'alpha'\?\)"):
        METHODS.get("deop").resolve({"alpah": 1})
    with pytest.raises(ConfigError, match="ps='gsp' is not one of none, gps, coverage, mps"):
        METHODS.get("deop").resolve({"ps": "gsp"})
    with pytest.raises(ConfigError, match=r"alpha=\[1.5\] must list"):
        METHODS.get("baseline+ps").resolve({"alpha": [1.5]})
    with pytest.raises(ConfigError, match="multi-pass"):
        METHODS.get("simbaseline").resolve({"cal": "query"})
    with pytest.raises(ConfigError, match="crop_chunk=0 must be >= 1"):
        METHODS.get("simbaseline").resolve({"crop_chunk": 0})
    for bad in ("abc", 2.5, True):  # an optional field is checked against its annotation (int | None)
        with pytest.raises(ConfigError, match=f"option crop_chunk={bad!r} must be an integer or null"):
            METHODS.get("simbaseline").resolve({"crop_chunk": bad})
    assert METHODS.get("simbaseline").resolve({"crop_chunk": None})["crop_chunk"] is None
    assert METHODS.get("baseline+ps").resolve({"alpha": [1, 0.5]})["alpha"] == (1.0, 0.5)


def test_spec_round_trips_through_its_dict():
    spec = METHODS.get("deop").spec({"proposals": {"preset": "smoke"}})
    assert MethodSpec(**{**spec.as_dict(), "alpha": tuple(spec.alpha),
                         "prompt_layers": tuple(spec.prompt_layers)}) == spec
