"""`compile: true` prepares every method the same way: the speed task asks each segmenter to prepare itself
(`Segmenter.prepare_for_timing`), and every CLIP pass of every method, SimBaseline's crop encoder included, ends up
inside a compiled module. What was prepared is checked, not the timing: `torch.compile` is replaced by a
recorder (compiling would take minutes on a CPU and say nothing about what was asked for)."""

import pytest
import torch

from harness.api import Cell, RunContext, TimingPrep
from harness.registries import METHODS
from harness.suite import Benchmark, MethodRow, Setting
from harness.tasks.speed import SPEED
from methods.components.clip_dense import DenseCLIP
from methods.components.proposals import MaskFormer
from methods.plugin import Plugin
from methods.spec import MethodSpec

TINY = {"clip_arch": "tiny-vit-p16", "clip_weights": "random", "proposals": {"preset": "smoke"},
        "prompt_layers": [1, 2], "test_short_side": 64}
PLUGINS = [n for n in METHODS.names() if isinstance(METHODS.get(n), Plugin) and METHODS.get(n).spec_type is MethodSpec]


def _speed_cell(method: str, **options) -> Cell:
    return Cell(suite="t", profile="smoke", benchmark=Benchmark("speed", "speed", None), setting=Setting("default"),
                row=MethodRow(method, method), method_options=TINY,
                task_options={"images": 1, "image_sizes": [[48, 64]], "repeats": 1, "budget_s": 5.0,
                              "classes": "synthetic_coco", **options})


@pytest.mark.parametrize("method", PLUGINS)
def test_compile_prepares_every_clip_pass_and_the_proposals(method, tmp_path, monkeypatch):
    compiled: list[torch.nn.Module] = []

    def record_compile(module, *args, **kwargs):
        compiled.append(module)
        return module  # runs uncompiled: the test is about what was asked for

    monkeypatch.setattr(torch, "compile", record_compile)
    ctx = RunContext(out_dir=tmp_path, cache_dir=tmp_path, device="cpu", progress=False, log=lambda *a: None)
    result = SPEED.run(_speed_cell(method, compile=True, breakdown=False), ctx)

    def holds(module, kind):
        return any(isinstance(m, kind) for m in module.modules())

    dense_clips = [m for m in compiled if holds(m, DenseCLIP)]
    assert dense_clips, f"{method}: no CLIP path was compiled"
    assert any(holds(m, MaskFormer) for m in compiled)
    prepared = result.speed["prepared"]
    assert len(prepared["compiled"]) == len(compiled) == 2 and prepared["channels_last"] == ["maskformer"]
    assert prepared["folded_norms"]["maskformer"] > 0  # fold_norms: true by default, before compiling
    if METHODS.get(method).kind == "multi-pass":
        assert "crop_encoder" in prepared["compiled"]  # SimBaseline's N' crop passes, as fair as DeOP's one pass


@pytest.mark.parametrize("method", PLUGINS)
def test_nothing_is_prepared_unless_asked(method, tmp_path, monkeypatch):
    monkeypatch.setattr(torch, "compile", lambda *a, **k: pytest.fail("compiled without compile: true"))
    ctx = RunContext(out_dir=tmp_path, cache_dir=tmp_path, device="cpu", progress=False, log=lambda *a: None)
    result = SPEED.run(_speed_cell(method, channels_last=False, fold_norms=False, breakdown=False), ctx)
    assert result.speed["prepared"] == {"channels_last": [], "compiled": [], "precision": "fp32"}


def test_compiled_modules_are_the_ones_the_segmenter_then_runs(tmp_path):
    """prepare_for_timing replaces the modules in place, so predict goes through the compiled ones."""
    from harness.api import MethodEnv

    env = MethodEnv(train_dataset="synthetic_coco", data_root=None, cache_dir=tmp_path, device="cpu",
                    progress=False, log=lambda *a: None)
    segmenter = METHODS.get("simbaseline").build_untrained(TINY, env).segmenter
    done = segmenter.prepare_for_timing(TimingPrep(compile=True))
    assert done["compiled"] == ["maskformer", "crop_encoder"]
    assert isinstance(segmenter.crop_encoder, torch._dynamo.eval_frame.OptimizedModule)
    assert isinstance(segmenter.maskformer, torch._dynamo.eval_frame.OptimizedModule)


@pytest.mark.parametrize("crop_chunk, calls", [(None, 3), (1, 20), (20, 1)])
def test_simbaseline_crops_per_clip_call(tmp_path, crop_chunk, calls):
    """Unset, SimBaseline's crops go through CLIP 8 per call on a CPU (cache-sized: faster there, the same
    numbers to float rounding); a set crop_chunk is obeyed. 20 crops: 8 + 8 + 4."""
    from harness.api import MethodEnv
    from methods.components.regions import clip_region_probs

    env = MethodEnv(train_dataset="synthetic_coco", data_root=None, cache_dir=tmp_path, device="cpu",
                    progress=False, log=lambda *a: None)
    segmenter = METHODS.get("simbaseline").build_untrained({**TINY, "crop_chunk": crop_chunk}, env).segmenter
    sizes: list[int] = []
    encoder = segmenter.crop_encoder
    crops = torch.rand(20, 3, encoder.crop_size, encoder.crop_size)
    text = torch.randn(5, segmenter.void_embedding.shape[0])
    with torch.no_grad():
        probs = clip_region_probs(lambda c: sizes.append(len(c)) or encoder(c), crops, text,
                                  chunk_size=segmenter.crop_chunk)
        torch.testing.assert_close(probs, clip_region_probs(encoder, crops, text), rtol=1e-5, atol=1e-6)
    assert len(sizes) == calls and sum(sizes) == 20
