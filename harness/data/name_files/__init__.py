"""Class-name files of the training-free family, as data with provenance (TRAINING_FREE_SPEC §2).

Which words a method queries for each class is the largest hidden variable of the family's numbers, so the
name file is a named choice, never implicit:

- ``sclip``: wangf3014/SCLIP's ``configs/cls_*.txt`` (byte-identical in sinahmr/NACLIP): VOC background as 26
  words, synonyms for person and tvmonitor, ", "-separated;
- ``clearclip``: mc-lan/ClearCLIP's files: the single word "background", no synonyms (split on ",");
- ``proxyclip``: mc-lan/ProxyCLIP's files: "; "-separated, background as a list, no person/tv synonyms;
- ``plain``: the catalog's class names, one per class ("background" for class 0 where there is one).

The text files here are copied byte for byte from the repositories; ``sources.json`` gives, for each, the
repository, commit, path and git blob id of every copy (a test recomputes the blob ids). PC-60, PC-59,
COCO-Stuff, Cityscapes and ADE-150 are the same file in all three repositories (the ``shared-`` files);
PC-459 and A-847 have ProxyCLIP's files only.

Each line of a file is one class, in the dataset's train-id order; a line may list synonyms, each its own
text query mapped to the line's class. Checked on load, each a clear error: the line count must equal the
dataset's classes; no empty name; no name twice, and no two names equal up to case (CLIP's tokenizer
lowercases, so they would be one prompt). The only exception is a duplicate the published file itself holds,
listed under ``accepted_duplicates`` in ``sources.json`` with what it does.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from harness.errors import DataError
from harness.paths import read_text_file

from ..info import DatasetInfo

HERE = Path(__file__).resolve().parent
FAMILIES: tuple[str, ...] = ("sclip", "clearclip", "proxyclip", "plain")
# how each repository's get_cls_idx splits a line into synonyms
SEPARATORS: dict[str, str] = {"sclip": ", ", "clearclip": ",", "proxyclip": "; "}
FAMILY_REPO: dict[str, str] = {"sclip": "wangf3014/SCLIP", "clearclip": "mc-lan/ClearCLIP",
                               "proxyclip": "mc-lan/ProxyCLIP"}
# the file each repository reads for a catalog dataset
UPSTREAM_FILE: dict[str, str] = {
    "voc_21": "cls_voc21.txt", "voc_20": "cls_voc20.txt", "pc_60": "cls_context60.txt",
    "pc_59": "cls_context59.txt", "coco_object": "cls_coco_object.txt", "coco_stuff_171": "cls_coco_stuff.txt",
    "cityscapes": "cls_city_scapes.txt", "ade_150": "cls_ade20k.txt",
    "pc_459": "cls_context459.txt", "ade_847": "cls_ade20k847.txt",  # ProxyCLIP only
}


@dataclass(frozen=True)
class NameSource:
    """One published copy of a stored name file."""

    repo: str
    commit: str
    path: str

    def __str__(self) -> str:
        return f"{self.repo}@{self.commit[:7]}:{self.path}"


@dataclass(frozen=True)
class ClassNames:
    """The text queries of one dataset under one name file: `synonyms[c]` are class c's queries."""

    dataset: str
    family: str  # one of FAMILIES, or "file" for a user's own file
    synonyms: tuple[tuple[str, ...], ...]
    file: str  # the stored file's name, a user file's path, or "catalog" for plain names
    sources: tuple[NameSource, ...] = ()
    blob: str = ""  # git blob id of the stored file ("" for plain names)
    accepted_duplicates: tuple[str, ...] = ()

    @property
    def num_classes(self) -> int:
        return len(self.synonyms)

    @property
    def queries(self) -> tuple[str, ...]:
        """Every synonym in file order: one text query each."""
        return tuple(name for line in self.synonyms for name in line)

    @property
    def query_class(self) -> tuple[int, ...]:
        """The class index of each query (same order as `queries`)."""
        return tuple(c for c, line in enumerate(self.synonyms) for _ in line)

    def describe(self) -> str:
        """What a result records: the family and where its file comes from."""
        where = ", ".join(str(s) for s in self.sources) or self.file
        return f"{self.family} ({where})"


