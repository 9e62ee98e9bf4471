"""The second reliability sweep's own cases (issue 27), beyond the ones the issue named: each is one bad input,
tried as a hostile but fair user would, with the outcome it must have now: exit 2 with a message naming the
problem (``clear``) or a safe, verified recovery (``safe``, exit 0 or 1 with what happened said).

``before`` is what the code before the sweep did (commit 3b19463, measured with the same runner): ``clear`` and
``safe`` held up already; ``traceback``, ``silent`` (accepted, then a wrong or meaningless result, or a memory or
time bomb later) and ``bad advice`` are what this sweep fixed. `tests/reliability/SWEEP_2.md` is this list as a
table; `test_second_sweep.py` runs every case.
"""

from __future__ import annotations

import contextlib
import io
import json
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HEAD = "suite: s\nmethods: [deop]\nbenchmarks: [{name: b, task: segmentation, dataset: synthetic_coco}]\n"
SMOKE, TF = "suites/smoke.yaml", "suites/training_free.yaml"
RECORDS = "results/miniworld/records/table3_ablation/seed0"


@dataclass(frozen=True)
class Case:
    id: str
    area: str
    run: Callable[[Path], tuple[int, str]]  # tmp folder -> (exit code, everything printed or the error)
    code: int
    text: str  # must appear in what was printed
    before: str  # outcome before the sweep: clear, safe, traceback, silent, bad advice


def cli(*args) -> tuple[int, str]:
    from harness.__main__ import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse's own exit 2 with its usage message
            code = exc.code
    return code, out.getvalue() + err.getvalue()


def call(fn: Callable[[], object]) -> tuple[int, str]:
    """A library entry point: a HarnessError is what the CLI turns into exit 2 with its message."""
    from harness.errors import HarnessError

    try:
        fn()
    except HarnessError as exc:
        return exc.exit_code, f"error: {exc}"
    return 0, ""


def _file(tmp: Path, name: str, content: str | bytes) -> Path:
    path = tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def suite_run(text: str | bytes, *extra):
    return lambda tmp: cli("run", _file(tmp, "s.yaml", text), "--dry-run", *extra)


def dry(suite: str, *extra):
    return lambda tmp: cli("run", suite, *(["--profile", "smoke"] if suite == TF else []), "--dry-run", *extra)


def _record_dir(tmp: Path, edit: Callable[[dict], dict], confusion=None) -> Path:
    source = next(Path(RECORDS).rglob("deop.json"))
    record = edit(json.loads(source.read_text()))
    folder = tmp / "runs" / "b" / "default"
    _file(folder, "m.json", record if isinstance(record, str) else json.dumps(record))
    if confusion is not None:
        np.save(folder / "m.confusion.npy", confusion, allow_pickle=True)
    return tmp / "runs"


def table_of(edit: Callable[[dict], dict], confusion=None):
    return lambda tmp: cli("table", _record_dir(tmp, edit, confusion))


def _matrix() -> np.ndarray:
    return np.load(next(Path(RECORDS).rglob("deop.confusion.npy")))


def _negative() -> np.ndarray:
    m = _matrix().copy()
    m[0, 1] -= m[0, 1] + 5
    return m


def reference(text: str):
    return lambda tmp: cli("check", RECORDS, "--against", _file(tmp, "ref.yaml", text))


class _Runs:
    def __reduce__(self):
        import os

        return os.system, ("echo ran",)


def _crafted_pt(tmp: Path) -> Path:
    import torch

    path = tmp / "w.pt"
    torch.save({"state_dict": _Runs()}, path)
    return path


def _pickled(tmp: Path, obj) -> Path:
    path = tmp / "R.pkl"
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=2)
    return path


def clip_file(tmp):
    from methods.components.weights import build_clip

    return call(lambda: build_clip("tiny-vit-p16", str(_crafted_pt(tmp)), "cpu"))


def dino_file(tmp):
    from methods.components.dino import build_dino

    return call(lambda: build_dino("tiny-dino-p8", str(_crafted_pt(tmp)), "cpu"))


