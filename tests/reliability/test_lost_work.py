"""Second sweep, causes 7 and 8: a finished cell's result survives a record that cannot be written; what can be
checked before the work is; names that are one prompt are duplicates; written files follow the umask."""

import errno
import os
import re
import stat
import tempfile

import numpy as np
import pytest

from harness import results
from harness.data.info import DatasetInfo, Layout, SplitLayout
from harness.data.name_files import load_name_file
from harness.errors import ConfigError, DataError
from harness.eval.evidence import confusion_problem
from harness.eval.metrics import compute_metrics
from harness.results import load_record, new_record, write_record
from harness.viz.inputs import parse_classes

TF_CELL = ["run", "suites/training_free.yaml", "--profile", "smoke", "--only", "voc-21/own/clip", "--no-progress"]


def test_a_record_that_cannot_be_written_keeps_the_result_and_says_where(cli, tmp_path, monkeypatch):
    out = tmp_path / "runs"
    real_write = results._atomic_write_bytes

    def file_too_large(path, data):  # as under `ulimit -f`: every write under --out fails with EFBIG
        if out in path.parents:
            raise OSError(errno.EFBIG, "File too large", str(path))
        return real_write(path, data)

    monkeypatch.setattr(results, "_atomic_write_bytes", file_too_large)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    code, out_text, err = cli(*TF_CELL, "--out", out, "--data-root", tmp_path / "data")
    assert code == 1 and "File too large" in out_text + err, err
    kept = re.search(r"The result was kept in (\S+\.json);", out_text)
    assert kept, out_text
    record = load_record(kept.group(1))
    assert record["status"] == "ok" and record["cell"] == "voc-21/own/clip" and record["metrics"]["miou"] > 0
    assert confusion_problem(record) is None  # its matrix was kept beside it and backs its metrics
    assert not list(out.rglob("*.json"))


def test_when_nothing_can_be_written_the_result_is_in_the_message(tmp_path, monkeypatch):
    def no_space(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(results, "_atomic_write_bytes", no_space)
    record = new_record(suite="s", method="m", method_spec={}, benchmark="b", dataset="d", profile="p",
                        metrics={"miou": 12.5}, extra={"cell": "b/default/m"})
    message = results.keep_unwritten_record(tmp_path / "m.json", record)
    assert '"miou": 12.5' in message and f"save it as {tmp_path / 'm.json'}" in message


def test_a_record_path_too_long_for_the_file_system_is_refused_before_work(cli, tmp_path):
    room = 4096 - 30 - len(os.fsencode(str(tmp_path)))  # --out itself fits; its record paths do not
    out = tmp_path.joinpath(*["d" * 200] * (room // 201), "d" * (room % 201 - 1))
    assert len(os.fsencode(str(out))) == 4096 - 30
    code, _, err = cli(*TF_CELL, "--out", out, "--data-root", tmp_path / "data")
    assert code == 2 and "a path too long for the file system" in err and "pass a shorter --out" in err
    assert not (tmp_path / "data").exists()  # nothing was generated, let alone computed
    code, _, err = cli(*TF_CELL, "--out", out / ("d" * 40), "--data-root", tmp_path / "data")
    assert code == 2 and "--out" in err and "too long for the file system" in err  # --out itself too long
    code, _, err = cli(*TF_CELL, "--out", tmp_path / ("d" * 256), "--data-root", tmp_path / "data")
    assert code == 2 and "a component of 256" in err


@pytest.mark.parametrize("lines, hidden", [
    ("\ufeffsky\nsky\n", "sky"),  # a byte-order mark on the first line
    ("red  disc\nred disc\n", "red disc"),  # a doubled space
    ("Sky\nsky \ufeff\n", "sky"),
])
def test_names_that_the_tokenizer_makes_one_prompt_are_duplicates(tmp_path, lines, hidden):
    info = DatasetInfo(name="k2", title="t", class_names=("a", "b"), layout=Layout(val=SplitLayout("t/i", "t/l")),
                       raw_format=None)
    path = tmp_path / "names.txt"
    path.write_text(lines, encoding="utf-8")
    with pytest.raises(DataError, match=r"differs only in case or spacing|appears more than once"):
        load_name_file(path, info)
    with pytest.raises(ConfigError, match="duplicate class name"):
        parse_classes(str(path))


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_records_matrices_and_predictions_follow_the_umask(tmp_path, umask, mode):
    from harness.data.io import write_label_png

    old = os.umask(umask)
    try:
        matrix = np.eye(2, dtype=np.int64)
        record = new_record(suite="s", method="m", method_spec={}, benchmark="b", dataset="d", profile="p",
                            metrics=compute_metrics(matrix, class_names=["a", "b"]), miou_convention="d2-v0.6")
        path = write_record(tmp_path / "m.json", record, confusion=matrix)
        write_label_png(tmp_path / "pred.png", np.zeros((4, 4), np.uint8))
    finally:
        os.umask(old)
    for name in (path.name, "m.confusion.npy", "pred.png"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name
