"""The small contracts between the runner, tasks and method plugins.

- A *method plugin* (registered in ``METHODS``) is an object with ``resolve(options) -> dict``: the full spec
  of the method with these options applied, raising ``ConfigError`` for an unknown or invalid option
  (`MethodPlugin`). A plugin that the segmentation, recall and speed tasks can use also builds a `Segmenter`
  (`SegmentationMethod`: ``fit`` trains, ``build_untrained`` builds for timing) and returns it in a `Fitted`.
- A *segmenter* (`Segmenter`) is everything a task may ask of a built method: predict one image or a batch for a
  `Vocabulary`, per-stage timing through a `Timer`, per-image counts, its device, and one hook that prepares it
  for timing (`TimingPrep`). Proposals for the recall task are a separate capability (`ProposalSource`). A test
  (tests/harness/test_contract_usage.py) fails if a module under ``harness/`` touches anything else.
- A *task* (registered in ``TASKS``) is what a benchmark does with a method: train and evaluate, time it,
  measure proposal recall. It has ``run(cell, ctx) -> CellResult`` and may have ``check(cell)`` to reject bad
  options before any cell runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .suite import Benchmark, MethodRow, Setting, thaw

if TYPE_CHECKING:  # torch is heavy; the runner imports this module without it
    import torch


class CellSkipped(Exception):  # noqa: N818 - not an error: the cell was not meant to run here
    """Raised by a task for a cell that does not run in this environment (e.g. ViT-L timing on a CPU by default).
    The record says so (status ``skipped``) and why; resume retries it, e.g. on a machine with a GPU."""


# ---------------------------------------------------------------------------------------------- methods


@runtime_checkable
class MethodPlugin(Protocol):
    """A registered method. ``description``: one line for ``harness list methods``; ``kind``: the shape of its
    pipeline (``one-pass``, ``multi-pass``, or a kind of its own), also listed.

    A plugin class subclasses this protocol (or `SegmentationMethod`) explicitly, and so inherits the defaults of
    the optional members below; the harness calls every member directly (no probing)."""

    description: str
    kind: str
    option_names: frozenset[str] | None = None
    """The options it takes; a suite's benchmark- and setting-level ``method_options`` then reach it only where it
    takes them (a proposal-free method is not given the proposal network's settings). None: all of them do."""

    def resolve(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """The method's full spec with ``options`` applied (JSON-able, for the record); ``ConfigError`` for an
        unknown or invalid option."""
        ...

    def benchmark_settings(self, options: Mapping[str, Any], dataset: str) -> dict[str, Any] | None:
        """What the method runs with on ``dataset`` (recorded with the cell), ``ConfigError`` for a setting that
        does not fit that dataset (checked for every cell before anything runs). None (the default): the method
        has no background decision, so its cells on benchmarks with a background class are recorded as not run."""
        return None


@dataclass(frozen=True)
class Cell:
    """One (benchmark, setting, method row) of a suite, with its options merged."""

    suite: str
    profile: str
    benchmark: Benchmark
    setting: Setting
    row: MethodRow
    task_options: Mapping[str, Any]
    method_options: Mapping[str, Any]
    table: str | None = None  # the paper table layout the suite prints

    @property
    def id(self) -> str:
        return f"{self.benchmark.name}/{self.setting.name}/{self.row.name}"

    def config(self) -> dict[str, Any]:
        """Everything that determines this cell's result (the suite name and descriptions excluded)."""
        return {
            "profile": self.profile,
            "benchmark": self.benchmark.name,
            "task": self.benchmark.task,
            "dataset": self.benchmark.dataset,
            "setting": self.setting.name,
            "method": self.row.name,
            "plugin": self.row.method,
            "task_options": thaw(self.task_options),
            "method_options": thaw(self.method_options),
        }

    @property
    def hash(self) -> str:
        blob = json.dumps(self.config(), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class RunContext:
    """Where and how cells run; shared by every cell of a run."""

    out_dir: Path
    cache_dir: Path
    data_root: Path | None = None
    device: str = "auto"
    progress: bool = True
    log: Any = print
    save_predictions: str | None = None  # "json" | "png": tasks that predict label maps write them (run --save-predictions)


@dataclass
class CellResult:
    """What a task returns for a cell; the runner turns it into a record."""

    metrics: dict[str, Any] = field(default_factory=dict)
    speed: dict[str, Any] = field(default_factory=dict)
    weights: dict[str, Any] = field(default_factory=dict)
    method_spec: dict[str, Any] = field(default_factory=dict)
    miou_convention: str | None = None
    confusion: Any = None
    evidence: Any = None  # harness.eval.per_image.Evidence: per-image counts, written beside the record
    device: str | None = None
    seed: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


Timer = Callable[[str], contextlib.AbstractContextManager]
"""``timer(stage)`` is a context manager a segmenter opens around each stage of its inference (the speed task
passes one that measures milliseconds and FLOPs per stage name). Stage names are the method's own; the
pipelines of this project use preprocess, proposals, text, clip, crops, head and postprocess."""


def no_timer(_: str) -> contextlib.AbstractContextManager:
    """The `Timer` that measures nothing (the default of `Segmenter.predict_batch`)."""
    return contextlib.nullcontext()


@dataclass(frozen=True)
class Vocabulary:
    """The classes a benchmark asks a segmenter to score, and what a method may know about them.

    - ``names``: the class names, in the order of the score channels a segmenter returns;
    - ``dataset``: the benchmark's dataset name (a method may pick per-dataset settings by it, e.g. SimBaseline's
      ensemble lambda), or None for a free class list (the demo);
    - ``seen``: one flag per class, True for a class seen in training (zero-shot benchmarks only; None on
      cross-dataset benchmarks and for free class lists: every class counts as unseen);
    - ``background``: the index of a background class if the benchmark has one (training-free methods assign
      low-confidence pixels to it), else None.
    """

    names: tuple[str, ...]
    dataset: str | None = None
    seen: tuple[bool, ...] | None = None
    background: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(self.names))
        if self.seen is not None:
            object.__setattr__(self, "seen", tuple(bool(s) for s in self.seen))
            if len(self.seen) != len(self.names):
                raise ValueError(f"seen has {len(self.seen)} flags for {len(self.names)} classes.")
        if self.background is not None and not 0 <= self.background < len(self.names):
            raise ValueError(f"background={self.background} is not a class index (0..{len(self.names) - 1}).")


@dataclass(frozen=True)
class TimingPrep:
    """How the speed task asks a segmenter to prepare itself before timing; every method gets the same request.

    - ``channels_last``: convolutions in channels-last memory format (where the method has convolutions);
    - ``fold_norms``: fold frozen normalisation layers into the convolution that feeds them (where the method
      has them: the proposal network's frozen BNs); the same function up to float rounding;
    - ``compile``: ``torch.compile`` every module on the per-image path (all CLIP passes included: SimBaseline's
      crop encoder as much as DeOP's dense CLIP);
    - ``precision``: ``fp32``, ``bf16`` or ``fp16``; the task runs inference under autocast for the latter two,
      a method may additionally cast what autocast does not reach.
    """

    channels_last: bool = False
    fold_norms: bool = False
    compile: bool = False
    precision: str = "fp32"


@runtime_checkable
class Segmenter(Protocol):
    """Everything a task may use of a built method (a test enforces that ``harness/`` uses nothing else).

    Scores: ``predict`` returns (K, H0, W0) float scores at the image's original size, one channel per class of
    ``vocab.names`` (argmax gives the label map). Whatever "void"/background handling the method has (DeOP's void
    embedding, SimBaseline's ensemble, a training-free method's background threshold) happens inside: the
    scores cover exactly the K classes asked for.
    """

    counts: dict[str, list[int]]
    """Per-image counts of the last ``predict``/``predict_batch`` call that the records report, one list entry
    per image, e.g. ``{"crops": [N'_1, ...]}`` for SimBaseline's CLIP passes; empty for a method without any."""

    @property
    def device(self) -> torch.device:
        """Where the method computes; tasks move labels and confusion matrices there."""
        ...

    def predict(self, image: torch.Tensor, vocab: Vocabulary, *, max_size: int = 2560) -> torch.Tensor:
        """image (3, H0, W0) uint8 RGB -> scores (K, H0, W0). ``max_size`` bounds the long side of the method's
        test-time resize (the dataset's test max size)."""
        ...

    def predict_batch(self, images: Sequence[torch.Tensor], vocab: Vocabulary, *, max_size: int = 2560,
                      timer: Timer = no_timer) -> list[torch.Tensor]:
        """Several images in one call (throughput mode); each result equals ``predict`` of that image up to float
        rounding. ``timer`` (see `Timer`) is opened around each stage."""
        ...

    def prepare_vocabulary(self, vocab: Vocabulary) -> bool:
        """Compute now, and keep, what depends on ``vocab`` alone (its text embeddings), under the grad and
        autocast modes of the calls to come, so that the next ``predict_batch`` with ``vocab`` does none of it.
        True: done, a call's work is per image only (the speed task on a CPU then counts FLOPs in the warm-up
        call instead of one more call); False (this default, inherited by a segmenter that subclasses this
        protocol): not offered, the first call does that work and the FLOPs are counted in a call of their own."""
        return False

    def prepare_for_timing(self, prep: TimingPrep) -> dict[str, Any]:
        """Apply ``prep`` before timing and return what was done (JSON-able, stored in the speed record), e.g.
        ``{"channels_last": ["maskformer"], "compiled": ["maskformer", "dense", "crop_encoder"]}``."""
        ...

    def parameters(self) -> Iterator[torch.nn.Parameter]:
        """Every parameter (a torch module's own): the FLOP counter switches their gradients off while counting."""
        ...


@runtime_checkable
class ProposalSource(Protocol):
    """The capability the recall task needs: class-agnostic proposal masks of one image."""

    def proposal_masks(self, image: torch.Tensor, *, max_size: int = 2560) -> torch.Tensor:
        """image (3, H0, W0) uint8 -> (Q, H0, W0) mask probabilities at the original size."""
        ...


@dataclass
class Fitted:
    """A built method, ready to predict, and what it is made of (for the record).

    ``weights``: the record's weights entry (CLIP identity, proposal backbone, stage hashes, or what was random);
    ``stages``: the training stages' metadata by name; ``spec``: the method's own resolved spec (its tools read it;
    tasks do not)."""

    name: str
    segmenter: Segmenter
    weights: dict[str, Any]
    stages: dict[str, Any] = field(default_factory=dict)
    spec: Any = None


@dataclass
class MethodEnv:
    """What a method needs to train its stages and predict: data, cache, device, schedules.

    ``schedules`` holds per-stage training overrides from the suite (``train.prompts``, ``train.proposals``,
    ``train.head``: iters, batch_size, lr, crop ...); a method uses its official recipe for everything else.
    """

    train_dataset: str
    data_root: Path | None
    cache_dir: Path
    device: str = "cpu"
    seed: int = 0
    schedules: dict[str, Any] = field(default_factory=dict)
    progress: bool = True
    log: Any = print


@runtime_checkable
class SegmentationMethod(MethodPlugin, Protocol):
    """A method plugin that the segmentation, recall and speed tasks can build."""

    def preflight(self, options: Mapping[str, Any]) -> list[str]:
        """What the method would miss before it starts (weights that cannot be found), as messages. Default:
        nothing."""
        return []

    def dataset_preflight(self, options: Mapping[str, Any], dataset: str) -> list[str]:
        """What the method would miss on ``dataset`` alone (a file it reads per dataset, such as FLOSS's template
        rankings), as messages, found with ``preflight`` before anything runs. Default: nothing."""
        return []

    def fit(self, options: Mapping[str, Any], env: MethodEnv) -> Fitted:
        """Train every stage the method needs (cached under ``env.cache_dir``) and return it ready to predict."""
        ...

    def build_untrained(self, options: Mapping[str, Any], env: MethodEnv) -> Fitted:
        """The method's inference graph without training (for timing: speed does not depend on the weights)."""
        ...


# ---------------------------------------------------------------------------------------------- tasks


@runtime_checkable
class Task(Protocol):
    """What a benchmark does with a method. A task class subclasses this protocol explicitly and inherits the
    defaults of the optional members; the runner calls every member directly."""

    option_names: tuple[str, ...] | None = None
    """The task options it takes: a suite's ``defaults`` reach it only where it takes them (None: all do)."""

    def run(self, cell: Cell, ctx: RunContext) -> CellResult: ...

    def check(self, cell: Cell) -> None:
        """Validate the cell's options before anything runs (``ConfigError``). Default: nothing to check."""
        return None

    def preflight(self, cell: Cell, ctx: RunContext) -> list[str]:
        """Missing data or weights of the cell, as messages, before anything runs. Default: none."""
        return []

    def skip_reason(self, cell: Cell, ctx: RunContext) -> str | None:
        """Why the cell will not run here (recorded as skipped up front, not counted by the progress bar), or
        None (the default)."""
        return None

    def group_key(self, cell: Cell) -> Any:
        """Consecutive cells of one key run together through `run_group` (e.g. the methods of one speed
        benchmark timed round by round); None (the default) runs the cell alone."""
        return None

    def run_group(self, cells: list[Cell], ctx: RunContext) -> list[CellResult | BaseException]:
        """One `CellResult` or exception per cell, in order. Default: `run` of each cell (an exception of one
        cell fails the whole group, as a single cell's does)."""
        return [self.run(cell, ctx) for cell in cells]
