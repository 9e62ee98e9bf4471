"""The speed task's work for one group of cells: the methods of one benchmark and setting, timed together.

Build every method, then (`harness.speed`) warm each up over every input shape, time them round by round on the
same images (order rotated each round, a peak sample before each round on a CPU), take the stage breakdown as the
median over the timed rounds (a CPU: a stage boundary synchronises nothing) or over several instrumented passes
interleaved the same way (a GPU), count FLOPs once per method (reused by a later group of this process with the
same resolved options and inputs), and assemble one record's ``speed`` entry per cell: its own figures, its
paired ratios over the other methods, and its flags.
"""

from __future__ import annotations

import json
import math
import statistics
import uuid
from typing import Any

import torch

from .. import speed, speed_prep
from ..api import Cell, CellResult, MethodEnv, RunContext, TimingPrep
from ..data import get_info
from ..progress import StepProgress, tqdm_display
from .common import method_plugin, vocabulary
from .speed_inputs import load_images
from .throughput import images_needed, same_size

# Before a step of a kind has finished, its cost in another kind's steps (StepProgress): an instrumented pass is a
# round with syncs; a FLOP count about one warm-up. (A timed round runs every method over the images: about all
# the warm-ups, one call per shape each, the first calls' costs aside; set per group.)
STEP_PROXIES = {"pass": ("round", 1.0), "flops": ("warm-up", 1.0)}
PEAK_SAMPLE_S = 0.2  # one matmul sample of the CPU peak, taken before every timed and instrumented round
STAGES_NOTE = ("stages are timed separately from the headline (instrumented passes, median of breakdown_passes); "
               "they need not sum to ms_per_image")
STAGES_NOTE_ROUNDS = ("stages are timed inside the timed calls (a CPU: the stage timer synchronises nothing), median "
                      "over the rounds; they need not sum to ms_per_image (the code between stages is in none)")
GMAC_COUNTED = {
    "warm-up": "in the warm-up call (its vocabulary prepared before it: the same per-image work as a timed call)",
    "own call": "in a call of its own after the timed rounds",
}
# FLOP counts already taken in this process: (plugin, resolved spec, preparation, input shapes) -> per stage. A
# count is one more full call of the method (ProxyCLIP at short side 512: 52 s on a 2-core CPU), and the same
# method on the same inputs counts the same: the matched group's DeOP-family cells equal the as-published ones.
_FLOPS_COUNTED: dict[str, tuple[str, dict[str, int]]] = {}


class _Method:
    """One built method of the group and what was measured of it."""

    def __init__(self, cell: Cell, fitted: Any, prepared: dict[str, Any]) -> None:
        self.cell, self.fitted, self.segmenter, self.prepared = cell, fitted, fitted.segmenter, prepared
        self.graphed: speed_prep.GraphedCall | None = None  # cuda_graphs: the call the timed rounds replay
        self.passes: list[list[dict[str, float]]] = []  # per pass or round: per batch, stage -> ms per image
        self.counts: dict[str, list[int]] = {}
        self.flops: dict[str, int] = {}
        self.phases_s: dict[str, float] = {}  # this method's build, warm-up and FLOP count (wall seconds)
        self.flops_in: str | None = None  # where the FLOPs were counted: "warm-up", "own call", "reused: <cell>"
        self.warmed, self.flops_key = False, ""  # flops_key: what its FLOP count depends on, set once built


