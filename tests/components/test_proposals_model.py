"""The proposal network's structure (METHOD_SPEC 1), frozen BN, gradients, the detectron2 weight loader."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from harness.errors import ConfigError, WeightsError
from methods.components.proposals import (
    MaskFormer,
    MaskFormerConfig,
    ResNetBackbone,
    SetCriterion,
    class_logits,
    maskformer_param_groups,
    normalise_images,
    pad_to_divisible,
    sine_position_encoding,
    targets_from_semantic,
)


@pytest.fixture(scope="module")
def r101c() -> ResNetBackbone:
    return ResNetBackbone(MaskFormerConfig())


def test_r101c_is_detectron2_deeplab_resnet(r101c: ResNetBackbone) -> None:
    body = r101c.body
    stem_convs = [m for m in body.conv1 if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.stride[0]) for c in stem_convs] == [(3, 64, 2), (64, 64, 1), (64, 128, 1)]
    assert isinstance(body.maxpool, nn.MaxPool2d) and body.maxpool.stride == 2
    assert [len(getattr(body, f"layer{i}")) for i in range(1, 5)] == [3, 4, 23, 3]
    # stride on the 3x3 conv (STRIDE_IN_1X1 False) and multi-grid 1/2/4 on res5 at stride 32
    first = body.layer2[0]
    assert first.conv1.stride == (1, 1) and first.conv2.stride == (2, 2)
    assert [b.conv2.dilation[0] for b in body.layer4] == [1, 2, 4]
    assert [b.conv2.padding[0] for b in body.layer4] == [1, 2, 4]
    assert body.layer4[0].conv2.stride == (2, 2)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in body.modules())
    assert sum(isinstance(m, FrozenBatchNorm2d) for m in body.modules()) == 3 + 33 * 3 + 4  # stem, blocks, shortcuts
    assert r101c.out_channels == [256, 512, 1024, 2048] and r101c.strides == [4, 8, 16, 32]
    with torch.no_grad():
        feats = r101c(torch.randn(1, 3, 64, 96))
    assert [tuple(f.shape[-2:]) for f in feats] == [(16, 24), (8, 12), (4, 6), (2, 3)]


def test_smoke_forward_shapes_and_deep_supervision() -> None:
    cfg = MaskFormerConfig.smoke(dec_layers=3)
    model = MaskFormer(cfg).eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        out = model(x, aux_outputs=True)
        inference = model(x)
    assert out["pred_embeddings"].shape == (2, 10, 32)
    assert out["pred_masks"].shape == (2, 10, 16, 24)
    assert len(out["aux_outputs"]) == 2
    assert out["aux_outputs"][0]["pred_masks"].shape == (2, 10, 16, 24)
    assert model.weights_info == {"backbone": "scratch"}
    # Inference skips the earlier layers' outputs; the last layer's are the same numbers, bit for bit.
    assert inference["aux_outputs"] == []
    assert torch.equal(inference["pred_masks"], out["pred_masks"])
    assert torch.equal(inference["pred_embeddings"], out["pred_embeddings"])
    plain = MaskFormer(MaskFormerConfig.smoke(deep_supervision=False)).eval()
    with torch.no_grad():
        assert plain(torch.randn(1, 3, 64, 64), aux_outputs=True)["aux_outputs"] == []


def test_class_logits_are_100_cosine_with_void_last() -> None:
    g = torch.Generator().manual_seed(0)
    emb, text, void = torch.randn(2, 4, 8, generator=g), torch.randn(3, 8, generator=g), torch.randn(8, generator=g)
    logits = class_logits(emb, text, void).numpy()
    e, t, v = emb.numpy(), text.numpy(), void.numpy()
    for b in range(2):
        for q in range(4):
            for k, c in enumerate([*t, v]):
                cos = e[b, q] @ c / np.linalg.norm(e[b, q]) / np.linalg.norm(c)
                assert logits[b, q, k] == pytest.approx(100 * cos, abs=1e-4)


def test_sine_position_encoding_matches_formula() -> None:
    h, w, f = 3, 4, 6
    pos = sine_position_encoding(1, h, w, f)[0].numpy()
    for i in range(h):
        for j in range(w):
            y, x = (i + 1) / (h + 1e-6) * 2 * math.pi, (j + 1) / (w + 1e-6) * 2 * math.pi
            for c in range(f):
                freq = 10000 ** (2 * (c // 2) / f)
                trig = math.sin if c % 2 == 0 else math.cos
                assert pos[c, i, j] == pytest.approx(trig(y / freq), abs=1e-5)
                assert pos[f + c, i, j] == pytest.approx(trig(x / freq), abs=1e-5)


def test_normalise_and_pad() -> None:
    cfg = MaskFormerConfig.smoke()
    img = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1).expand(1, 3, 5, 7) + torch.tensor(
        [58.395, 0.0, 0.0]).view(1, 3, 1, 1)
    norm = normalise_images(img, cfg)
    assert torch.allclose(norm[0, :, 0, 0], torch.tensor([1.0, 0.0, 0.0]))
    padded = pad_to_divisible(norm, 32)
    assert padded.shape[-2:] == (32, 32) and padded[..., 5:, :].abs().sum() == 0


def _train_step_grads(model: MaskFormer) -> None:
    model.train()
    label = torch.zeros(64, 64, dtype=torch.int64)
    label[:, 32:] = 1
    targets = [targets_from_semantic(label)]
    text = torch.randn(2, model.cfg.embed_dim)
    out = model.add_class_logits(model(torch.randn(1, 3, 64, 64)), text)
    crit = SetCriterion(num_classes=2, num_aux=len(out["aux_outputs"]))
    crit.weighted_total(crit(out, targets)).backward()


# DETR's first layer self-attends over all-zero queries: every value is the v-bias (0 at init), so these
# weights see zero inputs, and norm1 normalises a vector that is constant over channels: zero gradient.
DEGENERATE_AT_INIT = {f"predictor.layers.0.{n}" for n in
                      ("self_attn.in_proj_weight", "self_attn.out_proj.weight", "norm1.weight")}


def test_gradients_reach_only_trainable_parts_and_frozen_bn_stays_frozen() -> None:
    torch.manual_seed(0)
    model = MaskFormer(MaskFormerConfig.smoke(freeze_at=2))
    frozen_bn = [m for m in model.modules() if isinstance(m, FrozenBatchNorm2d)]
    assert frozen_bn and all(len(list(m.parameters())) == 0 for m in frozen_bn)
    before = {k: v.clone() for k, v in model.backbone.body.state_dict().items()}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    _train_step_grads(model)
    opt.step()
    body = model.backbone.body
    frozen_names = {f"backbone.body.{n}" for n, _ in body.named_parameters()
                    if n.startswith(("conv1.", "bn1.", "layer1."))}
    for name, p in model.named_parameters():
        if name in frozen_names:
            assert not p.requires_grad and p.grad is None, name
        elif name in DEGENERATE_AT_INIT:
            assert p.grad is not None and p.grad.abs().sum() == 0, name
        else:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    after = model.backbone.body.state_dict()
    for key in before:
        changed = not torch.equal(before[key], after[key])
        is_bn_buffer = key.rsplit(".", 1)[-1] in ("running_mean", "running_var") or key in {
            f"{n}.{f}" for n, m in body.named_modules() if isinstance(m, FrozenBatchNorm2d) for f in ("weight", "bias")}
        if is_bn_buffer or key.startswith(("conv1.", "layer1.")):
            assert not changed, key
    assert not torch.equal(before["layer4.0.conv2.weight"], after["layer4.0.conv2.weight"])


def test_param_groups_follow_official_recipe() -> None:
    model = MaskFormer(MaskFormerConfig.smoke(freeze_at=1))
    groups = {g["name"]: g for g in maskformer_param_groups(model, lr=1e-4, weight_decay=1e-4)}
    assert groups["backbone.body.layer1.0.conv1.weight"]["lr"] == pytest.approx(1e-5)
    assert "backbone.body.conv1.0.weight" not in groups  # frozen stem
    assert groups["predictor.query_embed.weight"]["weight_decay"] == 0.0
    assert groups["pixel_decoder.outputs.0.1.weight"]["weight_decay"] == 0.0  # GroupNorm
    assert groups["predictor.input_proj.weight"] == {**groups["predictor.input_proj.weight"], "lr": 1e-4,
                                                     "weight_decay": 1e-4}
    n_trainable = sum(p.requires_grad for p in model.parameters())
    assert len(groups) == n_trainable


def test_config_errors_are_actionable() -> None:
    with pytest.raises(ConfigError, match="timm ResNet name"):
        ResNetBackbone(MaskFormerConfig.smoke(backbone="no_such_resnet"))
    with pytest.raises(ConfigError, match="one dilation per block"):
        ResNetBackbone(MaskFormerConfig.smoke(multi_grid=(1, 2, 4)))
    with pytest.raises(ConfigError, match="divisible by nheads"):
        MaskFormerConfig.smoke(nheads=5)


# --- detectron2 pickle loader -------------------------------------------------------------------------------

def _timm_to_detectron2(name: str) -> str:
    """Independent inverse of the loader's renaming (detectron2 DeepLab ResNet names)."""
    stem = {"conv1.0": "stem.conv1", "conv1.1": "stem.conv1.norm", "conv1.3": "stem.conv2",
            "conv1.4": "stem.conv2.norm", "conv1.6": "stem.conv3", "bn1": "stem.conv3.norm"}
    module, field = name.rsplit(".", 1)
    if module in stem:
        return f"{stem[module]}.{field}"
    parts = module.split(".")
    stage, block, rest = int(parts[0][-1]) + 1, parts[1], ".".join(parts[2:])
    rest = {"downsample.0": "shortcut", "downsample.1": "shortcut.norm"}.get(rest, rest)
    for i in (1, 2, 3):
        rest = rest.replace(f"bn{i}", f"conv{i}.norm")
    return f"res{stage}.{block}.{rest}.{field}"


