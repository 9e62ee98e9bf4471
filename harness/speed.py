"""The timing protocol (DESIGN "Speed protocol"), independent of any method.

- Inputs are preloaded; nothing is decoded inside the timer.
- Warm-up covers every input shape (each distinct shape is run once untimed), plus extra rounds if asked.
- Each timed call is bracketed by a device sync; repeats give the median and the spread (25th-75th percentile).
- A time budget per cell stops repeating once it is spent (at least one full round always runs), so the CPU
  default of a suite finishes in minutes.
- A per-stage breakdown comes from a separate instrumented pass (its syncs would perturb the headline number),
  and FLOPs from `torch.utils.flop_counter`, per stage and in total, to read speed against the peak: a known
  table for GPUs, a matmul micro-benchmark measured in the same run on a CPU.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

# Dense peak TFLOP/s by device name fragment and precision (vendor datasheets, no sparsity).
KNOWN_PEAKS_TFLOPS: dict[str, dict[str, float]] = {
    "H200": {"bf16": 989.0, "fp16": 989.0, "tf32": 494.0, "fp32": 67.0},
    "H100": {"bf16": 989.0, "fp16": 989.0, "tf32": 494.0, "fp32": 67.0},
    "A100": {"bf16": 312.0, "fp16": 312.0, "tf32": 156.0, "fp32": 19.5},
    "V100": {"fp16": 125.0, "fp32": 15.7},
    "L4": {"bf16": 121.0, "fp16": 121.0, "tf32": 60.0, "fp32": 30.3},
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Timing:
    """Per-call wall times (seconds) of the timed calls."""

    times_s: list[float]

    @property
    def median_s(self) -> float:
        return statistics.median(self.times_s)

    def quantile(self, q: float) -> float:
        ordered = sorted(self.times_s)
        pos = q * (len(ordered) - 1)
        lo, hi = int(pos), min(int(pos) + 1, len(ordered) - 1)
        return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)

    def summary(self) -> dict[str, Any]:
        return {"ms_per_image": 1000 * self.median_s, "fps": 1.0 / self.median_s,
                "ms_p25": 1000 * self.quantile(0.25), "ms_p75": 1000 * self.quantile(0.75),
                "ms_min": 1000 * min(self.times_s), "fps_best": 1.0 / min(self.times_s),
                "timed_calls": len(self.times_s)}


def time_calls(fn: Callable[[Any], Any], inputs: Sequence[Any], device: torch.device, *, warmup_rounds: int = 0,
               repeats: int = 3, budget_s: float | None = None, shape_of: Callable[[Any], Any] | None = None,
               progress: Callable[[int, int], None] | None = None) -> Timing:
    """Time ``fn(x)`` for every x in ``inputs``, ``repeats`` rounds (fewer if ``budget_s`` runs out)."""
    seen_shapes = set()
    for x in inputs:  # warm-up covers every input shape
        shape = shape_of(x) if shape_of else id(x)
        if shape not in seen_shapes:
            seen_shapes.add(shape)
            fn(x)
    for _ in range(warmup_rounds):
        for x in inputs:
            fn(x)
    sync(device)
    times: list[float] = []
    start = time.perf_counter()
    for r in range(repeats):
        for x in inputs:
            sync(device)
            t0 = time.perf_counter()
            fn(x)
            sync(device)
            times.append(time.perf_counter() - t0)
        if progress:
            progress(r + 1, repeats)
        if budget_s is not None and time.perf_counter() - start > budget_s:
            break
    return Timing(times)


@dataclass
class StageTimer:
    """``with timer("clip"): ...`` accumulates synced wall time (and optionally FLOPs) per named stage."""

    device: torch.device
    count_flops: bool = False
    ms: dict[str, float] = field(default_factory=dict)
    flops: dict[str, int] = field(default_factory=dict)

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        counter = None
        fastpath = torch.backends.mha.get_fastpath_enabled()
        if self.count_flops:
            # nn.MultiheadAttention's inference fast path (one fused op, used by open_clip blocks under no_grad)
            # is invisible to the FLOP counter: count through its plain path (same result, only slower).
            torch.backends.mha.set_fastpath_enabled(False)
            counter = flop_counter()
            counter.__enter__()
        sync(self.device)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            sync(self.device)
            self.ms[name] = self.ms.get(name, 0.0) + 1000 * (time.perf_counter() - t0)
            if counter is not None:
                counter.__exit__(None, None, None)
                torch.backends.mha.set_fastpath_enabled(fastpath)
                self.flops[name] = self.flops.get(name, 0) + int(counter.get_total_flops())


def flop_counter():
    """torch's FlopCounterMode, plus the CPU kernel of scaled_dot_product_attention (torch counts its CUDA
    kernels only): 2 * B * heads * Tq * Tk * (d_qk + d_v), as for the CUDA ones."""
    from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

    def cpu_sdpa(query, key, value, *args, out_shape=None, **kwargs) -> int:
        return sdpa_flop_count(query, key, value)

    custom = {}
    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is not None:
        custom[op] = cpu_sdpa
    return FlopCounterMode(display=False, custom_mapping=custom)


@contextlib.contextmanager
def no_grad_params(module: torch.nn.Module) -> Iterator[None]:
    """Temporarily mark every parameter as not requiring grad: FlopCounterMode's module tracker otherwise trips
    on parameters that require grad inside no_grad/inference_mode forwards."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def matmul_peak_tflops(device: torch.device, dtype: torch.dtype = torch.float32, size: int = 1024,
                       seconds: float = 0.5) -> float:
    """Achieved TFLOP/s of a square matmul: the practical peak of this device at this precision."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        n += 1
    sync(device)
    return 2 * size**3 * n / (time.perf_counter() - t0) / 1e12


def device_peak(device: torch.device, precision: str, tf32: bool) -> tuple[float, str]:
    """(peak TFLOP/s, where it comes from) for the device and precision."""
    key = precision if precision != "fp32" else ("tf32" if tf32 else "fp32")
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for fragment, peaks in KNOWN_PEAKS_TFLOPS.items():
            if fragment in name and key in peaks:
                return peaks[key], f"datasheet {fragment} {key}"
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    if device.type == "cpu" and dtype == torch.float16:
        dtype = torch.float32
    return matmul_peak_tflops(device, dtype), f"measured: {dtype} matmul 1024^3 on {device}"


def autocast_context(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return torch.autocast(device_type=device.type, dtype=dtype)


def set_tf32(enabled: bool) -> dict[str, bool]:
    """Set the TF32 flags explicitly (they are part of the result) and return them."""
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled
    return {"matmul_allow_tf32": enabled, "cudnn_allow_tf32": enabled}
