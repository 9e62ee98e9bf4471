"""The same GPU preparation for every method, done by the speed task through the `Segmenter` protocol only.

- `cast_weights`: the weight matrices (every parameter of two or more dimensions: linear and convolution
  weights, embeddings) cast once to the timed precision, so that autocast finds them already in bf16/fp16
  instead of re-casting them on every call; vectors (biases, norm scales) stay fp32, so layer norms keep
  their fp32 parameters. Autocast still runs (for the activations), so a method computes as under plain autocast
  up to the rounding of its weights, which autocast applied anyway.
- `GraphedCall`: a method's whole timed call replayed from a CUDA graph, one per input shape, captured after
  warm-up with static input and output buffers (`torch.cuda.graphs`). A method whose call cannot be captured
  (it synchronises with the host, e.g. to learn how many crops to cut) runs eagerly, and the record says why.
- `SyncCounter`: counts the ops inside a call that would make the host wait for a GPU (`SYNC_OPS`: reading
  a value, or a shape that depends on values); it runs on a CPU, where they cost nothing, so that the rule "no
  host synchronisation inside a timed call" is testable without a GPU.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from .api import Segmenter

# aten ops whose result the host must wait for on a GPU: a value read back (item, tolist, bool(t), ==
# between tensors as a Python bool) or an output whose size depends on values (nonzero, masked_select, unique).
SYNC_OPS = frozenset({
    "aten::item", "aten::_local_scalar_dense", "aten::is_nonzero", "aten::equal", "aten::nonzero",
    "aten::nonzero_static", "aten::masked_select", "aten::unique", "aten::_unique", "aten::_unique2",
    "aten::unique_consecutive", "aten::unique_dim", "aten::allclose", "aten::masked_scatter",
    "aten::repeat_interleave",
})
# Not a synchronisation, but host data copied to the device inside the call (torch.tensor(list) on every call):
# a pageable copy each time, and an op a CUDA graph cannot capture. Counted with the others.
HOST_COPY_OPS = frozenset({"aten::lift_fresh"})
# nonzero_static has a fixed output size and does not synchronise; repeat_interleave only without output_size
NO_SYNC_WHEN = {"aten::nonzero_static": lambda args, kwargs: True,
                "aten::repeat_interleave": lambda args, kwargs: kwargs.get("output_size") is not None}


# Indexing by a boolean mask runs nonzero inside on a GPU (on a CPU the kernel does it without dispatching it).
MASK_INDEX_OPS = frozenset({"aten::index", "aten::index_put", "aten::_index_put_impl"})


def _has_mask_index(args: tuple) -> bool:
    indices = args[1] if len(args) > 1 and isinstance(args[1], list | tuple) else ()
    return any(isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in indices)


def _to_host(name: str, args: tuple, kwargs: dict) -> bool:
    if name == "aten::_to_copy":
        device = kwargs.get("device")
        return bool(args) and args[0].device.type != "cpu" and device is not None and torch.device(device).type == "cpu"
    return len(args) > 1 and args[0].device.type == "cpu" and isinstance(args[1], torch.Tensor) \
        and args[1].device.type != "cpu"


def _never(args: tuple, kwargs: dict) -> bool:
    return False


class SyncCounter(TorchDispatchMode):
    """``with SyncCounter() as c: fn()`` -> ``c.counts``: op name -> how often an op of `SYNC_OPS` or
    `HOST_COPY_OPS` ran."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func._schema.name
        if (name in SYNC_OPS or name in HOST_COPY_OPS) and not NO_SYNC_WHEN.get(name, _never)(args, kwargs):
            self.counts[name] += 1
        elif name in MASK_INDEX_OPS and _has_mask_index(args):
            self.counts[f"{name} (boolean mask)"] += 1
        elif name in ("aten::_to_copy", "aten::copy_") and _to_host(name, args, kwargs):
            self.counts[f"{name} (device to host)"] += 1  # .cpu(), .tolist() of a GPU tensor: on a CPU, none
        return func(*args, **kwargs)


def count_sync_ops(fn: Callable[[], Any]) -> dict[str, int]:
    """Op name -> count of the host-synchronising (and host-copying) ops ``fn()`` runs (empty: none)."""
    with SyncCounter() as counter:
        fn()
    return dict(counter.counts)


# ---------------------------------------------------------------------------------------------- weights


def cast_weights(segmenter: Segmenter, precision: str) -> dict[str, Any]:
    """Cast every parameter of two or more dimensions to ``precision`` (bf16/fp16) once, in place; fp32: nothing.
    Returns what was done, for the record's ``prepared``."""
    if precision == "fp32":
        return {"cast_weights": None}
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    n, numel = 0, 0
    with torch.no_grad():
        for p in segmenter.parameters():
            if p.dim() >= 2 and p.is_floating_point() and p.dtype != dtype:
                p.data = p.data.to(dtype)
                n += 1
                numel += p.numel()
    return {"cast_weights": {"dtype": precision, "tensors": n, "parameters": numel,
                             "kept_fp32": "vectors (biases, norm scales, embeddings of one dimension)"}}


# ---------------------------------------------------------------------------------------------- CUDA graphs


