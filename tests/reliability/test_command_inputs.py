"""Sweep items 5 and 6: every output path is checked before any work, inputs that are no folder or no checkpoint
are exit 2 with a message naming them, reference files that `check` would reject are never written."""

import numpy as np
import pytest

from harness.data.synthetic import ensure_synthetic
from harness.eval.metrics import compute_metrics
from harness.results import new_record, write_record

SMOKE = "suites/smoke.yaml"


@pytest.fixture
def blocker(tmp_path):
    """A regular file: any output path under it cannot be written."""
    path = tmp_path / "a-file"
    path.write_text("not a folder")
    return path


@pytest.fixture
def records(tmp_path):
    """A results directory with one segmentation record and its confusion matrix."""
    matrix = np.array([[5, 1, 0], [2, 7, 1], [0, 0, 4]], dtype=np.int64)
    metrics = compute_metrics(matrix, unseen=[2], class_names=["a", "b", "c"])
    record = new_record(suite="s", method="m", method_spec={}, benchmark="b", dataset="d", profile="smoke",
                        metrics=metrics, miou_convention="d2-v0.6", extra={"cell": "b/default/m"})
    write_record(tmp_path / "runs" / "b" / "default" / "m.json", record, confusion=matrix)
    return tmp_path / "runs"


def _no_traceback(err):
    assert err.startswith("error: ") and "Traceback" not in err, err


@pytest.mark.parametrize("args", [
    ["run", SMOKE, "--out", "{blocker}/runs"],
    ["run", SMOKE, "--out", "{blocker}"],
    ["table", "{records}", "--output", "{blocker}/table.md"],
    ["table", "{records}", "--plot", "{blocker}/plot.png"],
    ["reference", "{records}", "--out", "{blocker}/ref.yaml"],
    ["demo", "{blocker}", "--classes", "cat, dog", "--out", "{blocker}/demo"],
    ["prepare", "synthetic_voc", "--raw", "{blocker}", "--out", "{blocker}/data"],
    ["evaluate", "synthetic_voc", "--pred", "{blocker}", "--out", "{blocker}/scores.json"],
])
def test_an_output_path_under_a_regular_file_is_exit_2_before_any_work(cli, blocker, records, args):
    args = [a.format(blocker=blocker, records=records) for a in args]
    code, out, err = cli(*args)
    assert code == 2, err
    _no_traceback(err)
    assert f"{blocker} is a file, not a folder" in err
    assert blocker.read_text() == "not a folder"  # nothing written over it either


def test_evaluate_checks_its_output_before_scoring(cli, tmp_path, blocker):
    # the prediction folder does not exist: had scoring started, that would be the error
    code, _, err = cli("evaluate", "synthetic_voc", "--pred", tmp_path / "nope", "--out", blocker / "s.json")
    assert code == 2 and "is a file, not a folder" in err


def test_table_output_that_is_a_folder_and_an_unknown_plot_format(cli, records, tmp_path):
    code, _, err = cli("table", records, "--output", tmp_path)
    assert code == 2 and "is a folder; give a file name" in err
    code, _, err = cli("table", records, "--plot", tmp_path / "x.xyz")
    assert code == 2 and "unknown file format '.xyz'" in err and ".png" in err
    assert not (tmp_path / "x.xyz").exists()


@pytest.mark.parametrize("option", ["--data-root", "--cache-dir"])
def test_a_data_root_or_cache_that_is_a_file_is_exit_2(cli, blocker, tmp_path, option):
    code, _, err = cli("run", SMOKE, "--out", tmp_path / "runs", option, blocker, "--no-progress")
    assert code == 2, err
    _no_traceback(err)
    assert f"{option} {blocker} is a file, not a folder" in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*.json"))


@pytest.mark.parametrize("device, words", [("tpu", "not a device this harness runs on"),
                                           ("cuda:x", "not a device this harness runs on")])
