"""The demo's method: which CLIP weights, which trained stages, and whether the output can mean anything.

Two honest sources of a segmenter (a training-free method, e.g. `--method sclip`, needs only its CLIP, and DINO
for ProxyCLIP: with real weights its output is real, no stages involved):
- untrained (default): the plugin's inference graph with random proposal network, prompts and head
  (`Plugin.build_untrained`); CLIP gets ``--weights`` (a file or an open_clip tag), or the method's pretrained
  default when it is on this machine, or else random weights. The output only shows that the code runs.
- trained (``--stages-from RECORD.json``): a record written by ``harness run`` for a segmentation cell names the
  method (``method_spec.plugin`` and the resolved spec) and the stage cache entries it trained
  (``method_spec.stage_hashes``: ``cache/<stage>/<hash>/final.pt``). The graph is rebuilt from that spec with
  the record's CLIP and the stages are loaded from ``--cache-dir``. Only inference options may be changed.

Either way `DemoModel.meaningless` lists every reason the pictures would be noise, and the demo says so loudly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import ConfigError, WeightsError

# Keys of a record's ``method_spec`` that are not method options.
RECORD_ONLY_KEYS = ("plugin", "stage_hashes")



# How the demo's warning names a frozen part of `Fitted.weights` (other parts by their key).
FROZEN_PART_LABELS = {"clip": "CLIP", "dino": "DINO", "dinov2": "DINOv2", "projection": "Talk2DINO's projection"}

@dataclass
class DemoModel:
    """A ready segmenter and what it is made of."""

    method: str
    segmenter: Any
    spec: Any
    weights: dict[str, Any]
    meaningless: list[str] = field(default_factory=list)
    source: str = "untrained"

    def describe(self) -> str:
        clip = self.weights.get("clip", {})
        clip_text = clip.get("path") or clip.get("tag") or clip.get("source", "?")
        return f"method {self.method} ({self.source}), CLIP {clip.get('arch', '?')}: {clip_text}"


def load_demo_model(*, method: str | None, options: Mapping[str, Any], weights: str | None,
                    stages_from: str | Path | None, cache_dir: Path, device: str = "cpu", seed: int = 0,
                    log: Callable[[str], None] = print) -> DemoModel:
    """Build the segmenter the demo uses (see the module docstring). ``options`` override method options
    (with ``stages_from`` only inference options); ``weights`` is a CLIP file, tag, or "random"."""
    from harness.registries import METHODS

    record = None
    if stages_from is not None and method is not None and METHODS.get(method).kind == "training-free":
        raise ConfigError(f"--method {method} is training-free: it has no trained stages, so --stages-from does not "
                          "apply. Pass --weights (the CLIP file) instead.")
    if stages_from is not None:
        record = _load_training_record(Path(stages_from))
        plugin_name = record["method_spec"]["plugin"]
        if method is not None and method != plugin_name:
            raise ConfigError(f"--method {method} disagrees with the record {stages_from}, which trained "
                              f"{plugin_name!r}. Leave --method out to use the record's method.")
        method = plugin_name
        base = {k: v for k, v in record["method_spec"].items() if k not in RECORD_ONLY_KEYS}
        _check_inference_only(options, stages_from)
        options = {**base, **options}
    method = method or "deop"
    plugin = METHODS.get(method)
    options = dict(options)
    explicit_weights = weights is not None or record is not None
    if weights is not None:
        options["clip_weights"] = str(Path(weights).resolve()) if Path(weights).exists() else weights
    meaningless: list[str] = []
    spec = plugin.spec(options)
    if getattr(spec, "needs_dino", False) and spec.dino_weights != "random":
        from methods.components.dino import dino_weights_problem

        problem = dino_weights_problem(spec.dino_arch, spec.dino_weights)
        if problem:
            options["dino_weights"] = "random"
            meaningless.append(f"DINO has random weights: {problem}")
    elif getattr(spec, "needs_dino", False):
        meaningless.append("DINO has random weights ('random' was asked for).")
    if spec.clip_weights != "random":
        problems = plugin.preflight(options)
        if problems and explicit_weights:
            raise WeightsError(" ".join(problems))
        if problems:
            options["clip_weights"] = "random"
            meaningless.append(f"CLIP has random weights: the method's default weights are not on this machine. "
                               f"{' '.join(problems)}")
    if plugin.spec(options).clip_weights == "random" and not meaningless:
        meaningless.append("CLIP has random weights ('random' was asked for).")

    from harness.api import MethodEnv

    clip_seed = seed
    if record is not None and record["weights"].get("clip", {}).get("source") == "random":
        clip_seed = int(record["weights"]["clip"].get("seed") or 0)  # the very CLIP its stages were trained on
    env = MethodEnv(train_dataset=str(record.get("train_dataset") or record["dataset"]) if record else "none",
                    data_root=None, cache_dir=Path(cache_dir), device=device, seed=clip_seed, progress=False,
                    log=log)
    fitted = plugin.build_untrained(options, env)
    fallback = (fitted.weights.get("clip") or {}).get("fallback")
    if explicit_weights and fallback:  # build_untrained falls back to random CLIP (for timing); asked-for weights must load
        raise WeightsError(f"--weights: {fallback}")
    # every other frozen part the build recorded as random (Talk2DINO's DINOv2 and projection, LPOSS's graph DINO)
    named = " ".join(meaningless)
    for part, info in fitted.weights.items():
        label = FROZEN_PART_LABELS.get(part, part)
        if isinstance(info, dict) and info.get("source") == "random" and f"{label} has random weights" not in named:
            meaningless.append(f"{label} has random weights ({info.get('arch') or part}).")
    if record is None:
        if plugin.kind != "training-free":  # a training-free method is complete with its CLIP (and DINO)
            meaningless.append("the proposal network, prompts and head are untrained (random); pass --stages-from "
                               "RECORD.json (a segmentation record of `harness run`) with its --cache-dir.")
        return DemoModel(method=method, segmenter=fitted.segmenter, spec=fitted.spec, weights=fitted.weights,
                         meaningless=meaningless,
                         source="training-free" if plugin.kind == "training-free" else "untrained")
    _check_same_clip(record, fitted.weights.get("clip", {}), stages_from)
    stages = _load_stages(fitted, record, Path(cache_dir), stages_from)
    train_dataset = str(record.get("train_dataset") or record["dataset"])
    if train_dataset.startswith("synthetic"):
        meaningless.append(f"the stages were trained on the synthetic dataset {train_dataset!r} (a smoke run), "
                           "not on real images.")
    weights_record = {**fitted.weights, "stages": stages}
    return DemoModel(method=method, segmenter=fitted.segmenter, spec=fitted.spec, weights=weights_record,
                     meaningless=meaningless, source=f"stages from {stages_from}")


def _load_training_record(path: Path) -> dict[str, Any]:
    from harness.results import load_record

    record = load_record(path)
    hashes = record["method_spec"].get("stage_hashes")
    if record.get("status") != "ok" or not isinstance(hashes, dict) or "proposals" not in hashes:
        raise ConfigError(f"{path} does not name trained stages (status {record.get('status')!r}, stage_hashes "
                          f"{hashes!r}). Pass the record of a segmentation cell that ran to the end (speed cells "
                          "never train their stages).")
    if "plugin" not in record["method_spec"]:
        raise ConfigError(f"{path}: method_spec has no 'plugin'; it was not written by `harness run`.")
    return record


def _check_inference_only(options: Mapping[str, Any], stages_from: Path | str) -> None:
    from methods.pipelines.assemble import INFERENCE_ONLY

    changed = sorted(set(options) - set(INFERENCE_ONLY) - {"clip_weights"})
    if changed:
        raise ConfigError(f"--option {', '.join(changed)}: with --stages-from {stages_from} only inference options "
                          f"({', '.join(INFERENCE_ONLY)}) may change; the others define the trained stages.")


def _check_same_clip(record: dict[str, Any], loaded: Mapping[str, Any], stages_from: Path | str) -> None:
    """Stages trained on one CLIP are noise on another: refuse a mismatch we can see."""
    trained = record["weights"].get("clip", {})
    if trained.get("source") == "random" and loaded.get("source") != "random":
        raise WeightsError(f"the stages in {stages_from} were trained on a randomly initialised CLIP; they do not "
                           "fit pretrained weights. Leave out --weights, or use a record trained on real weights.")
    if trained.get("source") != "random" and loaded.get("source") == "random":
        name = trained.get("path") or trained.get("tag")
        raise WeightsError(f"the stages in {stages_from} were trained on CLIP weights {name!r}, which cannot be "
                           "loaded here. Pass that file with --weights PATH.")
    a, b = trained.get("sha256"), loaded.get("sha256")
    if a and b and a != b:
        raise WeightsError(f"the stages in {stages_from} were trained on CLIP weights with sha256 {a[:12]}, but the "
                           f"weights given have sha256 {b[:12]}. Pass the file they were trained on with --weights.")


def _load_stages(fitted, record: dict[str, Any], cache_dir: Path, stages_from: Path | str) -> dict[str, str]:
    """Load every stage the record names into the segmenter; each must be complete in the cache."""
    import torch

    from methods.stages.head import load_head
    from methods.stages.prompts import load_prompts
    from methods.stages.proposals import load_proposals

    segmenter, spec = fitted.segmenter, fitted.spec
    hashes: dict[str, str] = dict(record["method_spec"]["stage_hashes"])
    needed = {"proposals"} | ({"prompts"} if spec.text_prompt != "templates" else set()) | (
        {"head"} if spec.kind == "one-pass" and spec.trains_head else set())
    missing = sorted(needed - set(hashes))
    if missing:
        raise ConfigError(f"{stages_from} names no {', '.join(missing)} stage, which method {fitted.name} needs.")
    loaders = {"prompts": lambda d: load_prompts(segmenter.text, d),
               "proposals": lambda d: load_proposals(segmenter.maskformer, d),
               "head": lambda d: load_head(segmenter, d)}
    for stage in sorted(needed, key=("prompts", "proposals", "head").index):
        directory = cache_dir / stage / hashes[stage]
        if not (directory / "done.json").exists() or not (directory / "final.pt").exists():
            raise WeightsError(f"stage {stage} of {stages_from} is not in the cache: {directory}/final.pt is missing "
                               f"or incomplete. Pass the --cache-dir that `harness run` used (default ./cache), "
                               "or re-run the suite to train it.")
        if stage == "head":  # load_head is not strict: check that every stored tensor has a home
            stored = torch.load(directory / "final.pt", map_location="cpu", weights_only=True)
            strangers = sorted(set(stored) - set(segmenter.state_dict()))
            if strangers:
                raise WeightsError(f"{directory}/final.pt holds tensors this {fitted.name} has no place for "
                                   f"({', '.join(strangers[:5])}...): it was trained for another method spec.")
        loaders[stage](directory)
    segmenter.eval()
    return {stage: hashes[stage] for stage in needed}
