"""The timing protocol (DESIGN "Speed protocol"), independent of any method.

- Inputs are preloaded; nothing is decoded inside the timer.
- Warm-up covers every input shape (each distinct shape is run once untimed), plus extra rounds if asked.
- Each timed call is bracketed by a device sync; repeats give the median and the spread (25th-75th percentile).
- Several methods are timed interleaved (`time_interleaved`): round by round, each method over the same inputs,
  the order rotated every round, so that load which comes and goes hits them alike; a ratio between two methods
  is the median of their per-round ratios (`paired_ratio`), with its spread.
- A time budget per method stops repeating once it is spent (at least one full round always runs), so the CPU
  default of a suite finishes in minutes.
- A per-stage breakdown comes, on a GPU, from separate instrumented passes (their syncs would perturb the headline
  number); on a CPU, where a stage boundary synchronises nothing, from the timed calls themselves. FLOPs come from `torch.utils.flop_counter` (plus the attention kernels its table lacks, `flop_counter`), per
  stage and in total, to read speed against the peak: a known table for GPUs, on a CPU a matmul sampled several
  times in the same run (`matmul_peak_tflops`, best of the samples).
- Spreads are relative: (75th - 25th percentile) / median (`relative_spread`).
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


def relative_spread(values: Sequence[float]) -> float:
    """(75th - 25th percentile) / median: 0 for identical values (and for a single one)."""
    t = Timing(list(values))
    return (t.quantile(0.75) - t.quantile(0.25)) / t.median_s if t.median_s else 0.0


@dataclass
class Timing:
    """Per-call wall times (seconds) of the timed calls, and per round the sum of that round's calls."""

    times_s: list[float]
    rounds_s: list[float] = field(default_factory=list)

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
                "ms_spread": relative_spread(self.times_s), "timed_calls": len(self.times_s),
                "rounds": len(self.rounds_s),
                "round_spread": relative_spread(self.rounds_s) if self.rounds_s else 0.0}


def time_interleaved(fns: Sequence[Callable[[Any], Any]], inputs: Sequence[Any], device: torch.device, *,
                     warmup_rounds: int = 0, repeats: int = 3, budget_s: float | None = None,
                     shape_of: Callable[[Any], Any] | None = None,
                     progress: Callable[[int, int], None] | None = None,
                     before_round: Callable[[int], None] | None = None,
                     before_warmup: Callable[[int], None] | None = None,
                     warmup_fns: Sequence[Callable[[Any], Any]] | None = None,
                     ) -> tuple[list[Timing], dict[int, Exception]]:
    """Time every ``fn(x)`` for every x in ``inputs``, round by round: in round r each fn runs over all inputs,
    in an order rotated by r. ``repeats`` rounds, fewer once ``budget_s`` per fn is spent (>= 1 round).
    ``before_round(r)`` runs untimed before each round (e.g. a peak sample), ``before_warmup(i)`` before fn i's
    warm-up (e.g. a progress step); ``warmup_fns[i]``, if given, makes fn i's warm-up calls (the same work, e.g.
    with its FLOPs counted). A fn that raises drops out; its exception is returned by index, the others go on.
    Returns (one Timing per fn, failures)."""
    failures: dict[int, Exception] = {}

    def call(i: int, x: Any, fn_list: Sequence[Callable[[Any], Any]] = fns) -> bool:
        try:
            fn_list[i](x)
            return True
        except Exception as exc:  # noqa: BLE001 - one method failing must not lose the others' measurements
            failures[i] = exc
            return False

    for i in range(len(fns)):  # warm-up covers every input shape, method by method
        if before_warmup:
            before_warmup(i)
        seen_shapes = set()
        for x in inputs:
            shape = shape_of(x) if shape_of else id(x)
            if shape not in seen_shapes and i not in failures:
                seen_shapes.add(shape)
                call(i, x, warmup_fns or fns)
        for _ in range(warmup_rounds):
            for x in inputs:
                if i not in failures:
                    call(i, x)
    sync(device)
    timings = [Timing([]) for _ in fns]
    start = time.perf_counter()
    for r in range(repeats):
        if before_round:
            before_round(r)
        for i in [(j + r) % len(fns) for j in range(len(fns))]:
            times = []
            for x in inputs:
                if i in failures:
                    break
                sync(device)
                t0 = time.perf_counter()
                if not call(i, x):
                    break
                sync(device)
                times.append(time.perf_counter() - t0)
            if i not in failures:
                timings[i].times_s.extend(times)
                timings[i].rounds_s.append(sum(times))
        if progress:
            progress(r + 1, repeats)
        if budget_s is not None and time.perf_counter() - start > budget_s * len(fns):
            break
    return timings, failures