def test_an_unknown_device_is_exit_2(cli, tmp_path, device, words):
    code, _, err = cli("run", SMOKE, "--out", tmp_path / "runs", "--device", device, "--dry-run")
    assert code == 2 and words in err
    code, _, err = cli("demo", tmp_path, "--classes", "a, b", "--out", tmp_path / "d", "--device", device)
    assert code == 2 and words in err


def test_weights_that_are_random_bytes_are_exit_2_naming_the_file(cli, tmp_path):
    junk = tmp_path / "ViT-B-16.pt"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    code, _, err = cli("run", SMOKE, "--out", tmp_path / "runs", "--weights", junk, "--dry-run")
    assert code == 2, err
    assert f"--weights {junk} is not a checkpoint this harness can read" in err and "weights_only" not in err
    code, _, err = cli("demo", tmp_path, "--classes", "a, b", "--out", tmp_path / "d", "--weights", junk)
    assert code == 2 and "is not a checkpoint this harness can read" in err


def test_a_real_torch_checkpoint_passes_the_weights_check(tmp_path):
    import torch

    from harness.paths import check_weights_file

    torch.save({"w": torch.zeros(3)}, tmp_path / "ok.pt")
    assert check_weights_file(tmp_path / "ok.pt", "--weights") == tmp_path / "ok.pt"


def test_demo_nested_option_keys_are_checked(cli, tmp_path):
    from PIL import Image

    Image.new("RGB", (64, 48), (90, 120, 30)).save(tmp_path / "photo.png")
    code, _, err = cli("demo", tmp_path / "photo.png", "--classes", "a, b", "--out", tmp_path / "d",
                       "--option", "proposals={preset:smoke}")  # YAML reads one key 'preset:smoke'
    assert code == 2 and "option proposals: unknown key 'preset:smoke'" in err


@pytest.mark.parametrize("args, words", [
    (["--metrics", "hiuo"], "no record has the metric 'hiuo'. Did you mean 'hiou'?"),
    (["--tolerance", "-1"], "--tolerance -1.0 must be a number >= 0"),
    (["--tolerance", "nan"], "must be a number >= 0"),
    (["--metrics", ""], "the reference would hold no checks"),
])
def test_reference_never_writes_a_file_that_check_would_reject(cli, records, tmp_path, args, words):
    out = tmp_path / "ref.yaml"
    code, _, err = cli("reference", records, "--out", out, *args)
    assert code == 2 and words in err, err
    assert not out.exists()


def test_a_written_reference_holds_against_its_own_records(cli, records, tmp_path):
    assert cli("reference", records, "--out", tmp_path / "ref.yaml", "--tolerance", "1e-4")[0] == 0
    code, out, _ = cli("check", records, "--against", tmp_path / "ref.yaml")
    assert code == 0 and "4 of 4 reference figures hold" in out


def test_a_100_megapixel_image_is_shrunk_not_refused(tmp_path):
    from PIL import Image

    from harness.viz.inputs import read_image

    Image.new("L", (10_000, 10_000), 128).save(tmp_path / "big.jpg")
    image = read_image(tmp_path / "big.jpg", max_side=512)
    assert image.pixels.shape == (512, 512, 3) and image.original_size == (10_000, 10_000)


def test_evaluate_names_a_bad_prediction_file_without_prepare_advice(cli, tmp_path):
    root = ensure_synthetic("synthetic_voc", tmp_path / "data", n_train=2, n_val=2, size=32)
    labels = sorted((root / "synthetic_voc/annotations_detectron2/val").glob("*.png"))
    pred = tmp_path / "pred"
    pred.mkdir()
    for label in labels:
        (pred / label.name).write_bytes(label.read_bytes())
    (pred / labels[0].name).write_bytes(b"not a png")
    code, _, err = cli("evaluate", "synthetic_voc", "--pred", pred, "--data-root", root, "--out", tmp_path / "s.json")
    assert code == 2 and f"label map {pred / labels[0].name} cannot be read" in err
    assert "prepare" not in err and "single-channel PNG" in err