class GroupTiming:
    def __init__(self, cells: list[Cell], opts: dict[str, Any], device: torch.device, ctx: RunContext) -> None:
        self.cells, self.opts, self.device, self.ctx = cells, opts, device, ctx
        self.results: list[CellResult | Exception | None] = [None] * len(cells)
        self.peaks: list[float] = []
        self.known_peak = speed.datasheet_peak(device, opts["precision"], opts["tf32"])
        # on a GPU the peak is measured too (bf16 and TF32 samples), the datasheet recorded beside it
        self.gpu_peak = speed_prep.GpuPeak(device, opts["precision"], opts["tf32"]) if device.type == "cuda" else None
        self.graphs = device.type == "cuda" and opts["cuda_graphs"] in ("auto", True)
        self.stages_in_rounds = opts["breakdown"] and (
            opts["breakdown_in"] == "rounds" or (opts["breakdown_in"] == "auto" and device.type == "cpu"))
        self._counting = bool(opts["breakdown"] and opts["gmac"])  # FLOPs counted (in a warm-up or a call)
        self._round: int | None = None  # the timed round under way (stage times are kept from these calls only)

    # ------------------------------------------------------------------------------------------ steps

    def run(self) -> list[CellResult | Exception]:
        """Build, warm up, time, break down and count; one result (or exception) per cell. Every step shows on a
        progress bar of the group's steps, its ETA from the steps measured so far (`harness.progress`)."""
        n, first = len(self.cells), self.cells[0]
        passes = self.opts["breakdown_passes"] if self.opts["breakdown"] and not self.stages_in_rounds else 0
        counts = n if self._counting else 0
        show, close = (tqdm_display(f"  {first.benchmark.name}/{first.setting.name} ({n} methods)")
                       if self.ctx.progress else (None, lambda: None))
        self.steps = StepProgress({"build": n, "warm-up": n, "round": self.opts["repeats"], "pass": passes,
                                   "flops": counts},
                                  proxies={"round": ("warm-up", float(n)), **STEP_PROXIES}, show=show)
        try:
            return self._run()
        finally:
            close()

    def _run(self) -> list[CellResult | Exception]:
        opts, device = self.opts, self.device
        self.tf32 = speed.set_tf32(opts["tf32"])
        info = get_info(opts["classes"])
        self.max_size = info.test_max_size
        self.vocab = vocabulary(info, zero_shot=False)  # no seen flags (as cross-dataset); the background, if any
        if opts["mode"] == "throughput":  # batches of distinct images of one size
            size = tuple(opts["image_sizes"][0])
            images, self.source = load_images({**opts, "images": images_needed(opts),
                                               "image_sizes": [list(size)]}, self.ctx.data_root)
            images = same_size(images, size)
            self.source += f"; throughput: all at {size[0]}x{size[1]}"
        else:
            images, self.source = load_images(opts, self.ctx.data_root)
        self.images = [im.to(device) for im in images]  # preloaded: no decoding or copies inside the timer
        b = opts["batch_size"]  # 1: latency mode; > 1: throughput mode (images cycled to fill the batches)
        self.batches = [[self.images[(i * b + j) % len(self.images)] for j in range(b)]
                        for i in range(max(1, math.ceil(len(self.images) / b)))]
        methods = self._build()
        timings = self._time(methods)
        if opts["breakdown"]:
            self._breakdown([m for m in methods if m is not None and timings.get(id(m))])
        group = uuid.uuid4().hex[:12]
        measured = [m for m in methods if m is not None and id(m) in timings]
        for i, m in enumerate(methods):
            if m is not None and id(m) in timings and self.results[i] is None:
                self.results[i] = self._result(m, timings, measured, group)
        if device.type == "cuda":  # the next group's graphs and models get this group's memory back
            del methods, measured
            speed_prep.release_cuda_memory()
        return [r if r is not None else RuntimeError("not measured") for r in self.results]

    def _build(self) -> list[_Method | None]:
        prep = TimingPrep(channels_last=self.opts["channels_last"], fold_norms=self.opts["fold_norms"],
                          compile=self.opts["compile"], precision=self.opts["precision"])
        methods: list[_Method | None] = []
        for i, cell in enumerate(self.cells):
            self.steps.begin("build", f"build {cell.row.method}")
            env = MethodEnv(train_dataset=self.opts["classes"], data_root=self.ctx.data_root,
                            cache_dir=self.ctx.cache_dir, device=str(self.device), seed=self.opts["seed"],
                            progress=self.ctx.progress, log=self.ctx.log)
            try:
                fitted = method_plugin(cell.row.method).build_untrained(cell.method_options, env)
                prepared = fitted.segmenter.prepare_for_timing(prep)
                if self.opts["cast_weights"] and self.opts["precision"] != "fp32":
                    prepared.update(speed_prep.cast_weights(fitted.segmenter, self.opts["precision"]))
                methods.append(_Method(cell, fitted, prepared))
                methods[-1].flops_key = self._flops_key(methods[-1])
            except Exception as exc:  # noqa: BLE001 - this cell fails, the others of the group are still timed
                self.results[i] = exc
                methods.append(None)
        self.steps.end()
        for m, seconds in zip(methods, self.steps.durations["build"]):
            if m is not None:
                m.phases_s["build"] = seconds
        return methods

    def _infer(self, m: _Method, batch, timer=None, grad_mode=torch.inference_mode, cache: bool = True):
        # FlopCounterMode's module hooks need autograd metadata that inference_mode strips: no_grad there.
        # A captured call keeps no autocast cast cache (it is freed on leaving autocast, under the graph's feet).
        with grad_mode(), speed.autocast_context(self.device, self.opts["precision"], cache=cache):
            kwargs = {"timer": timer} if timer is not None else {}
            return m.segmenter.predict_batch(batch, self.vocab, max_size=self.max_size, **kwargs)

    def _sample_peak(self, _round: int = 0) -> None:
        if self.gpu_peak is not None:
            self.gpu_peak.sample(PEAK_SAMPLE_S)
        elif self.known_peak is None:
            dtype = speed.peak_dtype(self.device, self.opts["precision"])
            self.peaks.append(speed.matmul_peak_tflops(self.device, dtype, seconds=PEAK_SAMPLE_S))

    def _begin_round(self, r: int, live: list[_Method]) -> None:
        if r == 0:  # the FLOP counts the warm-ups took (or found already taken) need no step of their own
            self.steps.replan("flops", sum(m.flops_in is None for m in live) if self._counting else 0)
        self.steps.begin("round", f"timed round {r + 1} of {self.opts['repeats']}")
        self._round = r
        self._sample_peak()

    def _warmup_call(self, m: _Method, timed):
        """The first warm-up call prepares the vocabulary (`Segmenter.prepare_vocabulary`) under the modes of the
        timed calls; where that leaves the call per-image work only and the stages come from the rounds (a CPU),
        that call is also the FLOP count (the counter dispatches through Python: nothing after it is timed)."""
        def warm(batch) -> None:
            if m.warmed:
                return timed(batch)
            m.warmed = True
            with torch.inference_mode(), speed.autocast_context(self.device, self.opts["precision"]):
                ahead = m.segmenter.prepare_vocabulary(self.vocab)
            # (not under compile: the counted call, under no_grad and the counter, would leave the compilation of
            # the timed calls' graph to the first timed round)
            if (self._counting and ahead and self.stages_in_rounds and not self.opts["compile"]
                    and not self._reuse_flops(m)):
                return self._count_flops(m, batch, "warm-up")
            return timed(batch)
        return warm

    def _time(self, methods: list[_Method | None]) -> dict[int, speed.Timing]:
        live = [m for m in methods if m is not None]
        fns = [self._timed_call(m) for m in live]
        timings, failures = speed.time_interleaved(
            fns, self.batches, self.device, warmup_rounds=self.opts["warmup"], repeats=self.opts["repeats"],
            budget_s=self.opts["budget_s"], shape_of=lambda bt: tuple(tuple(im.shape) for im in bt),
            progress=lambda _done, _total: self.steps.end(), before_round=lambda r: self._begin_round(r, live),
            before_warmup=lambda i: self.steps.begin("warm-up", f"warm up {live[i].cell.row.method}"),
            warmup_fns=[self._warmup_call(m, fn) for m, fn in zip(live, fns)])
        self.steps.drop("warm-up")  # the methods that failed to build are not warmed up
        self.steps.drop("round")  # rounds a time budget cut (none when every planned round ran)
        for m, seconds in zip(live, self.steps.durations["warm-up"]):
            m.phases_s["warm-up"] = seconds
        for j, exc in failures.items():
            self.results[methods.index(live[j])] = exc
        for m in live:
            if m.graphed is not None:
                m.prepared.update(m.graphed.record())
        return {id(m): timings[j] for j, m in enumerate(live) if j not in failures}

    def _timed_call(self, m: _Method):
        """The call the timed rounds make: replayed from CUDA graphs (`speed_prep.GraphedCall`) or eager."""
        if self.stages_in_rounds:
            return lambda batch: self._infer_staged(m, batch)
        if not self.graphs:
            return lambda batch: self._infer(m, batch)
        m.graphed = speed_prep.GraphedCall(lambda batch: self._infer(m, batch, cache=False))
        return m.graphed

    def _infer_staged(self, m: _Method, batch) -> None:
        """A timed call that also times its stages (a CPU: nothing synchronises); a timed round's are kept, one
        entry per round, like an instrumented pass's."""
        timer = speed.StageTimer(self.device)
        self._infer(m, batch, timer)
        if self._round is None:  # a warm-up call
            return
        if len(m.passes) <= self._round:
            m.passes.append([])
        m.passes[self._round].append({k: v / self.opts["batch_size"] for k, v in timer.ms.items()})
        if self._round == 0:
            for key, values in m.segmenter.counts.items():
                m.counts.setdefault(key, []).extend(values)

    def _breakdown(self, live: list[_Method]) -> None:
        """Instrumented passes, interleaved like the timed rounds, then one FLOP-counting pass per method."""
        b, n_passes = self.opts["batch_size"], self.opts["breakdown_passes"]
        for p in range(0 if self.stages_in_rounds else n_passes):
            self.steps.begin("pass", f"instrumented pass {p + 1} of {n_passes}")
            self._sample_peak()
            for m in [live[(j + p) % len(live)] for j in range(len(live))]:
                per_batch, counts = [], {}
                for batch in self.batches:
                    timer = speed.StageTimer(self.device)
                    self._infer(m, batch, timer)
                    per_batch.append({k: v / b for k, v in timer.ms.items()})
                    for key, values in m.segmenter.counts.items():
                        counts.setdefault(key, []).extend(values)
                m.passes.append(per_batch)
                m.counts = counts
        for m in live if self._counting else []:
            if m.flops_in is None and not self._reuse_flops(m):
                self.steps.begin("flops", f"count FLOPs of {m.cell.row.method}")
                self._count_flops(m, self.batches[0], "own call")
                self.steps.end()
                m.phases_s["flops"] = self.steps.durations["flops"][-1]
        self.steps.drop("flops")  # the methods not measured are not counted

    def _reuse_flops(self, m: _Method) -> bool:
        """Take the count of the same method on the same inputs from earlier in this process, if there is one."""
        hit = _FLOPS_COUNTED.get(m.flops_key)
        if hit is not None and m.flops_in is None:
            m.flops_in, m.flops = f"reused: counted for {hit[0]}", dict(hit[1])
        return hit is not None

    def _count_flops(self, m: _Method, batch, where: str) -> None:
        # FLOPs of the first batch only: counting dispatches every op through Python; the other images differ
        # only in size and N'.
        counter = speed.StageTimer(self.device, count_flops=True)
        with speed.no_grad_params(m.segmenter):
            self._infer(m, batch, counter, grad_mode=torch.no_grad)
        m.flops, m.flops_in = dict(counter.flops), where
        _FLOPS_COUNTED[m.flops_key] = (m.cell.id, dict(m.flops))

    def _flops_key(self, m: _Method) -> str:
        spec = method_plugin(m.cell.row.method).resolve(m.cell.method_options)
        shapes = [list(im.shape) for im in self.batches[0]]
        # the weights and images too: SimBaseline's N' (hence its FLOPs) follows its proposals on these images
        return json.dumps([m.cell.row.method, spec, m.fitted.weights, m.prepared, shapes, self.source,
                           self.opts["seed"], self.opts["classes"], self.opts["precision"], str(self.device)],
                          sort_keys=True, default=str)

    # ------------------------------------------------------------------------------------------ records

    def _result(self, m: _Method, timings: dict[int, speed.Timing], measured: list[_Method], group: str,
                ) -> CellResult:
        opts, device, b = self.opts, self.device, self.opts["batch_size"]
        timing = timings[id(m)]
        per_image = speed.Timing([t / b for t in timing.times_s], [t / b for t in timing.rounds_s])
        result: dict[str, Any] = {
            **per_image.summary(), "n_images": len(self.images), "images": self.source, "batch_size": b,
            "mode": "latency" if b == 1 else "throughput", "precision": opts["precision"],
            "channels_last": opts["channels_last"], "fold_norms": opts["fold_norms"], "compile": opts["compile"],
            "prepared": m.prepared,
            # where the group's wall time went (issue 28): this method's own steps, and the group's per kind
            "phases_s": dict(m.phases_s), "group_phases_s": self.steps.phases_s,
            "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "threads": torch.get_num_threads(), "text_cached": True, **self.tf32,
            "protocol": (f"interleaved: {len(measured)} method(s) timed round by round on the same images, the "
                         f"order rotated each round"),
            "paired": {"group": group, "cells": [o.cell.id for o in measured],
                       "fps_ratio": {o.cell.id: speed.paired_ratio(timing, timings[id(o)])
                                     for o in measured if o is not m}},
        }
        if m.passes:
            result.update(self._breakdown_figures(m, timing))
        for key, values in m.counts.items():  # e.g. SimBaseline's N' (CLIP passes): crops_per_image, crops_mean
            if values:
                result[f"{key}_per_image"] = values
                result[f"{key}_mean"] = sum(values) / len(values)
        result["flags"] = flags(result, opts["spread_limit"])
        return CellResult(speed=result, weights=m.fitted.weights, device=str(device), seed=opts["seed"],
                          extra={"images_source": self.source})

    def _breakdown_figures(self, m: _Method, timing: speed.Timing) -> dict[str, Any]:
        b, n_batches = self.opts["batch_size"], len(self.batches)
        names = list(dict.fromkeys(k for per_batch in m.passes for ms in per_batch for k in ms))

        def stage_median(k: str, i: int) -> float:  # batch i, median over passes (or rounds)
            return statistics.median(per_batch[i].get(k, 0.0) for per_batch in m.passes)

        stages_ms = {k: statistics.mean(stage_median(k, i) for i in range(n_batches)) for k in names}
        spreads = {k: speed.relative_spread([sum(pb[i].get(k, 0.0) for i in range(n_batches)) for pb in m.passes])
                   for k in names}
        figures: dict[str, Any] = {
            "stages_ms": stages_ms, "stages_ms_spread": spreads, "breakdown_passes": len(m.passes),
            "breakdown_in": "rounds" if self.stages_in_rounds else "passes",
            "dominant_stage": max(stages_ms, key=stages_ms.get) if stages_ms else None,
            "stages_note": STAGES_NOTE_ROUNDS if self.stages_in_rounds else STAGES_NOTE,
        }
        if not self.opts["gmac"]:
            return figures
        if self.gpu_peak is not None:
            peak, source, peak_info = self.gpu_peak.figures(self.known_peak)
        elif self.known_peak is not None:
            peak, source = self.known_peak
            peak_info: dict[str, Any] = {}
        else:
            peak = max(self.peaks)
            source = (f"measured: best of {len(self.peaks)} {PEAK_SAMPLE_S:g} s samples of a "
                      f"{speed.peak_dtype(self.device, self.opts['precision'])} matmul 1024^3 on {self.device}, "
                      f"taken before every round of this group")
            peak_info = {"peak_samples_tflops": list(self.peaks),
                         "peak_spread": (max(self.peaks) - min(self.peaks)) / max(self.peaks)}
        flops = sum(m.flops.values()) / b
        batch0_s = statistics.median(timing.times_s[0::n_batches]) / b  # calls are ordered round by round
        achieved = flops / batch0_s / 1e12
        return {
            **figures,
            "gmac_counted": GMAC_COUNTED.get(m.flops_in, f"{m.flops_in} in this process (the same method, "
                                                         f"resolved options, weights and inputs)"),
            "stage_gmac": {k: v / 2e9 / b for k, v in m.flops.items()},
            "gmac_of": f"batch 0 ({', '.join(str(tuple(im.shape[-2:])) for im in self.batches[0])})",
            "gmac": flops / 2e9, "achieved_tflops": achieved, "peak_tflops": peak, "peak_source": source,
            **peak_info, "peak_fraction": achieved / peak, "peak_percent": 100 * achieved / peak,
            **({"peak_percent_datasheet": 100 * achieved / peak_info["datasheet_peak_tflops"]}
               if "datasheet_peak_tflops" in peak_info else {}),
            "stage_peak_fraction": {
                k: (m.flops.get(k, 0) / b / (stage_median(k, 0) / 1000) / 1e12) / peak
                if stage_median(k, 0) > 0 else None for k in names},
        }


