"""Second sweep, cause 1: nothing the harness reads runs code. Each loader gets a crafted pickle whose
unpickling would run a shell command that creates a file; the file must not exist afterwards and the error must
name the file and say what to do."""

import os
import pickle

import numpy as np
import pytest
import torch
from torch import nn

from harness.errors import HarnessError, WeightsError
from harness.train.checkpoint import load_checkpoint, load_stage_file, save_checkpoint
from methods.components.proposals import read_detectron2_pickle


class _RunsCommand:
    """Unpickling this calls os.system(f"touch {marker}")."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _crafted(path, marker, payload_wrapper=lambda p: p):
    with open(path, "wb") as fh:
        pickle.dump(payload_wrapper({"model": _RunsCommand(marker)}), fh)
    return path


def test_the_payload_really_runs_a_command_with_plain_pickle(tmp_path):
    # guards the tests below: without the protection, this file would be created
    marker = tmp_path / "ran"
    with open(_crafted(tmp_path / "x.pkl", marker), "rb") as fh:
        pickle.load(fh)
    assert marker.exists()


def test_a_crafted_detectron2_pickle_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    path = _crafted(tmp_path / "R-103.pkl", marker)
    with pytest.raises(WeightsError) as info:
        read_detectron2_pickle(path)
    assert not marker.exists()
    assert str(path) in str(info.value) and "system" in str(info.value)
    assert "only numpy arrays" in str(info.value)


def test_a_real_detectron2_layout_still_loads(tmp_path):
    # what detectron2 writes: {"model": {name: ndarray}, "__author__": ...}, arrays of several dtypes
    arrays = {"stem.conv1.weight": np.arange(6, dtype=np.float32).reshape(1, 6), "res2.0.conv1.norm.num": np.int64(3)}
    path = tmp_path / "R.pkl"
    with open(path, "wb") as fh:
        pickle.dump({"model": arrays, "__author__": "Detectron2 Model Zoo"}, fh, protocol=2)
    loaded = read_detectron2_pickle(path)
    np.testing.assert_array_equal(loaded["stem.conv1.weight"], arrays["stem.conv1.weight"])
    assert loaded["res2.0.conv1.norm.num"] == 3


def test_a_crafted_checkpoint_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "last.pt"
    torch.save({"config": {}, "model": _RunsCommand(marker)}, path)
    module = nn.Linear(2, 2)
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    with pytest.raises(HarnessError, match="Delete it to train from scratch") as info:
        load_checkpoint(path, module, optimizer, torch.amp.GradScaler("cpu", enabled=False), {})
    assert not marker.exists() and str(path) in str(info.value)


def test_a_crafted_stage_file_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "head" / "abc" / "final.pt"
    path.parent.mkdir(parents=True)
    torch.save({"w": _RunsCommand(marker)}, path)
    with pytest.raises(WeightsError, match="the stage is rebuilt"):
        load_stage_file(path)
    assert not marker.exists()


def test_a_checkpoint_still_round_trips_with_every_rng_state(tmp_path):
    # the RNG states are stored as tensors and plain values so weights_only=True can read them: resume stays exact
    import random

    module = nn.Linear(2, 2)
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    random.seed(5), np.random.seed(5), torch.manual_seed(5)
    random.gauss(0, 1), np.random.standard_normal()  # a cached gaussian in both generators
    save_checkpoint(tmp_path / "last.pt", module, optimizer, scaler, 3, [1.0], {"lr": 0.1})
    expected = (random.random(), random.gauss(0, 1), np.random.standard_normal(), np.random.rand(), torch.rand(1))
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    state = load_checkpoint(tmp_path / "last.pt", module, optimizer, scaler, {"lr": 0.1})
    assert state["step"] == 3
    got = (random.random(), random.gauss(0, 1), np.random.standard_normal(), np.random.rand(), torch.rand(1))
    assert got[:4] == expected[:4] and torch.equal(got[4], expected[4])


@pytest.mark.parametrize("loader", ["dinov2", "projection"])
def test_crafted_talk2dino_weights_run_nothing(tmp_path, loader):
    # issue 23's loaders: the DINOv2 file goes through dino.load_vit_file, the projection through our refusal
    from methods.components.talk2dino import build_dinov2, load_projection

    marker = tmp_path / "ran"
    path = _crafted(tmp_path / "weights.pth", marker)
    with pytest.raises(WeightsError) as info:
        if loader == "dinov2":
            build_dinov2("tiny-dinov2-reg-p14", str(path))
        else:
            load_projection(str(path))
    assert not marker.exists()
    assert str(path) in str(info.value) and "refused without running them" in str(info.value)
    assert "weights_only=False" not in str(info.value)
