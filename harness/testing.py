"""A kit for plugin authors: `check_plugin(name, options)` runs on a registered method the contract checks every
in-tree plugin passes (tests/methods/test_contract.py runs it on each of them), so an out-of-tree plugin gets the
same guarantees as ours:

1. ``protocol``: it meets `harness.api.SegmentationMethod` (subclassing it gives the optional members' defaults);
2. ``listing``: ``harness list methods`` shows its name, kind and one-line description;
3. ``options``: ``resolve`` gives a JSON-able spec that resolves to itself, and an unknown option is a `ConfigError`
   naming it;
4. ``dry-run``: ``preflight`` gives a list of messages and ``benchmark_settings`` None or a mapping, without
   building anything (what ``run --dry-run`` asks);
5. ``predict``: ``build_untrained`` gives a `Segmenter` whose scores have one channel per class at the image's
   size, finite, and whose batched prediction equals the one-by-one one;
6. ``timing``: ``predict_batch`` opens at least one stage of the timer, ``prepare_for_timing`` says what it did
   (JSON-able), ``counts`` is a mapping of per-image lists and ``parameters()`` iterates.

Use it from your package's tests: ``assert check_plugin("my-method", {"clip_arch": "tiny-vit-p16", ...})``.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .api import MethodEnv, SegmentationMethod, Segmenter, TimingPrep, Vocabulary
from .errors import ConfigError
from .registries import METHODS

NAMES = ("red disc", "blue square", "grass")


def check_plugin(name: str, options: Mapping[str, Any] | None = None, *, dataset: str = "synthetic_coco",
                 cache_dir: str | Path | None = None) -> list[str]:
    """Run the contract checks on the registered method ``name`` built with ``options`` (make them tiny: e.g.
    ``clip_arch: tiny-vit-p16, clip_weights: random``); returns the names of the checks passed, raises
    `AssertionError` saying what failed."""
    import torch

    options = dict(options or {})
    plugin = METHODS.get(name)
    assert isinstance(plugin, SegmentationMethod), (
        f"{name}: does not meet harness.api.SegmentationMethod (subclass it and implement resolve, fit, "
        f"build_untrained)")
    passed = ["protocol"]

    from .commands import list as list_command

    listing = io.StringIO()
    with contextlib.redirect_stdout(listing):
        list_command.run(_Args(kind="methods"))
    line = next((row for row in listing.getvalue().splitlines() if row.split()[:1] == [name]), "")
    assert plugin.kind and plugin.description and plugin.kind in line and plugin.description in line, (
        f"{name}: 'harness list methods' does not show its kind and description: {line!r}")
    passed.append("listing")

    spec = plugin.resolve(options)
    assert json.loads(json.dumps(spec)) == json.loads(json.dumps(spec, default=str)), f"{name}: spec not JSON-able"
    again = plugin.resolve(spec)
    assert json.dumps(again, sort_keys=True) == json.dumps(spec, sort_keys=True), (
        f"{name}: its resolved spec does not resolve to itself: {spec} -> {again}")
    try:
        plugin.resolve({**options, "no_such_option_xyz": 1})
    except ConfigError as exc:
        assert "no_such_option_xyz" in str(exc), f"{name}: the unknown-option error does not name it: {exc}"
    else:
        raise AssertionError(f"{name}: an unknown option was accepted")
    passed.append("options")

    problems = plugin.preflight(options)
    assert isinstance(problems, list) and all(isinstance(p, str) for p in problems), f"{name}: preflight {problems!r}"
    settings = plugin.benchmark_settings(options, dataset)
    assert settings is None or isinstance(settings, Mapping), f"{name}: benchmark_settings gave {settings!r}"
    passed.append("dry-run")

    with tempfile.TemporaryDirectory() as tmp:
        env = MethodEnv(train_dataset=dataset, data_root=None, cache_dir=Path(cache_dir or tmp), device="cpu",
                        progress=False, log=lambda *a: None)
        segmenter = plugin.build_untrained(options, env).segmenter
    assert isinstance(segmenter, Segmenter), (
        f"{name}: build_untrained did not give a harness.api.Segmenter (every member, the optional ones too: "
        f"subclass harness.api.Segmenter after nn.Module to inherit their defaults, e.g. prepare_vocabulary)")
    generator = torch.Generator().manual_seed(0)
    images = [torch.randint(0, 256, (3, 50, 70), dtype=torch.uint8, generator=generator) for _ in range(2)]
    vocab = Vocabulary(NAMES, dataset=dataset, seen=(True, True, False))
    scores = segmenter.predict(images[0], vocab)
    assert tuple(scores.shape) == (len(NAMES), 50, 70), f"{name}: scores of shape {tuple(scores.shape)}"
    assert torch.isfinite(scores).all(), f"{name}: non-finite scores"
    stages: list[str] = []

    def timer(stage: str) -> contextlib.AbstractContextManager:
        stages.append(stage)
        return contextlib.nullcontext()

    batched = segmenter.predict_batch(images, vocab, timer=timer)
    for image, one in zip(images, batched):
        torch.testing.assert_close(one, segmenter.predict(image, vocab), rtol=1e-4, atol=1e-5)
    passed.append("predict")

    assert stages, f"{name}: predict_batch opened no stage of the timer (no per-stage breakdown)"
    assert isinstance(segmenter.counts, Mapping) and all(isinstance(v, list) for v in segmenter.counts.values())
    prepared = segmenter.prepare_for_timing(TimingPrep())
    json.dumps(prepared)
    sum(1 for _ in segmenter.parameters())
    passed.append("timing")
    return passed


class _Args:
    def __init__(self, **values: Any) -> None:
        self.kind, self.origin = values["kind"], False
