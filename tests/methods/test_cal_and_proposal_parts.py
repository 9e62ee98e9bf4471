"""The CAL head and the proposal source as parts (methods/components/cal_heads.py, proposal_sources.py): listed with
their options, selected by the DeOP family's old option names, errors naming the method, the part and the field,
the same modules (and so the same numbers) as before, and an out-of-tree head whose own option passes through."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch

from harness.api import MethodEnv
from harness.errors import ConfigError
from harness.parts import option, part_table, register_part
from harness.registries import METHODS
from methods.components.anchors import ConvHeatmapDecoder, QueryHeatmapDecoder
from methods.components.cal_heads import CAL_HEADS, ConvCAL, NoCAL, QueryCAL
from methods.components.proposal_sources import PROPOSAL_SOURCES, MaskFormerProposals
from methods.components.proposals.config import MaskFormerConfig
from methods.plugin import Plugin

TINY = {"clip_arch": "tiny-vit-p16", "clip_weights": "random", "proposals": {"preset": "smoke"}}


def test_the_heads_and_the_source_are_listed_with_their_options(capsys):
    from harness.commands.list import print_parts

    print_parts(None)
    out = capsys.readouterr().out
    assert "  cal:\n    none " in out and "\n    query " in out and "\n    conv " in out
    assert "cal_layers: an integer = 1" in out and "(>= 0; <= 64)" in out
    assert "cal_dropout: a number = 0.1" in out and "conv_variant: a string = 'paper'" in out
    assert "  proposals:\n    maskformer " in out and "proposals: a mapping = {}" in out
    assert list(CAL_HEADS)[:3] == ["none", "query", "conv"] and "maskformer" in PROPOSAL_SOURCES


def test_the_deop_family_selects_them_by_its_old_option_names():
    spec = METHODS.get("deop").spec({"cal_layers": 2, "cal_dropout": 0.0, **TINY})
    assert spec.build_part("cal") == QueryCAL(cal_layers=2, cal_dropout=0.0)
    assert spec.build_part("proposal_source") == MaskFormerProposals(proposals={"preset": "smoke"})
    conv = METHODS.get("deop").spec({"cal": "conv", "conv_variant": "released"})
    assert conv.build_part("cal") == ConvCAL(cal_layers=1, conv_variant="released")
    assert METHODS.get("baseline").spec({}).build_part("cal") == NoCAL()
    # the records keep their form: no new key at the defaults (committed references load unchanged)
    record = METHODS.get("deop").resolve({})
    assert "proposal_source" not in record and {"cal", "cal_layers", "cal_dropout", "conv_variant",
                                                "proposals"} <= set(record)
    assert METHODS.get("deop").spec(record).as_dict() == record


def test_bad_options_name_the_method_the_part_and_the_field():
    deop = METHODS.get("deop")
    with pytest.raises(ConfigError, match=r"method 'deop': part cal 'query': option cal_dropout=2.0 must be <= 1"):
        deop.spec({"cal_dropout": 2})
    with pytest.raises(ConfigError, match=r"method 'deop': part cal: option cal_layers=-1 must be >= 0"):
        deop.spec({"cal_layers": -1})
    with pytest.raises(ConfigError, match=r"method 'deop': part cal 'conv': option conv_variant='x' is not one of"):
        deop.spec({"cal": "conv", "conv_variant": "x"})
    with pytest.raises(ConfigError, match=r"method 'deop': option cal='qeury' is not one of none, query, conv"):
        deop.spec({"cal": "qeury"})
    with pytest.raises(ConfigError, match=r"method 'deop': part proposals 'maskformer': option "
                                          r"proposals.backbone=3 must be str"):
        deop.spec({"proposals": {"backbone": 3}})
    with pytest.raises(ConfigError, match=r"method 'simbaseline': .*proposal_source='detr' is not one of maskformer"):
        METHODS.get("simbaseline").spec({"proposal_source": "detr"})


def test_the_parts_build_the_modules_the_pipeline_built_before():
    """Same classes, same arguments, same initialisation from the same seed: the numbers cannot move."""
    for part, direct in ((QueryCAL(cal_layers=2, cal_dropout=0.0),
                          lambda: QueryHeatmapDecoder(d_model=32, nheads=8, dim_ff=64, num_layers=2, num_queries=10,
                                                      dropout=0.0)),
                         (ConvCAL(cal_layers=2), lambda: ConvHeatmapDecoder(d=32, num_layers=2, variant="paper"))):
        torch.manual_seed(0)
        built = part.build(32, 10)
        torch.manual_seed(0)
        expected = direct()
        assert type(built) is type(expected)
        for (name, a), (_, b) in zip(built.state_dict().items(), expected.state_dict().items(), strict=True):
            assert torch.equal(a, b), name
    assert NoCAL().build(32, 10) is None
    network = MaskFormerProposals(proposals={"preset": "smoke", "num_queries": 7}).build(embed_dim=24)
    assert network.cfg == MaskFormerConfig.smoke(num_queries=7, embed_dim=24)
    # the proposal stage's key holds what it held before the source was a part
    assert MaskFormerProposals(proposals={"preset": "smoke"}).identity() == {"maskformer": {"preset": "smoke"}}


@register_part
@dataclass(frozen=True)
class ScaledQueryCAL(QueryCAL):
    """An out-of-tree head: the query decoder with its pooled embeddings scaled (a nonsense option, easy to see)."""

    name: ClassVar[str] = "test-scaled-query"
    description: ClassVar[str] = "test double: query-based CAL with pooled embeddings times `head_scale`"
    head_scale: float = option(1.0, "factor on the pooled embeddings", low=0.0, low_open=True, high=10.0)

    def build(self, dim, num_queries):
        return ScaledHead(super().build(dim, num_queries), self.head_scale)


class ScaledHead(torch.nn.Module):
    def __init__(self, head: torch.nn.Module, scale: float) -> None:
        super().__init__()
        self.head, self.scale = head, scale

    def forward(self, features, masks):
        pooled, heatmaps = self.head(features, masks)
        return pooled * self.scale, heatmaps


@pytest.fixture(scope="module", autouse=True)
def _unregister_the_test_head():
    yield
    part_table("cal").pop("test-scaled-query")


def test_an_out_of_tree_head_takes_its_own_option_through_the_spec(tmp_path):
    plugin = Plugin("t-scaled-cal", "tests", text_prompt="learnable", cal="test-scaled-query", head_scale=3.0,
                    **TINY)
    spec = plugin.spec({})
    assert spec.extra_options == {"head_scale": 3.0} and spec.trains_head
    assert spec.build_part("cal") == ScaledQueryCAL(head_scale=3.0)
    with pytest.raises(ConfigError, match=r"method 't-scaled-cal': part cal 'test-scaled-query': option "
                                          r"head_scale=20.0 must be <= 10"):
        plugin.spec({"head_scale": 20})
    with pytest.raises(ConfigError, match=r"unknown option\(s\) 'head_scale'"):
        METHODS.get("deop").spec({"head_scale": 2.0})  # not an option of the query head deop selects
    env = MethodEnv(train_dataset="synthetic_coco", data_root=None, cache_dir=tmp_path, device="cpu",
                    progress=False, log=lambda *a: None)
    segmenter = plugin.build_untrained({}, env).segmenter
    features = torch.nn.functional.normalize(torch.randn(1, segmenter.void_embedding.shape[0], 2, 3), dim=1)
    masks = torch.rand(1, 10, 2, 3)
    pooled, _ = segmenter.head(features, masks)
    assert torch.allclose(pooled.norm(dim=-1), torch.full((1, 10), 3.0), atol=1e-5)
