"""Raw layouts of the training-free family's benchmarks that the DeOP converters do not read.

``harness.data.prepare.raw_pairs`` looks a format up here when it is not one of its own. The label values
are mapped by the catalog's lookup table exactly as for the other sets; only the file pairing differs:

- ``voc2012`` (VOC-21): the VOC2012 folder (``VOCdevkit/VOC2012`` of ``VOCtrainval_11-May-2012.tar``):
  ``JPEGImages/*.jpg``, ``SegmentationClass/*.png`` (palette PNGs: the palette index is the class, 0 background,
  255 borders) and ``ImageSets/Segmentation/{train,val}.txt`` (1,464 / 1,449 images).
- ``cityscapes``: the folder holding ``leftImg8bit/`` (``leftImg8bit_trainvaltest.zip``) and ``gtFine/``
  (``gtFine_trainvaltest.zip``): ``leftImg8bit/{train,val}/<city>/<stem>_leftImg8bit.png`` and
  ``gtFine/{train,val}/<city>/<stem>_gtFine_labelIds.png`` (500 val images, 3 cities). The prepared layout
  is flat, one file per stem ``<city>_<seq>_<frame>``, images kept as PNG.

PC-60 reads the same raw files as PC-59 (``pcontext59``) and COCO-Object the same as COCO-Stuff
(``coco_stuff``); their catalog entries map background differently.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from harness.errors import DataError

from .layout import MAX_NAMED
from .raw_pairs import RawPair, _find_list, _listed_pairs

CITYSCAPES_IMAGE_SUFFIX = "_leftImg8bit.png"
CITYSCAPES_LABEL_SUFFIX = "_gtFine_labelIds.png"


def voc2012_pairs(raw: Path, split: str) -> list[RawPair]:
    lst = _find_list(raw, (f"ImageSets/Segmentation/{split}.txt",), f"VOC2012 {split}")
    if not (raw / "SegmentationClass").is_dir():
        raise DataError(
            f"the VOC2012 label folder {raw / 'SegmentationClass'} does not exist; point --raw at "
            f"VOCdevkit/VOC2012 of VOCtrainval_11-May-2012.tar (SegmentationClass, not SegmentationClassAug)."
        )
    return _listed_pairs(raw, lst, "JPEGImages", "SegmentationClass")


def cityscapes_pairs(raw: Path, split: str) -> list[RawPair]:
    label_root, image_root = raw / "gtFine" / split, raw / "leftImg8bit" / split
    for what, folder, archive in (("label", label_root, "gtFine_trainvaltest.zip"),
                                  ("image", image_root, "leftImg8bit_trainvaltest.zip")):
        if not folder.is_dir():
            raise DataError(
                f"the Cityscapes {what} folder {folder} does not exist; point --raw at the folder where "
                f"{archive} was extracted (it holds gtFine/ and leftImg8bit/)."
            )
    labels = sorted(label_root.glob(f"*/*{CITYSCAPES_LABEL_SUFFIX}"))
    if not labels:
        raise DataError(f"no *{CITYSCAPES_LABEL_SUFFIX} maps in the city folders of {label_root}; is --raw the "
                        f"Cityscapes folder?")
    pairs, missing = [], []
    for label in labels:
        stem = label.name[: -len(CITYSCAPES_LABEL_SUFFIX)]
        image = image_root / label.parent.name / f"{stem}{CITYSCAPES_IMAGE_SUFFIX}"
        pairs.append(RawPair(stem, image, label))
        if not image.is_file():
            missing.append(str(image))
    if missing:
        raise DataError(
            f"{len(missing)} Cityscapes label maps have no image: {', '.join(missing[:MAX_NAMED])}"
            f"{' ...' if len(missing) > MAX_NAMED else ''}. Extract leftImg8bit_trainvaltest.zip into --raw."
        )
    return pairs


EXTRA_RAW_READERS: dict[str, Callable[[Path, str], list[RawPair]]] = {
    "voc2012": voc2012_pairs,
    "cityscapes": cityscapes_pairs,
}