def backbone(make: Callable[[Path], Path]):
    def run(tmp):
        import timm

        from methods.components.proposals import load_backbone_weights

        body = timm.create_model("resnet18", pretrained=False, num_classes=0)
        return call(lambda: load_backbone_weights(body, make(tmp)))
    return run


def demo(*extra, image: Callable[[Path], Path] | None = None, classes: str = "a, b"):
    def run(tmp):
        from PIL import Image

        if image is None:
            path = tmp / "a.png"
            Image.new("RGB", (64, 48), (10, 200, 30)).save(path)
        else:
            path = image(tmp)
        filled = [str(_crafted_pt(tmp)) if a == "{w}" else a.replace("{tmp}", str(tmp)) for a in extra]
        return cli("demo", path, "--classes", classes, "--out", tmp / "demo", "--option", "clip_arch=tiny-vit-p16",
                   "--option", "proposals={preset: smoke}", "--option", "prompt_layers=[1, 2]", "--option",
                   "test_short_side=64", "--device", "cpu", "--no-progress", *filled)
    return run


def _float_tiff(tmp: Path) -> Path:
    from PIL import Image

    Image.fromarray(np.ones((48, 64), np.float32)).save(tmp / "f.tif")
    return tmp / "f.tif"


def evaluate(make: Callable[[Path, list[Path]], Path], *extra):
    """`evaluate synthetic_voc` of predictions made from a copy of the ground truth by `make`."""
    def run(tmp):
        import shutil

        from harness.data.synthetic import ensure_synthetic

        root = ensure_synthetic("synthetic_voc", tmp / "data", n_train=1, n_val=2, size=32)
        labels = sorted((root / "synthetic_voc/annotations_detectron2/val").glob("*.png"))
        folder = tmp / "pred"
        folder.mkdir()
        for label in labels:
            shutil.copy(label, folder / label.name)
        pred = make(folder, labels)
        out = extra[0].replace("{tmp}", str(tmp)) if extra else tmp / "score.json"
        return cli("evaluate", "synthetic_voc", "--pred", pred, "--data-root", root, "--out", out)
    return run


def _rgb(folder, labels):
    from PIL import Image

    Image.new("RGB", Image.open(labels[0]).size).save(folder / labels[0].name)
    return folder


def _zeros(folder, labels):
    """Valid predictions: class 0 everywhere, at each label's size."""
    from PIL import Image

    for label in labels:
        Image.new("L", Image.open(label).size).save(folder / label.name)
    return folder


def _json(entries):
    def make(folder, labels):
        return _file(folder, "preds.json", entries if isinstance(entries, str | bytes) else json.dumps(entries))
    return make


def _entry(stem="2008_000003", size=(32, 48), category=1):
    return [{"file_name": f"{stem}.jpg", "category_id": category, "segmentation": {"size": list(size), "counts": "0"}}]


