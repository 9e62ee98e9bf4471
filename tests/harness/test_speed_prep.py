"""The GPU preparation every method gets alike (issue 24), as far as a CPU can check it: weights cast once to the
timed precision, the speed task's new options (mode, cuda_graphs, cast_weights) checked before anything runs,
throughput batches of same-size images, and the measured GPU peak's record fields."""

import pytest
import torch

from harness.api import Cell, MethodEnv, RunContext, Vocabulary
from harness.errors import ConfigError
from harness.registries import METHODS
from harness.speed_prep import GpuPeak, cast_weights
from harness.suite import Benchmark, MethodRow, Setting
from harness.tasks.speed import SPEED
from harness.tasks.throughput import same_size

TINY = {"clip_arch": "tiny-vit-p16", "clip_weights": "random", "proposals": {"preset": "smoke"},
        "prompt_layers": [1, 2], "test_short_side": 64}
TINY_TRAINING_FREE = {"clip_arch": "tiny-vit-p16", "clip_weights": "random", "short_side": 64, "crop": 32,
                      "stride": 16, "dino_arch": "tiny-dino-p8", "dino_weights": "random"}


def _cell(method: str, **options) -> Cell:
    tiny = TINY_TRAINING_FREE if METHODS.get(method).kind == "training-free" else TINY
    return Cell(suite="t", profile="smoke", benchmark=Benchmark("speed", "speed", None), setting=Setting("default"),
                row=MethodRow(method, method), method_options=tiny,
                task_options={"images": 1, "image_sizes": [[48, 64]], "repeats": 1, "budget_s": 5.0,
                              "classes": "synthetic_coco", "breakdown": False, **options})


def _ctx(tmp_path) -> RunContext:
    return RunContext(out_dir=tmp_path, cache_dir=tmp_path, device="cpu", progress=False, log=lambda *a: None)


