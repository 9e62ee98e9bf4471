"""Name files of the training-free family: provenance, parsing of each family's synonyms, alignment with the
catalog's classes, and the errors (line count, duplicates, case, unknown family).

The expected words are written out here from TRAINING_FREE_SPEC §2 and the repositories' files, not taken
from the loader.
"""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from harness.data import get_info
from harness.data.info import DatasetInfo, Layout, SplitLayout
from harness.data.name_files import (
    FAMILIES,
    HERE,
    UPSTREAM_FILE,
    load_name_file,
    load_names,
    parse_names,
)
from harness.errors import DataError

SCLIP_VOC_BACKGROUND = ("sky, wall, tree, wood, grass, road, sea, river, mountain, sands, desk, bed, building, "
                        "cloud, lamp, door, window, wardrobe, ceiling, shelf, curtain, stair, floor, hill, rail, "
                        "fence").split(", ")
PROXYCLIP_OBJECT_BACKGROUND = ["sky", "wall", "tree", "wood", "grass", "road", "sea", "river", "mountain", "sands",
                               "desk", "bed", "building", "cloud", "floor", "hill", "rail"]
PERSON = ("person", "person in shirt", "person in jeans", "person in dress", "person in sweater",
          "person in skirt", "person in jacket")
TV = ("television monitor", "tv monitor", "monitor", "television", "screen")


