import time

import pytest
import torch

from harness import speed


def test_warmup_covers_every_shape_then_times_each_call():
    calls = []

    def fn(x):
        calls.append(tuple(x.shape))

    inputs = [torch.zeros(2, 3), torch.zeros(4, 5), torch.zeros(2, 3)]
    timing = speed.time_calls(fn, inputs, torch.device("cpu"), repeats=2, shape_of=lambda x: tuple(x.shape))
    assert calls[:2] == [(2, 3), (4, 5)]  # one untimed call per distinct shape first
    assert len(calls) == 2 + 2 * 3 and len(timing.times_s) == 6


def test_budget_stops_after_a_full_round():
    def slow(_):
        time.sleep(0.02)

    timing = speed.time_calls(slow, [0, 1], torch.device("cpu"), repeats=50, budget_s=0.01)
    assert len(timing.times_s) == 2  # one complete round, then the budget is spent


def test_timing_summary_median_and_spread():
    t = speed.Timing([0.1, 0.2, 0.3, 0.4, 1.0])
    s = t.summary()
    assert s["ms_per_image"] == pytest.approx(300) and s["fps"] == pytest.approx(1 / 0.3)
    assert s["ms_p25"] == pytest.approx(200) and s["ms_p75"] == pytest.approx(400) and s["ms_min"] == pytest.approx(100)


def test_stage_timer_counts_matmul_flops_per_stage():
    timer = speed.StageTimer(torch.device("cpu"), count_flops=True)
    a, b = torch.randn(16, 32), torch.randn(32, 8)
    with timer("mm"):
        a @ b
    with timer("mm"):
        a @ b
    with timer("other"):
        a + 1
    assert timer.flops["mm"] == 2 * (2 * 16 * 32 * 8) and timer.flops["other"] == 0
    assert timer.ms["mm"] > 0


def test_stage_timer_counts_every_flop_of_a_transformer_block():
    """An open_clip block under no_grad (nn.MultiheadAttention's fused fast path) and SDPA on the CPU: both
    counted, equal to the analytic count of its linear layers and attention products."""
    from methods.components.weights import build_clip

    block = build_clip("tiny-vit-p16", "random")[0].visual.transformer.resblocks[0].eval()
    tokens, width, hidden = 17, 64, 256
    x = torch.randn(1, tokens, width)
    timer = speed.StageTimer(torch.device("cpu"), count_flops=True)
    with torch.no_grad(), timer("block"):
        block(x)
    linear = 2 * tokens * (4 * width * width + 2 * width * hidden)
    attention = 2 * 2 * tokens * tokens * width  # Q K^T and A V over all heads
    assert timer.flops["block"] == linear + attention
    assert torch.backends.mha.get_fastpath_enabled()  # restored after counting
    q = torch.randn(2, 4, 9, 16)
    with timer("sdpa"):
        torch.nn.functional.scaled_dot_product_attention(q, q, q)
    assert timer.flops["sdpa"] == 2 * 2 * 4 * 9 * 9 * 16 * 2


def test_known_gpu_peaks_and_measured_cpu_peak():
    assert speed.KNOWN_PEAKS_TFLOPS["H100"]["bf16"] == 989.0
    peak, source = speed.device_peak(torch.device("cpu"), "fp32", tf32=False)
    assert peak > 0 and source.startswith("measured")


def test_no_grad_params_restores_flags():
    m = torch.nn.Linear(2, 2)
    m.bias.requires_grad_(False)
    with speed.no_grad_params(m):
        assert not any(p.requires_grad for p in m.parameters())
    assert m.weight.requires_grad and not m.bias.requires_grad
