"""The training-free family's table layout (results/paper/training_free.yaml): published numbers with where they
were printed, rows tuned per dataset marked, the average of eight benchmarks, and the name file each row used."""

from __future__ import annotations

import yaml

from harness.tables import PAPER_DIR, build_frames, caption, load_layout

BENCHMARKS = ("voc-21", "pc-60", "coco-object", "voc-20", "pc-59", "coco-stuff", "cityscapes", "ade-150")


def _record(method: str, bench: str, miou: float, names: str) -> dict:
    return {"method": method, "benchmark": bench, "setting": "own", "status": "ok", "profile": "paper",
            "dataset": bench, "metrics": {"miou": miou}, "speed": {}, "weights": {},
            "benchmark_settings": {"names": names}}


def test_every_row_has_a_source_and_eight_numbers_whose_mean_is_the_printed_average():
    data = yaml.safe_load((PAPER_DIR / "training_free.yaml").read_text())
    for row in data["rows"]:
        assert row["source"]
        values = [row["values"][f"{b}.miou"] for b in BENCHMARKS]
        if row["values"]["average.miou"] is not None:  # printed averages are rounded means of the eight
            assert abs(sum(values) / 8 - row["values"]["average.miou"]) < 0.06, row["label"]
    tuned = {r["label"] for r in data["rows"] if r.get("tuned")}
    assert "SCLIP (paper)" in tuned and "CLIP" not in tuned and "MaskCLIP" not in tuned


def test_average_column_names_column_and_tuned_marker():
    layout = load_layout("training_free")
    values = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0]  # mean 45.0
    records = [_record("sclip", b, v, "sclip") for b, v in zip(BENCHMARKS, values)]
    records += [_record("clip", b, 5.0, "plain") for b in BENCHMARKS[:7]]  # ADE-150 missing: no average
    frame = build_frames(records, layout, paper=True)["own"].set_index("Method")
    assert frame.loc["SCLIP (paper) *", "Avg"] == "45.0 (38.2, +6.8)"
    assert frame.loc["SCLIP (repo) *", "bg VOC-21"] == "10.0 (59.6, -49.6)"
    assert frame.loc["SCLIP (paper) *", "Names"] == "sclip (sclip)"
    assert frame.loc["CLIP", "Names"] == "plain (sclip)"  # ours, then the published row's file
    assert frame.loc["CLIP", "Avg"] == "- (11.6)"
    text = caption(records, layout, paper=True)
    assert "SCLIP (repo): printed in wangf3014/SCLIP README @b56bd30" in text
    assert "* ClearCLIP: published settings chosen per dataset (prob_thd 0.5 / 0.15 / 0.4" in text
