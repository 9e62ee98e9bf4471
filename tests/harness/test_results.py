import json
import os

import numpy as np
import pytest

from harness.errors import RecordError
from harness.results import (
    SCHEMA,
    confusion_path,
    load_confusion,
    load_record,
    load_records,
    new_record,
    write_record,
)


def _record(**kw):
    return new_record(suite="s", method="m", method_spec={}, benchmark="b", dataset="d", profile="smoke", **kw)


def test_round_trip_with_confusion_matrix_beside_it(tmp_path):
    matrix = np.arange(9, dtype=np.int64).reshape(3, 3)
    path = write_record(tmp_path / "r.json", _record(metrics={"miou": 12.3456789}), confusion=matrix)
    rec = load_record(path)
    assert rec["schema"] == SCHEMA and rec["metrics"]["miou"] == 12.3456789  # stored unrounded
    assert confusion_path(path).name == "r.confusion.npy"
    np.testing.assert_array_equal(load_confusion(rec), matrix)


def test_nan_is_stored_as_null_and_numpy_scalars_as_numbers(tmp_path):
    path = write_record(tmp_path / "r.json", _record(metrics={"hiou": float("nan"), "pacc": np.float32(0.5)}))
    data = json.loads(path.read_text())
    assert data["metrics"] == {"hiou": None, "pacc": 0.5}


def test_write_is_atomic_a_failed_write_leaves_the_old_record(tmp_path, monkeypatch):
    path = write_record(tmp_path / "r.json", _record(metrics={"miou": 1.0}))

    def boom(*a, **k):
        raise OSError(5, "simulated I/O error")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        write_record(path, _record(metrics={"miou": 2.0}))
    monkeypatch.undo()
    assert load_record(path)["metrics"]["miou"] == 1.0  # whole old record, not a torn one
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temp file left behind


def test_corrupt_foreign_and_incomplete_files_get_clear_errors(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(RecordError, match=r"bad.json is corrupt: not valid JSON"):
        load_record(tmp_path / "bad.json")
    (tmp_path / "foreign.json").write_text('{"hello": 1}')
    with pytest.raises(RecordError, match="is not a harness record"):
        load_record(tmp_path / "foreign.json")
    (tmp_path / "partial.json").write_text(json.dumps({"schema": SCHEMA, "suite": "s"}))
    with pytest.raises(RecordError, match="lacks the fields"):
        load_record(tmp_path / "partial.json")
    with pytest.raises(RecordError, match="does not exist"):
        load_records(tmp_path / "nowhere")


def test_unwritable_directory_is_a_record_error(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # running as root: permissions are not enforced
            pytest.skip("permissions are not enforced for this user")
        with pytest.raises(RecordError, match="Choose a writable output directory"):
            write_record(locked / "r.json", _record())
    finally:
        locked.chmod(0o700)


def test_record_requires_schema_fields():
    with pytest.raises(ValueError, match="status"):
        _record(status="weird")