TINY_C = dict(backbone="resnet50c", stem_width=4, channels=(4, 4, 4, 4))


def _write_d2_pickle(tmp_path, state, wrap=True):
    arrays = {_timm_to_detectron2(k): v.numpy() for k, v in state.items()}
    arrays["linear.weight"] = np.zeros((10, 16), dtype=np.float32)  # classifier: ignored
    path = tmp_path / "R-tiny.pkl"
    with path.open("wb") as f:
        pickle.dump({"model": arrays, "__author__": "test"} if wrap else arrays, f)
    return path


def test_detectron2_pickle_loads_every_trunk_tensor(tmp_path) -> None:
    torch.manual_seed(1)
    source = ResNetBackbone(MaskFormerConfig.smoke(**TINY_C, multi_grid=(1, 2, 4)))
    state = {k: torch.randn_like(v) for k, v in source.body.state_dict().items()}
    path = _write_d2_pickle(tmp_path, state)
    model = MaskFormer(MaskFormerConfig.smoke(**TINY_C, multi_grid=(1, 2, 4), pretrained_backbone=str(path)))
    loaded = model.backbone.body.state_dict()
    assert set(loaded) == set(state)
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    assert model.weights_info["backbone"] == str(path) and len(model.weights_info["backbone_sha256"]) == 64


