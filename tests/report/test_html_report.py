"""`harness report`: one self-contained HTML file, checked as text and in a real browser (Debian's chromium,
headless): it renders without console errors, its tables hold the records' numbers, sorting works, and a
screenshot is not blank. The browser tests skip, saying why, where chromium is not installed (CI installs it)."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest
from evidence_records import CLASS_NAMES, images, write_segmentation_record

from harness.__main__ import main
from harness.results import new_record, write_record

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (CI installs Debian's "
                                                              "chromium: apt-get install -y chromium)")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    strong = write_segmentation_record(out, "strong", images(0.8))[1]
    old = write_segmentation_record(out, "old", images(0.6), with_evidence=False)[1]
    speed = new_record(suite="s", method="strong", method_spec={}, benchmark="speed", dataset=None,
                       profile="smoke", speed={"fps": 2.5, "ms_per_image": 400.0, "gmac": 12.0, "device": "cpu",
                                               "stages_ms": {"clip": 250.0, "head": 90.0},
                                               "flags": {"ms_per_image": "timed rounds spread 24% > 10%"}},
                       weights={"clip": {"source": "random"}},
                       extra={"cell": "speed/default/strong", "setting": "default", "task": "speed"})
    write_record(out / "speed" / "default" / "strong.json", speed)
    path = tmp_path_factory.mktemp("report") / "report.html"
    assert main(["report", str(out), "--html", str(path)]) == 0
    return path, path.read_text(encoding="utf-8"), {"strong": strong, "old": old}


def test_the_report_is_one_self_contained_file(report):
    _, text, _ = report
    urls = re.findall(r'(?:src|href)="([^"]*)"', text)
    assert urls and all(u.startswith(("data:image/png;base64,", "#")) for u in urls)
    assert "<link" not in text and "@import" not in text and "url(" not in text
    assert "WARNING: random weights in strong" in text  # the console caption's warnings
    assert "! speed/default/strong ms_per_image: timed rounds spread 24% &gt; 10%" in text  # every flag
    flags = text[text.index('id="flags"'):text.index('id="per-class"')]  # all of them in one section too
    assert "WARNING: random weights in strong" in flags and "ms_per_image: timed rounds spread 24%" in flags
    assert "400.0 !" in text  # the flagged figure in the breakdown; its stages beside it
    for key in ("commit", "threads", "convention", "intervals", "percentile bootstrap over images"):
        assert key in text


def test_bad_arguments_fail_before_any_work(tmp_path, report):
    run_dir = str(report[0].parent)
    assert main(["report", run_dir, "--html", str(tmp_path / "r.txt")]) == 2
    assert main(["report", str(tmp_path / "nowhere"), "--html", str(tmp_path / "r.html")]) == 2
    assert not (tmp_path / "r.html").exists()


class _Tables(HTMLParser):
    """Rows of every table (cell texts), by table id, and the body's data attributes."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.body: dict[str, str] = {}
        self._table = self._row = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "body":
            self.body = {k: v for k, v in attrs.items() if k.startswith("data-")}
        elif tag == "table":
            self._table = self.tables.setdefault(attrs.get("id", f"t{len(self.tables)}"), [])
        elif tag == "tr" and self._table is not None:
            self._row = []
            self._table.append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._row.append("")

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = self._row = None

    def handle_data(self, data):
        if self._row:
            self._row[-1] += data


def _chromium(url: str, *args: str) -> tuple[str, list[str]]:
    """(stdout, console lines) of headless chromium on `url`."""
    done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
                           "--v=0", *args, url], capture_output=True, text=True, timeout=120)
    return done.stdout, [line for line in done.stderr.splitlines() if ":CONSOLE" in line]


@needs_chromium
def test_the_console_check_catches_a_script_error(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text("<html><body><p>x</p><script>undefinedFunction();</script></body></html>")
    _, console = _chromium(page.as_uri(), "--dump-dom")
    assert any("undefinedFunction is not defined" in line for line in console)


@needs_chromium
def test_the_report_renders_in_chromium_with_the_records_numbers(report):
    path, _, metrics = report
    dom, console = _chromium(path.as_uri() + "#sort=perclass-0-0:1:desc", "--dump-dom")
    assert console == []  # no console error, no message at all
    parsed = _Tables()
    parsed.feed(dom)
    assert parsed.body.get("data-ready") == "1" and "data-errors" not in parsed.body
    assert int(parsed.body["data-sortable"]) == 3  # the paper-layout table, per-class IoU and speed: sortable
    header, *rows = parsed.tables["perclass-0-0"]
    assert header[0].strip() == "class" and [h.strip()[:6] for h in header[1:]] == ["old", "strong"]
    by_class = {r[0]: r for r in rows}
    for column, method in ((1, "old"), (2, "strong")):
        for name in CLASS_NAMES:
            value = metrics[method]["per_class_iou"][name]
            assert by_class[name][column] == ("-" if value is None else f"{value:.1f}")
    old_values = [float(r[1]) for r in rows if r[1] != "-"]
    in_class_order = [round(v, 1) for v in metrics["old"]["per_class_iou"].values() if v is not None]
    assert in_class_order != sorted(in_class_order, reverse=True)  # so the order below is the script's doing
    assert old_values == sorted(old_values, reverse=True)  # the link's #sort ran in the browser
    results = parsed.tables["table-0-0"]
    strong_row = next(r for r in results if r[0] == "strong")
    assert f"{metrics['strong']['hiou']:.1f} (-) ±" in " ".join(strong_row)
    assert "±n/a" in " ".join(next(r for r in results if r[0] == "old"))


@needs_chromium
def test_a_screenshot_of_the_report_is_not_blank(report, tmp_path):
    from matplotlib.image import imread

    shot = tmp_path / "shot.png"
    _, console = _chromium(report[0].as_uri(), f"--screenshot={shot}", "--window-size=1200,1600",
                           "--hide-scrollbars")
    pixels = imread(shot)[..., :3]
    assert console == [] and pixels.shape[:2] == (1600, 1200)
    colours = np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert pixels.std() > 0.05 and len(colours) > 50  # text, tables and a chart, not one flat colour