@pytest.mark.parametrize("method", ["deop", "simbaseline", "clearclip", "proxyclip"])
def test_cast_weights_casts_the_matrices_once_and_keeps_the_method(method, tmp_path):
    env = MethodEnv(train_dataset="synthetic_coco", data_root=None, cache_dir=tmp_path, device="cpu",
                    progress=False, log=lambda *a: None)
    tiny = TINY_TRAINING_FREE if METHODS.get(method).kind == "training-free" else TINY
    segmenter = METHODS.get(method).build_untrained(tiny, env).segmenter
    matrices = [p for p in segmenter.parameters() if p.dim() >= 2]
    vectors = [p for p in segmenter.parameters() if p.dim() < 2]
    image = torch.randint(0, 256, (3, 50, 70), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    vocab = Vocabulary(("red disc", "blue square", "grass"), dataset="synthetic_coco", seen=(True, True, False))
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        before = segmenter.predict(image, vocab)
        assert cast_weights(segmenter, "fp32") == {"cast_weights": None}
        done = cast_weights(segmenter, "bf16")["cast_weights"]
        after = segmenter.predict(image, vocab)
    assert done["tensors"] == len(matrices) and done["parameters"] == sum(p.numel() for p in matrices)
    assert all(p.dtype == torch.bfloat16 for p in matrices) and all(p.dtype == torch.float32 for p in vectors)
    assert cast_weights(segmenter, "bf16")["cast_weights"]["tensors"] == 0  # once: nothing left to cast
    # autocast rounded the matmul weights to bf16 already; what moves is what it would have added in fp32
    # (position and token tables, added rather than multiplied): the same scores up to that rounding, the same
    # decision almost everywhere
    assert torch.corrcoef(torch.stack([after.flatten(), before.flatten()]))[0, 1] >= 0.99
    assert (after.argmax(0) == before.argmax(0)).float().mean() >= 0.98


def test_a_bf16_speed_record_says_what_was_cast(tmp_path):
    result = SPEED.run(_cell("deop", precision="bf16"), _ctx(tmp_path))
    cast = result.speed["prepared"]["cast_weights"]
    assert cast["dtype"] == "bf16" and cast["tensors"] > 0
    assert "cuda_graphs" not in result.speed["prepared"]  # a CPU run: eager, no graph to report
    off = SPEED.run(_cell("deop", precision="bf16", cast_weights=False), _ctx(tmp_path))
    assert "cast_weights" not in off.speed["prepared"]


@pytest.mark.parametrize("options, match", [
    ({"batch_size": 3}, "mode: throughput"),
    ({"mode": "throughput"}, "batch_size >= 2"),
    ({"mode": "fast"}, "mode must be one of latency, throughput"),
    ({"cuda_graphs": "yes"}, "cuda_graphs must be auto, true or false"),
    ({"cast_weights": "no"}, "cast_weights must be true or false"),
])
def test_new_options_are_checked_before_anything_runs(options, match):
    with pytest.raises(ConfigError, match=match):
        SPEED.check(_cell("deop", **options))


def test_cuda_graphs_true_on_a_cpu_fails_the_cells_with_a_config_error(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: cuda_graphs: true is valid here")
    (result,) = SPEED.run_group([_cell("deop", cuda_graphs=True)], _ctx(tmp_path))
    assert isinstance(result, ConfigError) and "needs a GPU" in str(result)


def test_throughput_batches_same_size_images(tmp_path):
    result = SPEED.run(_cell("clearclip", mode="throughput", batch_size=3, images=1,
                             image_sizes=[[48, 64], [64, 48]]), _ctx(tmp_path))
    speed = result.speed
    assert speed["mode"] == "throughput" and speed["batch_size"] == 3 and speed["n_images"] == 3
    assert speed["images"].endswith("throughput: all at 48x64")
    images = [torch.full((3, 64, 48), 7, dtype=torch.uint8), torch.zeros(3, 48, 64, dtype=torch.uint8)]
    resized = same_size(images, (48, 64))
    assert [tuple(im.shape) for im in resized] == [(3, 48, 64)] * 2 and resized[1] is images[1]
    assert (resized[0] == 7).all()  # a constant image stays constant under bilinear resizing


def test_gpu_peak_figures_read_percent_against_the_timed_kind_and_keep_the_datasheet():
    peak = GpuPeak(torch.device("cuda"), "bf16", tf32=True)
    assert list(peak.samples) == ["bf16", "tf32"]
    peak.samples["bf16"] += [700.0, 800.0]
    peak.samples["tf32"] += [350.0, 400.0]
    value, source, info = peak.figures((989.0, "datasheet H200 bf16"))
    assert value == 800.0 and "bf16 matmul 8192^3" in source
    assert info["peak_samples_tflops"] == [700.0, 800.0] and info["peak_spread"] == pytest.approx(100 / 800)
    assert info["peak_measured_tflops"] == {"bf16": 800.0, "tf32": 400.0}
    assert info["datasheet_peak_tflops"] == 989.0 and info["datasheet_source"] == "datasheet H200 bf16"
    assert list(GpuPeak(torch.device("cuda"), "fp32", tf32=False).samples) == ["bf16", "tf32", "fp32"]
    assert GpuPeak(torch.device("cuda"), "fp32", tf32=True).kind == "tf32"


def test_the_throughput_profile_runs_on_a_cpu_and_the_summary_lists_every_record(tmp_path, capsys):
    from harness.__main__ import main
    from harness.results import load_records
    from harness.speed_summary import main as summary_main
    from harness.speed_summary import summary_rows

    out = tmp_path / "throughput"
    code = main(["run", "suites/speed.yaml", "--profile", "throughput-smoke", "--out", str(out), "--no-progress",
                 "--only", "vit-b16-bs4/*/deop,vit-b16-bs4/*/simbaseline"])
    assert code == 0
    records = sorted(load_records(out), key=lambda r: r["method"])
    rows = summary_rows(records)
    assert [row[:5] for row in rows] == [["vit-b16-bs4", m, "throughput", 4, "fp32"] for m in ("deop", "simbaseline")]
    for row, record in zip(rows, records):
        speed = record["speed"]
        assert speed["n_images"] == 4 and row[6] == f"{speed['fps']:.1f}"
        assert speed["dominant_stage"] == max(speed["stages_ms"], key=speed["stages_ms"].get)
        assert row[10].startswith(speed["dominant_stage"] + " ")
    ratio = records[0]["speed"]["paired"]["fps_ratio"]["vit-b16-bs4/as-published/simbaseline"]["median"]
    assert rows[0][11] == f"{ratio:.2f}" and rows[1][11] == "-"
    capsys.readouterr()
    assert summary_main([str(out)]) == 0
    assert "| vit-b16-bs4 | deop" in capsys.readouterr().out
    assert summary_main([str(tmp_path / "missing")]) == 2  # exit 2 for unusable input, the message says why
    (tmp_path / "empty").mkdir()
    assert summary_main([str(tmp_path / "empty")]) == 2


def test_a_call_that_synchronises_is_never_captured_and_the_reason_is_recorded(tmp_path):
    """GraphedCall screens a call once before capturing it: SimBaseline's (it reads N') runs eagerly from then on,
    with the ops that decided it named; no CUDA call is made on the way, so this holds on a CPU too."""
    from harness.speed_prep import GraphedCall

    env = MethodEnv(train_dataset="synthetic_coco", data_root=None, cache_dir=tmp_path, device="cpu",
                    progress=False, log=lambda *a: None)
    segmenter = METHODS.get("simbaseline").build_untrained(TINY, env).segmenter
    images = [torch.randint(0, 256, (3, 50, 70), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))]
    vocab = Vocabulary(("red disc", "blue square", "grass"), dataset="synthetic_coco", seen=(True, True, False))

    def call(batch):
        with torch.inference_mode():
            return segmenter.predict_batch(batch, vocab)

    graphed = GraphedCall(call)
    torch.testing.assert_close(graphed(images)[0], call(images)[0], rtol=0, atol=0)
    assert graphed.record() == {"cuda_graphs": False,
                                "eager_reason": "synchronises with the host: aten::lift_fresh x5, aten::nonzero x1"}
    assert graphed.graphs == {}
    torch.testing.assert_close(graphed(images)[0], call(images)[0], rtol=0, atol=0)  # eager from then on


@pytest.mark.slow
def test_the_one_shot_gpu_check_flow_rehearsed_on_a_cpu(tmp_path, monkeypatch, capsys):
    """harness.gpu_check with a CPU profile in place of gpu-check: every step runs, writes under one folder (the
    records, summary.md, table.md, gpu-speed.log) and a failing step is named, not fatal to the next ones."""
    from harness import gpu_check

    monkeypatch.setattr(gpu_check, "PROFILE", "throughput-smoke")
    monkeypatch.setattr(gpu_check, "DEVICE", "cpu")
    monkeypatch.setattr(gpu_check, "TESTS_ARGS", ("-c", "print('the CUDA tests would run here')"))
    monkeypatch.setattr(gpu_check, "BENCHMARKS", (("vit-b16-bs4/*/deop", 120), ("no-such-benchmark/*", 60)))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("HARNESS_PLUGINS", raising=False)  # the tests' doubles: not importable from a subprocess
    out = tmp_path / "gpu"
    assert gpu_check.main([str(out)]) == 1
    assert (out / "failed-steps.txt").read_text() == "no-such-benchmark\n"
    assert "| vit-b16-bs4 | deop" in (out / "summary.md").read_text()
    assert (out / "table.md").exists() and len(list((out / "vit-b16-bs4").rglob("*.json"))) == 1
    log = (out / "gpu-speed.log").read_text()
    assert "the CUDA tests would run here" in log and "matches no cell" in log