CASES: list[Case] = [
    # -- suites and overrides (all before any work: run --dry-run) --
    Case("suite-empty", "suite", suite_run(""), 2, "must be a mapping", "clear"),
    Case("suite-is-a-list", "suite", suite_run("- a\n- b\n"), 2, "got a list", "clear"),
    Case("methods-a-string", "suite", suite_run("suite: s\nmethods: deop\nbenchmarks: []\n"), 2,
         "methods: must be a list", "clear"),
    Case("dataset-an-integer", "suite", suite_run(HEAD.replace("synthetic_coco", "5")), 2,
         "dataset: must be a string", "clear"),
    Case("threads-a-billion", "suite", suite_run(HEAD + "threads: 1000000000\n"), 2, "at most 1024", "silent"),
    Case("threads-true", "suite", suite_run(HEAD + "threads: true\n"), 2, "must be an integer", "clear"),
    Case("include-itself", "suite", lambda tmp: cli("run", _file(tmp, "i.yaml", HEAD + "include: i.yaml\n"),
                                                   "--dry-run"), 2, "includes may not be nested", "clear"),
    Case("include-a-folder", "suite", lambda tmp: ((tmp / "d").mkdir(), cli(
        "run", _file(tmp, "i.yaml", HEAD + "include: d\n"), "--dry-run"))[1], 2, "is a directory", "clear"),
    Case("include-non-utf8", "suite", lambda tmp: (_file(tmp, "b.yaml", b"suite: x\xff\n"), cli(
        "run", _file(tmp, "i.yaml", HEAD + "include: b.yaml\n"), "--dry-run"))[1], 2, "is not UTF-8 text",
         "traceback"),
    Case("set-undefined-alias", "suite", dry(SMOKE, "--set", "defaults.seed=*a"), 2, "found undefined alias",
         "clear"),
    Case("set-recursive-alias", "suite", dry(SMOKE, "--set", "defaults.seed=&a [*a]"), 2,
         "nested too deeply to parse", "traceback"),
    Case("suite-recursive-alias", "suite", suite_run(HEAD + "x: &a [*a]\n"), 2, "nested too deeply", "traceback"),
    Case("set-without-equals", "suite", dry(SMOKE, "--set", "defaults.seed"), 2, "expected KEY=VALUE", "clear"),
    Case("set-unknown-row", "suite", dry(SMOKE, "--set", "methods.nope.options.x=1"), 2,
         "has no entry named 'nope'", "clear"),
    Case("suite-name-empty", "suite", suite_run(HEAD.replace("suite: s", "suite: ''")), 2,
         "must be a non-empty string", "silent"),
    Case("alpha-nan", "suite", dry(SMOKE, "--set", "methods.deop.options.alpha=[.nan]"), 2,
         "option alpha=nan must be a finite number", "clear"),
    Case("max-images-negative", "suite", dry(SMOKE, "--set", "defaults.max_images=-1"), 2,
         "max_images=-1 must be an integer in [1, inf]", "silent"),
    Case("seed-nan", "suite", dry(SMOKE, "--set", "defaults.seed=.nan"), 2, "seed=nan has the wrong type", "clear"),
    Case("seed-negative", "suite", dry(SMOKE, "--set", "defaults.seed=-1"), 2, "seed=-1 must be an integer",
         "silent"),
    Case("synthetic-size-inf", "suite", dry(SMOKE, "--set", "defaults.synthetic.size=.inf"), 2,
         "synthetic.size=inf must be an integer in [16, 2048]", "silent"),
    Case("synthetic-size-negative", "suite", dry(SMOKE, "--set", "defaults.synthetic.size=-5"), 2,
         "synthetic.size=-5", "silent"),
    Case("synthetic-no-val-images", "suite", dry(SMOKE, "--set", "defaults.synthetic.n_val=0"), 2,
         "synthetic.n_val=0", "silent"),
    Case("synthetic-size-a-million", "suite", dry(SMOKE, "--set", "defaults.synthetic.size=1000000"), 2,
         "synthetic.size=1000000", "silent"),
    Case("threads-flag-negative", "suite", dry(SMOKE, "--threads", "-1"), 2, "--threads must be a positive", "clear"),
    Case("yaml-tab-indent", "suite", suite_run("suite: s\nmethods:\n\t- deop\n"), 2, "found character '\\t'",
         "clear"),
    Case("suite-with-bom", "suite", suite_run("\ufeff" + HEAD.replace("[deop]", "[{name: deop, options: {clip_weights: random}}]")), 0, "1 cells; records would go under", "safe"),
    Case("lr-inf", "suite", dry(SMOKE, "--set", "defaults.train.prompts.lr=.inf"), 2,
         "train.prompts.lr must be a number > 0, got inf", "silent"),
    Case("deop-short-side-a-billion", "suite", dry(SMOKE, "--set", "methods.deop.options.test_short_side=1000000000"),
         2, "option test_short_side=1000000000 must be <= 8192", "silent"),
    Case("tf-short-side-a-billion", "suite", dry(TF, "--set", "methods.sclip.options.short_side=1000000000"), 2,
         "option short_side=1000000000 must be <= 8192", "silent"),
    Case("tf-max-long-side-a-billion", "suite", dry(TF, "--set", "methods.sclip.options.max_long_side=1000000000"),
         2, "option max_long_side=1000000000 must be <= 8192", "silent"),
    Case("tf-pamr-steps-a-billion", "suite", dry(TF, "--set", "methods.naclip.options.pamr_steps=1000000000"), 2,
         "option pamr_steps=1000000000 must be <= 1000", "silent"),
    Case("tf-pamr-dilation-a-billion", "suite", dry(TF, "--set", "methods.naclip.options.pamr_dilations=[1000000000]"),
         2, "option pamr_dilations=1000000000 must be <= 1024", "silent"),
    Case("tf-prob-thd-nan", "suite", dry(TF, "--set", "methods.sclip.options.prob_thd=.nan"), 2,
         "option prob_thd=nan must be a finite number", "clear"),
    Case("tf-names-file-missing", "suite", dry(TF, "--set", "methods.sclip.options.names=/nope.txt"), 2,
         "name file /nope.txt cannot be read", "clear"),
    Case("out-longer-than-path-max", "paths", lambda tmp: cli("run", SMOKE, "--dry-run", "--out",
                                                             tmp.joinpath(*["d" * 250] * 17)), 2,
         "too long for the file system", "traceback"),
    Case("out-component-over-255", "paths", lambda tmp: cli("run", SMOKE, "--dry-run", "--out", tmp / ("d" * 256)),
         2, "a component of 256", "traceback"),
    # -- records, references, tables --
    Case("check-against-a-folder", "records", lambda tmp: cli("check", RECORDS, "--against", tmp), 2,
         "cannot be read (Is a directory)", "traceback"),
    Case("reference-checks-a-dict", "records", reference("checks: {a: 1}\n"), 2, "non-empty 'checks' list", "clear"),
    Case("reference-value-inf", "records", reference(
        "checks:\n- {cell: a, metric: hiou, value: .inf, tolerance: 1, direction: higher}\n"), 2,
         "value must be a number (a finite one), got inf", "silent"),
    Case("reference-ratio-malformed", "records", lambda tmp: cli("reference", RECORDS, "--out", tmp / "r.yaml",
                                                                "--ratio", "a:b"), 2, "expected CELL:OVER:METRIC",
         "clear"),
    Case("table-format-unknown", "records", lambda tmp: cli("table", RECORDS, "--format", "foo"), 2,
         "invalid choice: 'foo'", "clear"),
    Case("table-of-an-empty-folder", "records", lambda tmp: cli("table", tmp), 0, "(no records under", "safe"),
    Case("record-a-json-list", "records", table_of(lambda r: "[1, 2]"), 2, "is not a harness record", "clear"),
    Case("record-metrics-a-list", "records", table_of(lambda r: {**r, "metrics": [1], "confusion_file": None}), 2,
         "metrics is list, not a mapping", "silent"),
    Case("record-miou-a-string", "records", table_of(lambda r: {**r, "metrics": {"miou": "high"},
                                                                "confusion_file": None}), 2,
         "metrics.miou is 'high', not a number", "silent"),
    Case("record-status-unknown", "records", table_of(lambda r: {**r, "status": "great", "confusion_file": None}),
         2, "status 'great' is not one of", "silent"),
    Case("record-confusion-object-array", "records", table_of(lambda r: {**r, "confusion_file": "m.confusion.npy"},
                                                              np.array([{"a": 1}], dtype=object)), 2,
         "Object arrays cannot be loaded", "clear"),
    Case("record-confusion-float", "records", table_of(lambda r: {**r, "confusion_file": "m.confusion.npy"},
                                                       _matrix().astype(np.float64)), 0, "DeOP", "safe"),
    Case("record-confusion-negative", "records", table_of(lambda r: {**r, "confusion_file": "m.confusion.npy"},
                                                          _negative()), 2, "gives IoU", "clear"),
    Case("record-confusion-file-outside", "records", table_of(lambda r: {**r, "confusion_file": "../../../x.npy"}),
         2, "is not a file name beside the record", "traceback"),
    # -- weights and pickles --
    Case("clip-weights-a-crafted-pickle", "weights", clip_file, 2, "holds Python objects (posix.system)",
         "bad advice"),
    Case("dino-weights-a-crafted-pickle", "weights", dino_file, 2, "holds Python objects (posix.system)",
         "bad advice"),
    Case("backbone-pt-a-crafted-pickle", "weights", backbone(_crafted_pt), 2, "holds Python objects (posix.system)",
         "bad advice"),
    Case("backbone-pkl-object-arrays", "weights", backbone(lambda tmp: _pickled(
        tmp, {"model": {"a": np.array(["x"], dtype=object)}})), 2, "holds non-numeric arrays", "traceback"),
    Case("backbone-pkl-a-list", "weights", backbone(lambda tmp: _pickled(tmp, [1, 2])), 2,
         "holds no name -> array dict", "clear"),
    Case("backbone-pkl-truncated", "weights", backbone(lambda tmp: _file(
        tmp, "R.pkl", pickle.dumps({"model": {}}, protocol=2)[:9])), 2, "is not a readable detectron2 pickle",
         "clear"),
    Case("demo-weights-a-crafted-pickle", "weights", demo("--weights", "{w}"), 2, "--weights: asked for",
         "traceback"),
    # -- evaluate --
    Case("pred-png-in-colour", "evaluate", evaluate(_rgb), 2, "has image mode 'RGB'", "clear"),
    Case("pred-png-empty-file", "evaluate", evaluate(lambda f, ls: (_file(f, ls[0].name, b""), f)[1]), 2,
         "cannot be read", "clear"),
    Case("pred-json-a-dict", "evaluate", evaluate(_json({"a": 1})), 2, "holds a JSON dict, not a list", "clear"),
    Case("pred-json-category-bool", "evaluate", evaluate(_json(_entry(category=True))), 2,
         "category_id True, not an integer", "clear"),
    Case("pred-json-10-gigapixel-mask", "evaluate", evaluate(_json(_entry(size=(100_000, 100_000)))), 2,
         "not 100000x100000", "clear"),
    Case("pred-json-nan-literal", "evaluate", evaluate(_json(json.dumps(_entry()).replace("1,", "NaN,", 1))), 2,
         "category_id nan, not an integer", "clear"),
    Case("pred-json-binary", "evaluate", evaluate(_json(b"\xff\xfe[]")), 2, "cannot be read", "clear"),
    Case("evaluate-out-not-json", "evaluate", evaluate(_zeros, "{tmp}/score.txt"), 2,
         "unknown file format '.txt'; use one of .json", "silent"),
    # -- demo --
    Case("demo-max-side-zero", "demo", demo("--max-side", "0"), 2, "--max-side 0 is too small", "clear"),
    Case("demo-classes-only-commas", "demo", demo(classes=","), 2, "no class names in --classes", "clear"),
    Case("demo-option-bad-yaml", "demo", demo("--option", "x=*a"), 2, "found undefined alias", "clear"),
    Case("demo-stages-from-an-image", "demo", demo("--stages-from", "{tmp}/a.png"), 2, "cannot be read", "clear"),
    Case("demo-zero-byte-image", "demo", demo(image=lambda tmp: _file(tmp, "z.png", b"")), 2,
         "none of the inputs could be read", "clear"),
    Case("demo-float-tiff", "demo", demo(image=_float_tiff), 2, "none of the inputs could be read", "silent"),
    Case("demo-classes-typo-dataset", "demo", demo(classes="dataset:voc21"), 2, "Did you mean 'voc_21'", "clear"),
    Case("demo-patches-outside", "demo", demo("--figure", "--patches", "1000,1000"), 2, "lies outside", "clear"),
    Case("prepare-unknown-dataset", "data", lambda tmp: cli("prepare", "voc21", "--raw", tmp, "--out", tmp / "p"), 2,
         "Did you mean 'voc_21'", "clear"),
    Case("prepare-raw-missing", "data", lambda tmp: cli("prepare", "voc_21", "--raw", tmp / "no", "--out", tmp / "p"),
         2, "is not a folder", "clear"),
]