def _git_blob(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def test_every_stored_file_is_the_published_blob():
    sources = json.loads((HERE / "sources.json").read_text())
    assert sorted(sources) == sorted(p.name for p in HERE.glob("*.txt"))
    commits = {"wangf3014/SCLIP": "b56bd30", "sinahmr/NACLIP": "0cac3a6", "mc-lan/ClearCLIP": "ad68a40",
               "mc-lan/ProxyCLIP": "e7b767f"}
    for name, record in sources.items():
        assert _git_blob((HERE / name).read_bytes()) == record["blob"], name
        for copy in record["copies"]:
            assert copy["commit"].startswith(commits[copy["repo"]]) and len(copy["commit"]) == 40
            assert copy["path"] == f"configs/{name.split('-', 1)[1]}"


def test_sclip_family_voc_21_background_and_synonyms():
    names = load_names("voc_21", "sclip")
    assert list(names.synonyms[0]) == SCLIP_VOC_BACKGROUND and len(SCLIP_VOC_BACKGROUND) == 26
    assert names.synonyms[15] == PERSON and names.synonyms[20] == TV
    assert len(names.queries) == 26 + 18 + 7 + 5 == 56
    assert names.query_class[:27] == (0,) * 26 + (1,) and names.query_class[-5:] == (20,) * 5
    assert names.queries[names.query_class.index(15)] == "person"
    assert [str(s) for s in names.sources] == ["wangf3014/SCLIP@b56bd30:configs/cls_voc21.txt",
                                               "sinahmr/NACLIP@0cac3a6:configs/cls_voc21.txt"]
    assert load_names("voc_20", "sclip").synonyms[14] == PERSON
    assert load_names("coco_object", "sclip").synonyms[1] == (*PERSON, "body")


def test_clearclip_single_background_and_proxyclip_semicolon_lists():
    clear = load_names("voc_21", "clearclip")
    assert clear.synonyms[0] == ("background",) and clear.synonyms[15] == ("person",)
    assert clear.synonyms[20] == ("tvmonitor",) and len(clear.queries) == 21
    proxy = load_names("voc_21", "proxyclip")
    assert list(proxy.synonyms[0]) == SCLIP_VOC_BACKGROUND  # same 26 words, "; "-separated
    assert proxy.synonyms[15] == ("person",) and proxy.synonyms[20] == ("tvmonitor",)
    assert list(load_names("coco_object", "proxyclip").synonyms[0]) == PROXYCLIP_OBJECT_BACKGROUND
    assert load_names("coco_object", "clearclip").synonyms[0] == ("background",)
    # ProxyCLIP's VOC-20 file is ClearCLIP's, byte for byte
    assert load_names("voc_20", "proxyclip").file == load_names("voc_20", "clearclip").file


@pytest.mark.parametrize("dataset", ["pc_60", "pc_59", "coco_stuff_171", "cityscapes", "ade_150"])
def test_the_other_benchmarks_share_one_file_in_all_three_repositories(dataset):
    loaded = [load_names(dataset, family) for family in ("sclip", "clearclip", "proxyclip")]
    assert {n.file for n in loaded} == {f"shared-{UPSTREAM_FILE[dataset]}"}
    assert loaded[0].synonyms == loaded[1].synonyms == loaded[2].synonyms
    assert {s.repo for s in loaded[0].sources} == {"wangf3014/SCLIP", "sinahmr/NACLIP", "mc-lan/ClearCLIP",
                                                   "mc-lan/ProxyCLIP"}


# Where a repository's first word per line differs from the catalog's class name (all others are equal once
# spaces are removed; the shared COCO-Stuff and Cityscapes files write "trafficlight", "hotdog", ...).
RENAMED = {
    ("voc_21", "sclip"): {0: "sky", 4: "ship", 11: "table", 20: "television monitor"},
    ("voc_21", "clearclip"): {4: "ship", 11: "table"},
    ("voc_21", "proxyclip"): {0: "sky", 4: "ship", 11: "table"},
    ("voc_20", "sclip"): {3: "ship", 10: "table", 19: "television monitor"},
    ("voc_20", "clearclip"): {3: "ship", 10: "table"},
    ("voc_20", "proxyclip"): {3: "ship", 10: "table"},
    ("pc_60", "sclip"): {50: "table"},
    ("pc_59", "sclip"): {49: "table"},
    ("coco_object", "sclip"): {0: "sky"},
    ("coco_object", "clearclip"): {},
    ("coco_object", "proxyclip"): {0: "sky"},
    ("coco_stuff_171", "sclip"): {},
    ("cityscapes", "sclip"): {},
}


@pytest.mark.parametrize(("dataset", "family"), sorted(RENAMED))
def test_lines_follow_the_catalog_class_order(dataset, family):
    names, info = load_names(dataset, family), get_info(dataset)
    renamed = {c: names.synonyms[c][0] for c in range(info.num_classes)
               if names.synonyms[c][0].replace(" ", "") != info.class_names[c].replace(" ", "")}
    assert renamed == RENAMED[(dataset, family)]


def test_ade_150_lines_follow_the_catalog_order():
    # ADE's catalog names hold WordNet synonyms ("road, route"); the file keeps one word, mostly the first
    names, info = load_names("ade_150", "sclip"), get_info("ade_150")
    other = {c: names.synonyms[c][0] for c in range(150)
             if names.synonyms[c][0] not in {w.replace(" ", "") for w in re.split(", ", info.class_names[c].strip())}}
    assert other == {8: "windowpane", 37: "bathtub", 38: "railing", 87: "streetlight", 89: "televisionreceiver",
                     90: "airplane", 92: "apparel", 109: "swimmingpool", 113: "waterfall", 138: "ashcan"}


def test_plain_names_are_the_catalog_names_with_background_first():
    plain = load_names("voc_21", "plain")
    assert plain.synonyms[0] == ("background",) and plain.synonyms[11] == ("diningtable",)
    assert plain.describe() == "plain (catalog)"
    assert load_names("ade_150", "plain").synonyms[8] == ("window",)  # the catalog's "window " stripped
    assert len(load_names("coco_object", "plain").queries) == 81


def test_published_bed_duplicate_is_accepted_only_in_the_stored_files(tmp_path):
    for family in ("sclip", "proxyclip"):
        names = load_names("coco_object", family)
        assert names.accepted_duplicates == ("bed",)
        assert "bed" in names.synonyms[0] and names.synonyms[60] == ("bed",) == (get_info("coco_object").class_names[60],)
    own = tmp_path / "object.txt"
    own.write_bytes((HERE / "sclip-cls_coco_object.txt").read_bytes())
    with pytest.raises(DataError, match=r"'bed' appears more than once \(lines \[1, 61\]\)"):
        load_name_file(own, "coco_object")


def _classes(k: int) -> DatasetInfo:
    return DatasetInfo(name=f"k{k}", title="test", class_names=tuple(f"c{i}" for i in range(k)),
                       layout=Layout(val=SplitLayout("t/i", "t/l")), raw_format=None)


def test_user_file_errors(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text("\n".join(f"class {i}" for i in range(20)))
    with pytest.raises(DataError, match=r"has 20 lines, but dataset 'voc_21' has 21 classes .*line 1 the "
                                        r"background"):
        load_name_file(path, "voc_21")
    assert load_name_file(path, "voc_20").num_classes == 20
    path.write_text("cat, kitty\ndog, Cat\n")
    with pytest.raises(DataError, match=r"'Cat / cat' differs only in case .*lines \[1, 2\]"):
        load_name_file(path, _classes(2))
    path.write_text("cat; cat\n")
    with pytest.raises(DataError, match=r"'cat' appears more than once \(lines \[1, 1\]\)"):
        load_name_file(path, _classes(1), separator="; ")
    with pytest.raises(DataError, match=r"line\(s\) \[2\] hold an empty name"):
        parse_names("cat\n\ndog\n", ", ", "x")
    with pytest.raises(DataError, match="separator"):
        load_name_file(path, "voc_20", separator="|")


def test_parsing_follows_each_family_separator():
    assert parse_names("a, b c; d\ne\n", ", ", "x") == (("a", "b c; d"), ("e",))
    assert parse_names("a, b c; d\ne", "; ", "x") == (("a, b c", "d"), ("e",))
    assert parse_names("a,b\r\ne", ",", "x") == (("a", "b"), ("e",))


def test_proxyclip_pc_459_and_ade_847_files_only_there():
    pc459, a847 = load_names("pc_459", "proxyclip"), load_names("ade_847", "proxyclip")
    assert tuple(s[0] for s in pc459.synonyms) == get_info("pc_459").class_names
    # "; " separates synonyms in ProxyCLIP's files, so a line with commas is one query, as the repository reads it
    assert a847.synonyms[1] == ("building, edifice",) and len(a847.queries) == 847
    assert a847.synonyms[300] == ("altar, communion table, lords table",)  # the catalog writes "lord's"
    with pytest.raises(DataError, match=r"\(wangf3014/SCLIP\) has no name file for 'pc_459'; "
                                        r"configs/cls_context459.txt is published by proxyclip"):
        load_names("pc_459", "sclip")


def test_unknown_family_and_dataset_without_file():
    with pytest.raises(DataError, match=r"unknown names family 'official'; choose one of "
                                        + ", ".join(FAMILIES)):
        load_names("voc_21", "official")
    with pytest.raises(DataError, match="no name file for dataset 'synthetic_voc'.*names: plain"):
        load_names("synthetic_voc", "sclip")
