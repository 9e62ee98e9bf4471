"""The training-free protocol's per-benchmark settings (issue 15): the name file a cell queries with, and the bad
inputs that must stop a run before anything starts, each naming the cell and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.api import CellSkipped, Vocabulary
from harness.data.name_files import load_names
from harness.errors import ConfigError
from harness.registries import METHODS
from harness.runner import check_plan, plan
from harness.suite import load_suite

ROOT = Path(__file__).resolve().parents[2]


def _suite(tmp_path: Path, method_options: str, dataset: str = "voc_20", method: str = "sclip") -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(f"suite: s\nmethods: [{method}]\nbenchmarks:\n"
                    f"  - {{name: bench, task: segmentation, dataset: {dataset}, method_options: {method_options}}}\n")
    return path


def _check(path: Path) -> None:
    check_plan(plan(load_suite(path)))


def test_threshold_on_a_benchmark_without_background_names_cell_and_key(tmp_path):
    with pytest.raises(ConfigError, match=r"cell bench/default/sclip\).*option prob_thd=0\.1 needs a background "
                                          r"class, and dataset 'voc_20' has none"):
        _check(_suite(tmp_path, "{prob_thd: 0.1}"))
    with pytest.raises(ConfigError, match=r"bench/default/clip.*option area_thd=0\.1"):
        _check(_suite(tmp_path, "{area_thd: 0.1}", method="clip"))
    # through the per-dataset table as well: the threshold the method would use on that dataset is checked
    with pytest.raises(ConfigError, match=r"option prob_thd=0\.2 needs a background class.*'pc_59'"):
        _check(_suite(tmp_path, "{per_dataset: {pc_59: {prob_thd: 0.2}}}", dataset="pc_59"))
    _check(_suite(tmp_path, "{prob_thd: 0.1}", dataset="voc_21"))  # with background: fine


def test_unknown_names_family_names_cell_and_key(tmp_path):
    with pytest.raises(ConfigError, match=r"bench/default/sclip.*option names='scip': unknown names family; "
                                          r"choose one of sclip, clearclip, proxyclip, plain"):
        _check(_suite(tmp_path, "{names: scip}"))


def test_name_file_with_the_wrong_line_count_names_cell_and_key(tmp_path):
    short = tmp_path / "voc20_short.txt"
    short.write_text("\n".join(f"class {i}" for i in range(19)) + "\n")
    with pytest.raises(ConfigError, match=r"bench/default/sclip.*option names='.*voc20_short\.txt'.* has 19 "
                                          r"lines, but dataset 'voc_20' has 20 classes"):
        _check(_suite(tmp_path, f"{{names: {short}}}"))
    dup = tmp_path / "voc20_dup.txt"
    dup.write_text("\n".join(["Cat", *[f"class {i}" for i in range(18)], "cat"]) + "\n")
    with pytest.raises(ConfigError, match=r"option names=.*'Cat / cat' differs only in case"):
        _check(_suite(tmp_path, f"{{names: {dup}}}"))


def test_window_larger_than_the_image_without_padding_names_cell_and_key(tmp_path):
    with pytest.raises(ConfigError, match=r"bench/default/sclip.*option crop=448 is larger than the image on "
                                          r"'voc_20' \(resized to short side short_side=336\) and pad_to is 0"):
        _check(_suite(tmp_path, "{crop: 448, stride: 224}"))
    _check(_suite(tmp_path, "{crop: 448, stride: 224, pad_to: 16}"))  # padded: allowed
    _check(_suite(tmp_path, "{crop: 448, stride: 224, mode: whole}"))  # one window, the image


def test_each_plugin_uses_its_repository_name_file_and_records_it():
    sclip, clearclip, proxyclip = (METHODS.get(n) for n in ("sclip", "clearclip", "proxyclip"))
    settings = sclip.benchmark_settings({}, "voc_21")
    assert settings["names"] == "sclip" and "wangf3014/SCLIP@" in settings["name_file"]
    assert settings["queries"] == 26 + 18 + 7 + 5  # 26 background words, 18 classes, person x7 and tv x5
    assert settings["per_dataset"] == {"tau": 65.0, "prob_thd": 0.1, "area_thd": 0.1}
    assert clearclip.benchmark_settings({}, "voc_21")["queries"] == 21  # the single word "background"
    assert proxyclip.benchmark_settings({}, "voc_21")["names"] == "proxyclip"
    assert sclip.benchmark_settings({"names": "plain"}, "voc_21")["queries"] == 21
    # a dataset no repository has a file for: the catalog's names, and the record says why
    mini = sclip.benchmark_settings({}, "miniworld")
    assert mini["names"] == "plain" and "no repository publishes a name file for 'miniworld'" in mini["name_file"]


def test_the_dense_segmenter_queries_every_synonym_of_the_name_file():
    spec = METHODS.get("sclip").spec({})
    from methods.pipelines.dense import DenseSegmenter

    expected = load_names("voc_21", "sclip")
    vocab = Vocabulary(names=tuple(f"c{i}" for i in range(21)), dataset="voc_21", background=0)
    queries = DenseSegmenter.queries(type("S", (), {"spec": spec})(), vocab)
    assert queries.queries == expected.queries and queries.query_class == expected.query_class
    assert queries.queries[:3] == ("sky", "wall", "tree") and queries.background == 0
    assert queries.query_class.count(15) == 7  # person and its six synonyms
    free = DenseSegmenter.queries(type("S", (), {"spec": spec})(), Vocabulary(names=("a", "b")))
    assert free.queries == ("a", "b")  # a free class list: its own names


def test_deop_on_a_with_background_benchmark_is_recorded_as_not_run(tmp_path):
    from harness.tasks.segmentation import _skip_without_background_rule

    cells = plan(load_suite(ROOT / "suites" / "training_free.yaml"))
    by_id = {c.id: c for c in cells}
    with pytest.raises(CellSkipped, match="method 'deop' has no background decision"):
        _skip_without_background_rule(by_id["voc-21/own/deop"])
    _skip_without_background_rule(by_id["voc-20/own/deop"])  # without background: it runs
    _skip_without_background_rule(by_id["voc-21/own/sclip"])


def test_the_shared_setting_gives_every_training_free_method_one_protocol():
    from harness.runner import resolve_method

    cells = [c for c in plan(load_suite(ROOT / "suites" / "training_free.yaml"))
             if c.setting.name == "shared" and c.benchmark.name == "voc-21" and c.row.method not in ("deop",
                                                                                                      "simbaseline")]
    keys = ("short_side", "mode", "crop", "stride", "pad_to", "tau", "names", "pamr")
    shared = {tuple(resolve_method(c)[k] for k in keys) for c in cells}
    assert shared == {(336, "slide", 224, 112, 0, 40.0, "sclip", False)} and len(cells) == 10  # 6 + issue 23's 4
    thresholds = {METHODS.get(c.row.method).benchmark_settings(c.method_options, "voc_21")["per_dataset"]
                  .get("prob_thd", 0.0) for c in cells}
    assert thresholds == {0.1}
