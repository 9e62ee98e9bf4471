import pytest

from harness.errors import ConfigError
from harness.tables import load_layout, render

LAYOUT = """\
table: tiny
title: "Table T: tiny."
columns:
  - {key: passes, label: "Passes"}
  - {benchmark: coco-stuff, metric: hiou, label: "hIoU", group: "COCO"}
  - {benchmark: coco-stuff, metric: fps, label: "FPS", group: "COCO"}
rows:
  - {label: "Other [1]", method: null, values: {passes: "1", coco-stuff.hiou: 15.0}}
  - {label: "SimBaseline", method: simbaseline, values: {passes: "N'", coco-stuff.hiou: 37.8, coco-stuff.fps: 1.11}}
  - {label: "DeOP (ours)", method: deop, values: {passes: "1", coco-stuff.hiou: 38.2, coco-stuff.fps: 4.37}}
"""


def rec(method, hiou, fps, setting="default", status="ok", weights=None):
    return {"method": method, "benchmark": "coco-stuff", "setting": setting, "status": status, "profile": "paper",
            "metrics": {"hiou": hiou}, "speed": {"fps": fps}, "weights": weights or {"clip": "openai"}}


@pytest.fixture
def layout(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(LAYOUT)
    return load_layout(path)


def test_markdown_table_matches_hand_computed(layout):
    records = [rec("deop", 38.16, 4.371), rec("simbaseline", 37.04, 1.1049), rec("extra-row", 1.25, 0.5)]
    expected = (
        "Table T: tiny.\n"
        "Measured: profile paper, 3 records.\n"
        "| Method      | Passes   | COCO hIoU   | COCO FPS   |\n"
        "|-------------|----------|-------------|------------|\n"
        "| SimBaseline | N'       | 37.0        | 1.10       |\n"
        "| DeOP (ours) | 1        | 38.2        | 4.37       |\n"
        "| extra-row   |          | 1.2         | 0.5        |\n"  # FPS below 1: three significant digits
    )
    assert render(records, layout, "md") == expected


def test_paper_column_shows_paper_value_and_difference(layout):
    records = [rec("deop", 37.0, 4.0), rec("simbaseline", 37.8, 1.5, status="failed")]
    text = render(records, layout, "md", paper=True)
    assert "| DeOP (ours) | 1        | 37.0 (38.2, -1.2) | 4.00 (4.37, -0.37) |" in text
    assert "failed (37.8)" in text  # a failed cell says so, beside the paper's number
    assert "| Other [1]   | 1        | - (15.0)" in text  # rows we do not reproduce keep the paper's numbers
    assert "Cells: ours (paper, ours - paper)." in text


def test_random_weights_are_announced_and_settings_split(layout):
    records = [rec("deop", 1.0, 4.0, weights={"clip": "random"}, setting="matched"),
               rec("deop", 2.0, 4.0, setting="as-published")]
    text = render(records, layout, "console")
    assert "WARNING: random weights in deop" in text
    assert "Setting: matched" in text and "Setting: as-published" in text


def test_trained_from_scratch_or_timing_only_is_not_random_but_a_random_clip_is(layout):
    miniworld = {"clip": {"source": "file", "sha256": "ab"}, "proposal_backbone": {"backbone": "scratch"},
                 "stages": {"head": "0123"}}
    record = {**rec("deop", 24.8, 4.0, weights=miniworld), "dataset": "miniworld", "profile": "miniworld"}
    text = render([record], layout, "console")
    assert "WARNING" not in text and "Measured: profile miniworld on miniworld, 1 records." in text
    timing = {**miniworld, "stages": "random (untrained: timing only)"}
    assert "WARNING" not in render([rec("deop", 1, 4, weights=timing)], layout, "console")
    older = {**miniworld, "proposal_backbone": {"backbone": "random"}}  # records before "scratch"
    assert "WARNING" not in render([rec("deop", 1, 4, weights=older)], layout, "console")
    random_clip = {**miniworld, "clip": {"source": "random"}}
    assert "WARNING: random weights in deop" in render([rec("deop", 1, 4, weights=random_clip)], layout, "console")


def test_csv_and_latex(layout):
    records = [rec("deop", 38.25, 4.37)]
    csv = render(records, layout, "csv")
    assert csv.splitlines()[0] == "setting,Method,Passes,COCO hIoU,COCO FPS"
    assert csv.splitlines()[1] == "default,DeOP (ours),1,38.2,4.37"
    assert "\\toprule" in render(records, layout, "latex")
    with pytest.raises(ConfigError, match="unknown table format"):
        render(records, layout, "html")


def test_every_paper_layout_loads_and_unknown_is_clear():
    for n in range(1, 9):
        layout = load_layout(f"table{n}")
        assert layout.columns and layout.rows
    with pytest.raises(ConfigError, match="Known: speed, table1, .*, table8, training_free"):
        load_layout("table99")


def test_generic_layout_without_a_paper_table():
    text = render([rec("deop", 38.0, 4.0)], None, "md")
    assert "coco-stuff hIoU" in text and "38.0" in text and "4.00" in text