def time_calls(fn: Callable[[Any], Any], inputs: Sequence[Any], device: torch.device, *, warmup_rounds: int = 0,
               repeats: int = 3, budget_s: float | None = None, shape_of: Callable[[Any], Any] | None = None,
               progress: Callable[[int, int], None] | None = None) -> Timing:
    """Time ``fn(x)`` for every x in ``inputs``, ``repeats`` rounds (fewer if ``budget_s`` runs out)."""
    (timing,), failures = time_interleaved([fn], inputs, device, warmup_rounds=warmup_rounds, repeats=repeats,
                                           budget_s=budget_s, shape_of=shape_of, progress=progress)
    if failures:
        raise failures[0]
    return timing


def paired_ratio(a: Timing, b: Timing) -> dict[str, float] | None:
    """a's speed over b's from the rounds both ran (the same inputs, minutes apart at most): the median of the
    per-round ratios b_round_s / a_round_s, their quartiles, relative spread and count; None without a round."""
    ratios = [tb / ta for ta, tb in zip(a.rounds_s, b.rounds_s) if ta > 0]
    if not ratios:
        return None
    t = Timing(ratios)
    return {"median": t.median_s, "p25": t.quantile(0.25), "p75": t.quantile(0.75),
            "spread": relative_spread(ratios), "rounds": len(ratios)}


def _sdpa_cpu_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of SDPA's CPU kernel (``aten._scaled_dot_product_flash_attention_for_cpu``), which torch's table
    lacks: Q K^T and A V, as torch counts its CUDA kernels."""
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _native_mha_flops(query_shape, key_shape, value_shape, embed_dim, num_head, *args, out_shape=None,
                      **kwargs) -> int:
    """FLOPs of nn.MultiheadAttention's native fast path (``aten._native_multi_head_attention``, taken under
    no_grad for batch-first self-attention), invisible to torch's table: the Q, K, V projections, Q K^T, A V and
    the output projection. Shapes are (B, L, E) for the query and (B, S, E) for key and value."""
    b, lq, e = query_shape
    s = key_shape[1]
    macs = b * (lq * e * e + 2 * s * e * e)  # projections of the query, key and value
    macs += 2 * b * lq * s * e  # Q K^T and A V over all heads
    macs += b * lq * e * e  # output projection
    return 2 * macs


def flop_formulas() -> dict[Any, Callable[..., int]]:
    """What `FlopCounterMode` needs on top of its own table to see every op of a CPU inference path."""
    aten = torch.ops.aten
    return {aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flops,
            aten._native_multi_head_attention: _native_mha_flops}


def flop_counter() -> Any:
    """A `FlopCounterMode` (no display) that counts every op the timed paths run, attention included."""
    from torch.utils.flop_counter import FlopCounterMode

    return FlopCounterMode(display=False, custom_mapping=flop_formulas())


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
        if self.count_flops:
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
                self.flops[name] = self.flops.get(name, 0) + int(counter.get_total_flops())


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
    """Achieved TFLOP/s of a square matmul over ``seconds``: one sample of the practical peak of this device at
    this precision (the speed task takes the best of several short samples spread over its rounds)."""
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


def datasheet_peak(device: torch.device, precision: str, tf32: bool) -> tuple[float, str] | None:
    """(peak TFLOP/s, source) from `KNOWN_PEAKS_TFLOPS` for a known GPU, else None (measure it)."""
    key = precision if precision != "fp32" else ("tf32" if tf32 else "fp32")
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for fragment, peaks in KNOWN_PEAKS_TFLOPS.items():
            if fragment in name and key in peaks:
                return peaks[key], f"datasheet {fragment} {key}"
    return None


def peak_dtype(device: torch.device, precision: str) -> torch.dtype:
    """The matmul dtype whose measured peak a precision is read against (fp16 on a CPU: fp32)."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    return torch.float32 if device.type == "cpu" and dtype == torch.float16 else dtype


def device_peak(device: torch.device, precision: str, tf32: bool) -> tuple[float, str]:
    """(peak TFLOP/s, where it comes from) for the device and precision: the datasheet, else one measurement."""
    known = datasheet_peak(device, precision, tf32)
    if known is not None:
        return known
    dtype = peak_dtype(device, precision)
    return matmul_peak_tflops(device, dtype), f"measured: {dtype} matmul 1024^3 on {device}"


def autocast_context(device: torch.device, precision: str, cache: bool = True):
    """Autocast for bf16/fp16; ``cache=False`` for a call captured in a CUDA graph (autocast frees its cast cache
    on exit, which the graph would still read)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return torch.autocast(device_type=device.type, dtype=dtype, cache_enabled=cache)


def set_tf32(enabled: bool) -> dict[str, bool]:
    """Set the TF32 flags explicitly (they are part of the result) and return them."""
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled
    return {"matmul_allow_tf32": enabled, "cudnn_allow_tf32": enabled}