def _shape_key(batch: Sequence[torch.Tensor]) -> tuple:
    return tuple((tuple(x.shape), x.dtype) for x in batch)


class GraphedCall:
    """``call(batch)`` replays a CUDA graph of ``fn`` captured for the batch's shapes (static input buffers
    filled by copy, static outputs returned); the first call of a shape runs ``fn`` eagerly once, then once more
    counting the ops that would synchronise (`count_sync_ops`), then ``warmup`` times on a side stream, then
    captures. If capture fails (the call synchronises with the host or allocates on the host),
    that is remembered and every later call runs eagerly: ``eager_reason`` says why, for the record.

    Outputs are the graph's own buffers, overwritten by the next replay of that shape (as
    ``torch.cuda.make_graphed_callables``); the timing loop does not keep them."""

    def __init__(self, fn: Callable[[list[torch.Tensor]], Any], warmup: int = 2) -> None:
        self.fn, self.warmup = fn, warmup
        self.graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, list[torch.Tensor], Any]] = {}
        self.eager_reason: str | None = None

    def __call__(self, batch: Sequence[torch.Tensor]) -> Any:
        if self.eager_reason is not None:
            return self.fn(list(batch))
        key = _shape_key(batch)
        if key not in self.graphs:
            # Screened eagerly, after one call that fills the method's caches (text embeddings: their cold path
            # may read values back once), since a failed capture may leave the CUDA context unusable.
            self.fn(list(batch))
            blockers = count_sync_ops(lambda: self.fn(list(batch)))
            if blockers:
                self.eager_reason = "synchronises with the host: " + ", ".join(
                    f"{op} x{n}" for op, n in sorted(blockers.items()))
                return self.fn(list(batch))
            try:
                self.graphs[key] = self._capture(batch)
            except Exception as exc:  # noqa: BLE001 - a method that cannot be captured is timed eagerly, said so
                self.eager_reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
                torch.cuda.synchronize()
                return self.fn(list(batch))
        graph, inputs, outputs = self.graphs[key]
        for static, x in zip(inputs, batch):
            static.copy_(x, non_blocking=True)
        graph.replay()
        return outputs

    def _capture(self, batch: Sequence[torch.Tensor]):
        inputs = [x.clone() for x in batch]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(self.warmup):
                self.fn(inputs)
        torch.cuda.current_stream().wait_stream(side)
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):  # a private memory pool per graph
            outputs = self.fn(inputs)
        return graph, inputs, outputs

    def record(self) -> dict[str, Any]:
        """What the record's ``prepared`` says about graphs."""
        if self.eager_reason is not None:
            return {"cuda_graphs": False, "eager_reason": self.eager_reason}
        return {"cuda_graphs": True, "shapes_captured": len(self.graphs)}


def release_cuda_memory() -> None:
    """Collect what a finished group held (its graphs' private pools among it) and return it to the device."""
    import gc

    gc.collect()
    torch.cuda.empty_cache()


# ---------------------------------------------------------------------------------------------- peak


class GpuPeak:
    """The GPU's practical peak, measured in the run as the CPU's is: square matmuls (``size``^3) of each kind,
    one short sample of each before every round; bf16 and TF32 always (the two rates the timed precisions are
    read against), fp16 or plain fp32 too when that is the timed precision. `%` peak is read against the best
    sample of the timed kind; the datasheet figure is recorded beside it."""

    def __init__(self, device: torch.device, precision: str, tf32: bool, size: int = 8192) -> None:
        self.device, self.size = device, size
        self.kind = {"bf16": "bf16", "fp16": "fp16"}.get(precision, "tf32" if tf32 else "fp32")
        self.samples: dict[str, list[float]] = {k: [] for k in dict.fromkeys(("bf16", "tf32", self.kind))}

    def sample(self, seconds: float) -> None:
        from .speed import matmul_peak_tflops

        for kind, values in self.samples.items():
            dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(kind, torch.float32)
            old = torch.backends.cuda.matmul.allow_tf32
            torch.backends.cuda.matmul.allow_tf32 = kind == "tf32"
            try:
                values.append(matmul_peak_tflops(self.device, dtype, size=self.size, seconds=seconds))
            finally:
                torch.backends.cuda.matmul.allow_tf32 = old

    def figures(self, datasheet: tuple[float, str] | None) -> tuple[float, str, dict[str, Any]]:
        """(peak TFLOP/s the % is read against, its source, the record's other peak fields)."""
        timed = self.samples[self.kind]
        peak = max(timed)
        info: dict[str, Any] = {
            "peak_samples_tflops": list(timed), "peak_spread": (max(timed) - min(timed)) / peak,
            "peak_samples_by_kind": {k: list(v) for k, v in self.samples.items()},
            "peak_measured_tflops": {k: max(v) for k, v in self.samples.items() if v},
        }
        if datasheet is not None:
            info["datasheet_peak_tflops"], info["datasheet_source"] = datasheet
        source = (f"measured: best of {len(timed)} samples of a {self.kind} matmul {self.size}^3 on {self.device}, "
                  f"taken before every round of this group")
        return peak, source, info
