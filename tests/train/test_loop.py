import math
import socket

import pytest
import torch
from tiny_train import CFG, Tiny, batch_fn, ddp_worker, fresh

from harness.train.loop import TrainConfig, TrainingDiverged, train
from harness.train.schedule import lr_factor


def test_loss_decreases_and_frozen_part_stays(tmp_path):
    model = fresh()
    frozen_before = model.frozen.weight.clone()
    result = train(model, batch_fn, CFG, tmp_path, torch.device("cpu"), progress=False)
    assert result.steps == 20 and len(result.history) == 20
    assert result.history[-1]["ce"] < result.history[0]["ce"]
    assert torch.equal(model.frozen.weight, frozen_before)


def test_resume_after_interruption_gives_identical_weights(tmp_path):
    straight = fresh()
    train(straight, batch_fn, CFG, tmp_path / "a", torch.device("cpu"), progress=False)
    interrupted = fresh()
    first = train(interrupted, batch_fn, CFG, tmp_path / "b", torch.device("cpu"), progress=False, stop_after=7)
    assert first.steps == 7
    resumed = fresh()  # a new process would rebuild the model from scratch
    torch.manual_seed(12345)  # and its RNG would be anywhere
    second = train(resumed, batch_fn, CFG, tmp_path / "b", torch.device("cpu"), progress=False)
    assert second.resumed_from == 7 and second.steps == 20
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_changed_config_refuses_to_resume(tmp_path):
    train(fresh(), batch_fn, CFG, tmp_path, torch.device("cpu"), progress=False, stop_after=5)
    other = TrainConfig(**{**CFG.as_dict(), "lr": 0.01})
    with pytest.raises(Exception, match="different training configuration"):
        train(fresh(), batch_fn, other, tmp_path, torch.device("cpu"), progress=False)


def test_nan_stops_with_step_and_terms(tmp_path):
    class Exploding(Tiny):
        def forward(self, batch):
            terms = super().forward(batch)
            return {**terms, "bad": terms["ce"] * float("nan")}

    torch.manual_seed(0)
    with pytest.raises(TrainingDiverged, match=r"not finite at step 0 \(of 20\); terms: ce=.*bad=nan"):
        train(Exploding(), batch_fn, CFG, tmp_path, torch.device("cpu"), progress=False)


def test_bf16_autocast_trains_on_cpu(tmp_path):
    cfg = TrainConfig(**{**CFG.as_dict(), "amp": "bf16", "iters": 5})
    result = train(fresh(), batch_fn, cfg, tmp_path, torch.device("cpu"), progress=False)
    assert math.isfinite(result.history[-1]["total"])


def test_schedules_match_detectron2_formulas():
    assert lr_factor(0, 100) == 1.0
    assert lr_factor(50, 100) == pytest.approx(0.5 ** 0.9)
    assert lr_factor(50, 100, "cosine") == pytest.approx(0.5)
    assert lr_factor(10, 100, "cosine", warmup_iters=100, warmup_factor=0.005) == pytest.approx(
        0.005 * 0.5 * (1 + math.cos(math.pi * 0.1)))


def test_ddp_two_processes_match_one(tmp_path):
    single = fresh()
    single.head[2].p = 0.0
    train(single, batch_fn, CFG, tmp_path / "single", torch.device("cpu"), progress=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.multiprocessing.spawn(ddp_worker, args=(2, port, tmp_path / "ddp"), nprocs=2, join=True)
    ddp = torch.load(tmp_path / "ddp" / "final.pt")
    for name, value in single.state_dict().items():
        torch.testing.assert_close(ddp[name], value, rtol=1e-4, atol=1e-5, msg=name)