def parse_names(text: str, separator: str, where: str) -> tuple[tuple[str, ...], ...]:
    """Lines -> synonyms, as the repositories' ``get_cls_idx`` reads them (one class per line, a final
    newline optional), with each name stripped as CLIP's tokenizer does. An empty line or name is an error."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    out, empty = [], []
    for number, line in enumerate(lines, 1):
        names = tuple(n.strip() for n in line.split(separator))
        if not all(names):
            empty.append(number)
        out.append(names)
    if empty:
        raise DataError(f"name file {where}: line(s) {empty} hold an empty name (a blank line, or a separator "
                        f"{separator!r} with nothing beside it). Every line names one class.")
    return tuple(out)


def prompt_key(name: str) -> str:
    """What CLIP's tokenizer makes of a name (byte-order marks dropped, runs of spaces one space, lower case):
    two names with the same key are one prompt, so the duplicate check compares keys."""
    return " ".join(name.replace("\ufeff", " ").split()).lower()


def check_names(synonyms: tuple[tuple[str, ...], ...], info: DatasetInfo, where: str,
                accepted: tuple[str, ...] = ()) -> None:
    """The line count matches the dataset; no name twice, none equal up to case (unless `accepted`)."""
    if len(synonyms) != info.num_classes:
        raise DataError(
            f"name file {where} has {len(synonyms)} lines, but dataset {info.name!r} has {info.num_classes} "
            f"classes (one line per class, in train-id order"
            f"{', line 1 the background' if info.has_background else ''}). Use the file made for this dataset."
        )
    seen: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for number, line in enumerate(synonyms, 1):
        for name in line:
            seen[prompt_key(name)].append((number, name))
    problems = []
    for key, hits in seen.items():
        if len(hits) < 2 or (key in accepted and len({n for _, n in hits}) == 1):
            continue
        spelled = {n for _, n in hits}
        kind = ("appears more than once" if len(spelled) == 1
                else "differs only in case or spacing (a byte-order mark counts as a space) from another name")
        problems.append(f"{' / '.join(sorted(spelled))!r} {kind} (lines {[n for n, _ in hits]})")
    if problems:
        raise DataError(
            f"name file {where}: " + "; ".join(problems) + ". CLIP's tokenizer lowercases, so these are one "
            "prompt scored for several queries; give every query a distinct name."
        )


@cache
def _sources() -> dict[str, dict]:
    return json.loads((HERE / "sources.json").read_text())


def stored_file(family: str, dataset: str) -> str:
    """The stored file (name under this folder) the `family` repository reads for `dataset`."""
    upstream = UPSTREAM_FILE[dataset]
    for name, record in _sources().items():
        if any(c["repo"] == FAMILY_REPO[family] and c["path"] == f"configs/{upstream}" for c in record["copies"]):
            return name
    has = [f for f in FAMILY_REPO if any(c["repo"] == FAMILY_REPO[f] and c["path"] == f"configs/{upstream}"
                                         for r in _sources().values() for c in r["copies"])]
    raise DataError(f"the {family} repository ({FAMILY_REPO[family]}) has no name file for {dataset!r}; "
                    f"configs/{upstream} is published by {', '.join(has) or 'none'}. Use names: plain, or one of "
                    f"those.")


def load_names(dataset: str | DatasetInfo, family: str) -> ClassNames:
    """The queries of `dataset` under the name file of `family` (one of FAMILIES)."""
    from harness.registries import DATASETS

    info = dataset if isinstance(dataset, DatasetInfo) else DATASETS.get(dataset)
    if family not in FAMILIES:
        raise DataError(f"unknown names family {family!r}; choose one of {', '.join(FAMILIES)}.")
    if family == "plain":
        synonyms = tuple((n.strip(),) for n in info.class_names)
        check_names(synonyms, info, f"plain names of {info.name!r}")
        return ClassNames(info.name, "plain", synonyms, "catalog")
    if info.name not in UPSTREAM_FILE:
        raise DataError(
            f"the {family} repository has no name file for dataset {info.name!r}; its files cover "
            f"{', '.join(UPSTREAM_FILE)}. Use names: plain, or a name file of your own."
        )
    name = stored_file(family, info.name)
    record = _sources()[name]
    accepted = tuple(record.get("accepted_duplicates", ()))
    synonyms = parse_names((HERE / name).read_text(encoding="utf-8"), SEPARATORS[family], name)
    check_names(synonyms, info, name, accepted)
    sources = tuple(NameSource(c["repo"], c["commit"], c["path"]) for c in record["copies"])
    return ClassNames(info.name, family, synonyms, name, sources, record["blob"], accepted)


def load_name_file(path: str | Path, dataset: str | DatasetInfo, separator: str = ", ") -> ClassNames:
    """A user's own name file for `dataset`, checked like the stored ones (no duplicate is accepted)."""
    from harness.registries import DATASETS

    info = dataset if isinstance(dataset, DatasetInfo) else DATASETS.get(dataset)
    path = Path(path)
    if separator not in (", ", ",", "; "):
        raise DataError(f"name-file separator {separator!r}: use ', ' (SCLIP), ',' (ClearCLIP) or '; ' (ProxyCLIP).")
    try:
        text = read_text_file(path, "name file")
    except OSError as exc:
        raise DataError(f"name file {path} cannot be read ({exc}).") from None
    synonyms = parse_names(text, separator, str(path))
    check_names(synonyms, info, str(path))
    return ClassNames(info.name, "file", synonyms, str(path))
