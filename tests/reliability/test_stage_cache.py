"""Sweep items 3-4: a corrupt stage cache is named and rebuilt; stages are keyed by the data they trained on;
synthetic data always matches the parameters a run asks for."""

import json

import pytest
import torch

from harness.data import get_info
from harness.data.fingerprint import split_fingerprint
from harness.data.synthetic import ensure_synthetic
from harness.data.synthetic_params import recorded_params
from harness.errors import WeightsError
from harness.train.checkpoint import atomic_torch_save, load_stage_file
from harness.train.stages import keyed_by_data, run_stage, stage_dir

SPEC = {"stage": "test", "n": 3}


def _build(calls):
    def build(directory):
        calls.append(directory)
        atomic_torch_save({"w": torch.full((1000,), 3.0)}, directory / "final.pt")
        return {"steps": 7}
    return build


@pytest.mark.parametrize("damage", ["truncate final.pt", "delete final.pt", "truncate done.json",
                                    "garbage done.json"])
def test_a_corrupt_stage_is_named_moved_aside_and_rebuilt(tmp_path, damage):
    calls, logs = [], []
    directory, _ = run_stage(tmp_path, "head", SPEC, _build(calls), log=logs.append)
    name = damage.split()[1]
    target = directory / name
    if damage.startswith("truncate"):
        target.write_bytes(target.read_bytes()[:40])
    elif damage.startswith("delete"):
        target.unlink()
    else:
        target.write_text("\x00\x01 not json")
    again, meta = run_stage(tmp_path, "head", SPEC, _build(calls), log=logs.append)
    assert again == directory and len(calls) == 2 and meta["cached"] is False
    warning = next(line for line in logs if line.startswith("warning"))
    assert "corrupt" in warning and str(directory / name) in warning and "rebuilt" in warning
    assert (tmp_path / "head" / f"{directory.name}.corrupt").is_dir()  # the evidence is kept, not deleted
    assert torch.equal(load_stage_file(directory / "final.pt")["w"], torch.full((1000,), 3.0))
    assert run_stage(tmp_path, "head", SPEC, _build(calls), log=logs.append)[1]["cached"] is True
    assert len(calls) == 2


def test_an_intact_stage_is_reused_and_lists_its_files(tmp_path):
    calls = []
    directory, _ = run_stage(tmp_path, "head", SPEC, _build(calls), log=lambda *_: None)
    done = json.loads((directory / "done.json").read_text())
    assert set(done["files"]) == {"final.pt"} and done["files"]["final.pt"]["size"] > 4000
    assert run_stage(tmp_path, "head", SPEC, _build(calls), log=lambda *_: None)[1]["cached"] is True
    assert len(calls) == 1


def test_an_unreadable_stage_file_is_a_clear_error_naming_it(tmp_path):
    path = tmp_path / "final.pt"
    path.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(WeightsError, match=r"cached stage file .*final\.pt cannot be read.*Delete"):
        load_stage_file(path)


def test_stages_are_keyed_by_the_training_data(tmp_path):
    root = tmp_path / "data"
    ensure_synthetic("synthetic_voc", root, n_train=4, n_val=2, size=32)
    info = get_info("synthetic_voc")
    before = split_fingerprint(info, "train", root)
    assert split_fingerprint(info, "train", root) == before  # stable while nothing changes
    with keyed_by_data(before):
        old_dir = stage_dir(tmp_path / "cache", "proposals", SPEC)
    label = sorted((root / "synthetic_voc/annotations_detectron2/train_base").iterdir())[0]
    label.write_bytes(label.read_bytes()[:-10])  # a corrupted (or re-prepared) copy of the data
    after = split_fingerprint(info, "train", root)
    assert after != before
    with keyed_by_data(after):
        assert stage_dir(tmp_path / "cache", "proposals", SPEC) != old_dir


def test_synthetic_data_is_regenerated_when_a_run_asks_for_other_parameters(tmp_path, capsys):
    from harness.data import open_dataset

    root = tmp_path / "data"
    ensure_synthetic("synthetic_voc", root, n_train=4, n_val=2, size=32)
    assert len(open_dataset("synthetic_voc", "val", root)) == 2
    ensure_synthetic("synthetic_voc", root, n_train=4, n_val=3, size=32)  # --set defaults.synthetic.n_val=3
    assert "regenerating" in capsys.readouterr().err
    assert len(open_dataset("synthetic_voc", "val", root)) == 3
    assert recorded_params(root, "synthetic_voc") == {"n_train": 4, "n_val": 3, "size": 32, "seed": 0}
    ensure_synthetic("synthetic_voc", root, n_train=4, n_val=3, size=32)
    assert "regenerating" not in capsys.readouterr().err  # same parameters: the copy is kept
