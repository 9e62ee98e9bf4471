"""Figure builders on tiny hand-made inputs: layout, titles, legend order, files written."""

import numpy as np
from PIL import Image

from harness.viz.figures import LEGEND_ROWS, attention_figure, demo_panel, legend_entries, save
from harness.viz.maps import AttentionMaps, PatchMaps


def _patch(cell, severed):
    vanilla = np.full((3, 4), 1 / 13)
    return PatchMaps(xy=(cell[1] * 10 + 5, cell[0] * 10 + 5), cell=cell, class_index=1, proposal=7,
                     vanilla=vanilla, vanilla_cls=1 / 13, severed=severed, mask=np.linspace(0, 1, 30 * 40).reshape(30, 40),
                     heatmap=np.eye(3, 4) / 3)


def test_attention_figure_layout_and_file(tmp_path):
    image = np.zeros((30, 40, 3), dtype=np.uint8)
    maps = AttentionMaps(image=image, class_names=["sky", "grass"], cell_size=(10.0, 10.0),
                         severance="GPS alpha=1", heatmap_kind="CAL query heatmap",
                         patches=[_patch((0, 1), np.eye(3, 4)), _patch((2, 3), None)])
    fig = attention_figure(maps, title="t", warning="MEANINGLESS")
    axes = fig.axes
    assert len(axes) == 2 * 5
    assert [a.get_title() for a in axes[:5]] == ["patch", "self-attention (no severance)",
                                                "severance: GPS alpha=1", "proposal mask", "CAL query heatmap"]
    assert axes[0].get_ylabel() == "grass\nproposal 7"
    assert axes[0].get_xlim() == (0.0, 40.0) and axes[0].get_ylim() == (30.0, 0.0)  # every map on the image
    assert len(axes[2].images) == 2 and len(axes[7].images) == 1  # no severance: no map, a note instead
    assert "no severance" in axes[7].texts[0].get_text()
    assert "MEANINGLESS" in fig.get_suptitle()
    path = save(fig, tmp_path / "attention.png")
    assert Image.open(path).mode in ("RGBA", "RGB")


def test_legend_lists_largest_shares_first_and_counts_the_rest():
    names = [f"c{i}" for i in range(LEGEND_ROWS + 6)]
    shares = np.zeros(len(names))
    shares[[3, 1, 5]] = [0.5, 0.3, 0.2]
    entries, rest = legend_entries(names, shares)
    assert entries[:4] == [(3, "c3  50.0%"), (1, "c1  30.0%"), (5, "c5  20.0%"), (0, "c0  0.0%")]
    assert len(entries) == LEGEND_ROWS and rest == 6


def test_demo_panel(tmp_path):
    image = np.zeros((20, 50, 3), dtype=np.uint8)
    fig = demo_panel(image, image, ["sky", "grass"], np.array([0.25, 0.75]), "x.png: deop")
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert texts == ["grass  75.0%", "sky  25.0%"]
    assert [a.get_title() for a in fig.axes] == ["image", "segmentation"]
    width, height = Image.open(save(fig, tmp_path / "panel.png")).size
    assert width > 2 * height  # two wide pictures side by side