def test_detectron2_pickle_mismatches_are_weights_errors(tmp_path) -> None:
    source = ResNetBackbone(MaskFormerConfig.smoke(**TINY_C, multi_grid=(1, 2, 4)))
    state = dict(source.body.state_dict())
    state.pop("layer3.1.conv2.weight")
    path = _write_d2_pickle(tmp_path, state, wrap=False)
    with pytest.raises(WeightsError, match="missing: layer3.1.conv2.weight"):
        MaskFormer(MaskFormerConfig.smoke(**TINY_C, multi_grid=(1, 2, 4), pretrained_backbone=str(path)))
    with pytest.raises(WeightsError, match="wrong shape"):
        MaskFormer(MaskFormerConfig.smoke(backbone="resnet50c", stem_width=8, channels=(4, 4, 4, 4),
                                          multi_grid=(1, 2, 4), pretrained_backbone=str(path)))
    with pytest.raises(WeightsError, match="R-103.pkl"):
        MaskFormer(MaskFormerConfig.smoke(pretrained_backbone=str(tmp_path / "absent.pkl")))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_forward_and_losses_under_cpu_autocast(dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    model = MaskFormer(MaskFormerConfig.smoke()).eval()
    images = torch.randn(1, 3, 64, 64)
    label = torch.zeros(64, 64, dtype=torch.int64)
    label[20:, :30] = 1
    targets = [targets_from_semantic(label)]
    text = torch.randn(2, model.cfg.embed_dim)
    crit = SetCriterion(num_classes=2, num_aux=model.cfg.dec_layers - 1)
    with torch.no_grad():
        ref = model.add_class_logits(model(images), text)
        ref_loss = crit.weighted_total(crit(ref, targets))
        with torch.autocast("cpu", dtype=dtype):
            out = model.add_class_logits(model(images), text)
            loss = crit.weighted_total(crit(out, targets))
    assert out["pred_masks"].dtype == dtype  # the autocast region really ran in low precision
    assert torch.allclose(out["pred_masks"].float(), ref["pred_masks"], atol=0.1, rtol=0.05)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert loss.item() == pytest.approx(ref_loss.item(), rel=0.05)


@pytest.mark.parametrize("backbone_cfg", [
    MaskFormerConfig.smoke(),  # resnet10t: deep stem, avg-pool downsample
    MaskFormerConfig(),  # the paper's R101c (deep stem, multi-grid res5)
])
def test_folding_frozen_bn_keeps_the_trunk_function(backbone_cfg) -> None:
    """Every FrozenBN folded into its conv: same features up to float rounding, no BN left, each one counted.
    Non-trivial BN statistics, so that a BN folded into the wrong conv (or left out) shows."""
    from methods.components.proposals import ResNetBackbone, fold_frozen_batch_norm

    torch.manual_seed(0)
    trunk = ResNetBackbone(backbone_cfg).eval()
    bns = [m for m in trunk.modules() if isinstance(m, FrozenBatchNorm2d)]
    for bn in bns:
        bn.weight.uniform_(0.5, 1.5), bn.bias.normal_(0, 0.2)
        bn.running_mean.normal_(0, 0.2), bn.running_var.uniform_(0.5, 2.0)
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        before = trunk(x)
        assert fold_frozen_batch_norm(trunk.body) == len(bns) > 0
        after = trunk(x)
    assert not any(isinstance(m, FrozenBatchNorm2d) for m in trunk.modules())
    for b, a in zip(before, after):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * float(b.abs().max()))
    assert fold_frozen_batch_norm(trunk.body) == 0  # nothing left to fold: preparing twice is harmless


def test_folding_refuses_a_frozen_bn_it_cannot_pair() -> None:
    """A BN with no convolution before it (here first in a Sequential) is named, with the way out."""
    from methods.components.proposals import fold_frozen_batch_norm

    odd = nn.Sequential(FrozenBatchNorm2d(4), nn.Conv2d(4, 4, 1))
    with pytest.raises(ValueError, match=r"Sequential\.0 .*fold_norms: false"):
        fold_frozen_batch_norm(odd)
