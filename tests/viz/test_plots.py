"""The speed-accuracy plot pairs speed and accuracy cells of each method as the module docstring says."""

import pytest
from PIL import Image

from harness.errors import RecordError
from harness.results import new_record
from harness.viz.plots import Point, pair_points, speed_accuracy_figure, speed_accuracy_plot


def seg(method, benchmark, dataset, hiou, setting="default", weights=None):
    return new_record(suite="t", method=method, method_spec={}, benchmark=benchmark, dataset=dataset,
                      profile="smoke", metrics={"hiou": hiou}, weights=weights or {"clip": {"source": "tag"}},
                      extra={"setting": setting})


def speed(method, benchmark, classes, fps, setting="default", status="ok"):
    return new_record(suite="t", method=method, method_spec={}, benchmark=benchmark, dataset=None,
                      profile="smoke", speed={"fps": fps, "device": "cpu"}, status=status,
                      weights={"clip": {"source": "random"}},
                      extra={"setting": setting, "task_options": {"classes": classes}})


def table1_like():
    return [
        seg("deop", "coco-stuff", "coco_stuff_171", 38.2), seg("deop", "voc", "voc_20", 80.8),
        speed("deop", "coco-stuff-speed", "coco_stuff_171", 4.4), speed("deop", "voc-speed", "voc_20", 4.6),
        seg("simbaseline", "coco-stuff", "coco_stuff_171", 37.8),
        speed("simbaseline", "coco-stuff-speed", "coco_stuff_171", 1.1),
        speed("simbaseline", "voc-speed", "voc_20", 9.9, status="failed"),  # failed cells carry no figure
        seg("baseline", "coco-stuff", "coco_stuff_171", 7.0),  # never timed
        seg("odd", "coco-stuff", "coco_stuff_171", 20.0),
        speed("odd", "a-speed", "ade_150", 2.0), speed("odd", "b-speed", "pc_59", 3.0),  # which one?
    ]


def test_pairs_by_method_then_setting_then_classes():
    points, notes = pair_points(table1_like())
    assert sorted(points, key=lambda p: (p.method, p.accuracy_benchmark)) == [
        Point("deop", 4.4, 38.2, "coco-stuff", "coco-stuff-speed", "default"),
        Point("deop", 4.6, 80.8, "voc", "voc-speed", "default"),
        Point("simbaseline", 1.1, 37.8, "coco-stuff", "coco-stuff-speed", "default"),
    ]
    assert any(n.startswith("baseline (coco-stuff): no record with fps") for n in notes)
    assert any(n.startswith("odd (coco-stuff): 2 records with fps") for n in notes)


def test_settings_keep_their_own_speed():
    records = [seg("deop", "b", "d", 30.0, setting="matched"), seg("deop", "b", "d", 31.0, setting="as-published"),
               speed("deop", "s", "d", 5.0, setting="matched"), speed("deop", "s", "d", 4.0, setting="as-published")]
    points, _ = pair_points(records)
    assert {(p.setting, p.x, p.y) for p in points} == {("matched", 5.0, 30.0), ("as-published", 4.0, 31.0)}


def test_plot_file_and_errors(tmp_path):
    path = tmp_path / "speed_accuracy.png"
    points = speed_accuracy_plot(table1_like(), path)
    assert len(points) == 3 and Image.open(path).size[0] > 300
    with pytest.raises(RecordError, match="no method has both fps and hiou"):
        speed_accuracy_plot([seg("deop", "b", "d", 1.0)], tmp_path / "none.png")


def test_figure_shows_every_point_and_says_what_it_measured():
    fig, points = speed_accuracy_figure(table1_like())
    ax = fig.axes[0]
    drawn = sorted(tuple(c.get_offsets()[0]) for c in ax.collections)
    assert drawn == sorted((p.x, p.y) for p in points)
    assert sorted(t.get_text() for t in ax.texts) == ["deop (coco-stuff)", "deop (voc)", "simbaseline (coco-stuff)"]
    assert ax.get_xlabel() == "FPS (higher is faster)" and ax.get_ylabel() == "hIoU (%)"
    assert "random weights in deop, simbaseline" in ax.get_title() and "speed on cpu" in ax.get_title()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["coco-stuff", "voc"]
    assert "odd (coco-stuff)" in fig.texts[0].get_text()  # what was left out is said on the figure