def flags(result: dict[str, Any], limit: float) -> dict[str, str]:
    """Figure -> why it cannot be trusted: its spread (or what it is computed from) exceeds ``limit``.

    Keys: ``fps`` and ``ms_per_image`` (the spread of the cell's round times: the same images each round, so
    it is noise, not image-to-image variation), ``fps/<cell>`` (a paired ratio), ``stages_ms.<stage>`` (its spread
    across passes, for a stage worth >= 10% of the total), ``stages_ms`` (every stage: they sum past the headline),
    ``peak_percent`` (the peak samples, or the timed rounds it divides)."""
    out: dict[str, str] = {}
    pct = f"{100 * limit:.0f}%"
    if result["rounds"] < 2:
        why = "a single timed round: no spread to judge it by"
        out.update({"fps": why, "ms_per_image": why})
    elif result["round_spread"] > limit:
        why = f"timed rounds spread {100 * result['round_spread']:.0f}% > {pct}"
        out.update({"fps": why, "ms_per_image": why})
        if "peak_percent" in result:  # the achieved rate divides the FLOPs by the timed calls
            out["peak_percent"] = why
    for other, ratio in result["paired"]["fps_ratio"].items():
        if ratio is not None and ratio["rounds"] < 2:
            out[f"fps/{other}"] = "a single paired round: no spread to judge it by"
        elif ratio is not None and ratio["spread"] > limit:
            out[f"fps/{other}"] = f"per-round ratios spread {100 * ratio['spread']:.0f}% > {pct}"
    if "stages_ms" in result:
        total = sum(result["stages_ms"].values())
        wide = {k: v for k, v in result["stages_ms_spread"].items()  # stages under a tenth of the total: noise
                if v > limit and result["stages_ms"][k] >= 0.1 * total}
        for k, v in wide.items():
            source = "its times in the timed rounds" if result.get("breakdown_in") == "rounds" else "instrumented passes"
            out[f"stages_ms.{k}"] = f"{source} spread {100 * v:.0f}% > {pct}"
        if total > (1 + limit) * result["ms_per_image"]:
            out["stages_ms"] = (f"stages sum to {total:.0f} ms, more than {pct} over the headline "
                                f"{result['ms_per_image']:.0f} ms")
        if result.get("peak_spread", 0.0) > limit:
            out["peak_percent"] = f"peak samples spread {100 * result['peak_spread']:.0f}% > {pct}"
    return out
