"""Bad sem_seg_predictions.json files: each a clear error (exit 2) naming the file and the entry, no record."""

from __future__ import annotations

import json

import pytest
from hand_predictions import HAND_GT, hand_file, write_split

from harness.__main__ import main


@pytest.fixture
def case(tmp_path):
    root = tmp_path / "data"
    write_split(root, HAND_GT)
    pred = tmp_path / "bad.json"
    entries = hand_file(pred)
    out = tmp_path / "never.json"

    def evaluate(new_entries=None, text=None):
        if text is not None:
            pred.write_text(text)
        elif new_entries is not None:
            pred.write_text(json.dumps(new_entries))
        code = main(["evaluate", "synthetic_coco", "--pred", str(pred), "--data-root", str(root), "--out", str(out)])
        assert not out.exists()
        return code

    return entries, evaluate, pred


def test_rle_size_differing_from_the_ground_truth(case, capsys):
    entries, evaluate, pred = case
    entries[3]["segmentation"] = {"size": [2, 1], "counts": [0, 2]}
    assert evaluate(entries) == 2
    err = capsys.readouterr().err
    assert str(pred) in err and "1 entries differ in size from the ground truth" in err
    assert "entry 3 (datasets/synthetic_coco/val2017/b.jpg, category_id 178): RLE size 2x1, ground truth 2x2" in err


def test_a_category_id_the_dataset_does_not_have(case, capsys):
    entries, evaluate, pred = case
    entries[1]["category_id"] = 2  # a COCO id synthetic_coco does not use
    entries[2]["category_id"] = 0  # a train id, not a COCO id
    assert evaluate(entries) == 2
    err = capsys.readouterr().err
    assert str(pred) in err and "2 entries have a category_id that synthetic_coco/val does not have" in err
    assert "entry 1 (datasets/synthetic_coco/val2017/a.jpg): category_id 2" in err and "category_id 0" in err


def test_two_entries_claiming_the_same_pixels(case, capsys):
    entries, evaluate, pred = case
    entries.append({"file_name": "other/root/a.png", "category_id": 101,
                    "segmentation": {"size": [2, 3], "counts": [0, 3, 3]}})  # the first column and (0, 1)
    entries[-1]["file_name"] = entries[0]["file_name"]
    assert evaluate(entries) == 2
    err = capsys.readouterr().err
    assert str(pred) in err and "two entries claim the same pixel" in err
    assert "image a: entry 4 (category_id 101) claims 3 pixels already claimed by entries 0, 1" in err


def test_same_stem_under_two_file_names_is_ambiguous(case, capsys):
    entries, evaluate, _ = case
    entries[1]["file_name"] = "elsewhere/a.jpg"
    assert evaluate(entries) == 2
    assert "named by different file_names with the same stem: a: datasets/synthetic_coco/val2017/a.jpg and " \
           "elsewhere/a.jpg" in capsys.readouterr().err


@pytest.mark.parametrize("text, message", [
    ("not json at all", "is not JSON"),
    ('{"file_name": "a.jpg"}', "holds a JSON dict, not a list"),
    ('[{"file_name": "a.jpg", "category_id": 1}]', "entry 0 lacks segmentation"),
    ('[{"file_name": "a.jpg", "category_id": "1", "segmentation": {"size": [2, 3], "counts": [6]}}]',
     "entry 0 has category_id '1', not an integer"),
    ('[{"file_name": "a.jpg", "category_id": 1, "segmentation": {"size": [2, 3], "counts": [5]}}]',
     "entry 0 has RLE runs covering 5 pixels, not 2x3 = 6"),
    ('[{"file_name": "a.jpg", "category_id": 1, "segmentation": {"size": [2, 3], "counts": "0 "}}]',
     "entry 0 has RLE counts that do not decode (character ' ' at 1 is not in the RLE alphabet"),
    ('[{"file_name": "a.jpg", "category_id": 1, "segmentation": [[0, 0, 1, 1]]}]',
     "entry 0 has a segmentation that is not an RLE object"),
])
def test_a_file_that_is_not_this_format(case, capsys, text, message):
    _, evaluate, pred = case
    assert evaluate(text=text) == 2
    err = capsys.readouterr().err
    assert str(pred) in err and message in err


def test_a_file_of_another_dataset(case, capsys):
    entries, evaluate, _ = case
    for e in entries:
        e["file_name"] = "ADEChallengeData2016/images/validation/ADE_val_00000001.jpg"
    assert evaluate(entries) == 2
    assert "none of its 1 images is in synthetic_coco/val" in capsys.readouterr().err
