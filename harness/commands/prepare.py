"""Convert an official dataset download into the prepared layout the harness loads.

Raw layouts (--raw points at):
  coco_stuff_171, synthetic_coco   the COCO folder: {train2017,val2017}/*.jpg, stuffthingmaps/{train2017,val2017}/*.png
  voc_20, synthetic_voc            VOC2012: JPEGImages/, SegmentationClassAug/, train.txt (trainaug), val.txt
  pc_59, synthetic_pc              VOC2010: JPEGImages/, SegmentationClassContext/ (0 bg, 1..59), ImageSets/SegmentationContext/
  ade_150, synthetic_ade           ADEChallengeData2016: images/{training,validation}, annotations/{training,validation}
  voc_21                           VOC2012: JPEGImages/, SegmentationClass/ (palette PNGs), ImageSets/Segmentation/val.txt
  pc_60                            as pc_59 (background 0 kept as class 0)
  coco_object                      as coco_stuff_171 (val2017 only; stuff and 255 become background 0)
  cityscapes                       leftImg8bit/val/<city>/*_leftImg8bit.png, gtFine/val/<city>/*_gtFine_labelIds.png
pc_459 and ade_847 have no converter: place the official prepared 16-bit TIFF labels (ignore 65535) under the data
root as pcontext-459/{JPEGImages,pc459_val} and ADE20K_2021_17_01/{images,annotations}_detectron2/{training,validation}.

--synthetic writes a small synthetic raw download first (to PATH) and prepares it: a complete dataset in seconds.
The conversion resumes where it stopped, and verifies what it wrote (counts, label ranges, sizes).
"""

from __future__ import annotations

import argparse
import os

HELP = "convert an official dataset download (or a synthetic one) into the prepared layout"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="dataset name (see `python -m harness list datasets`)")
    parser.add_argument("--raw", required=True, metavar="PATH", help="folder of the raw download (see above)")
    parser.add_argument("--out", metavar="PATH", default=None,
                        help="data root to write into (default: --data-root, $HARNESS_DATA or ./datasets)")
    parser.add_argument("--data-root", metavar="PATH", default=None, help="same as --out")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                        help="conversion processes (default: min(8, CPUs))")
    parser.add_argument("--synthetic", action="store_true",
                        help="first write a synthetic raw download of this (synthetic_*) dataset to --raw")
    parser.add_argument("--n-train", type=int, default=48, help="--synthetic: training images (default 48)")
    parser.add_argument("--n-val", type=int, default=16, help="--synthetic: validation images (default 16)")
    parser.add_argument("--size", type=int, default=64, help="--synthetic: image height in pixels (default 64)")
    parser.add_argument("--seed", type=int, default=0, help="--synthetic: random seed (default 0)")


def run(args: argparse.Namespace) -> int:
    from harness.data import data_root, get_info
    from harness.data.prepare import prepare_dataset
    from harness.errors import DataError
    from harness.paths import check_output_dir

    info = get_info(args.name)
    out = check_output_dir(data_root(args.out or args.data_root), "--out")
    if args.synthetic:
        from harness.data.synthetic import write_synthetic_raw

        if not info.synthetic:
            raise DataError(f"--synthetic needs a synthetic dataset (synthetic_*), not {info.name!r}.")
        write_synthetic_raw(info.raw_format or "", args.raw, n_train=args.n_train, n_val=args.n_val,
                            size=args.size, seed=args.seed, dataset=info.name)
        print(f"wrote a synthetic {info.raw_format} download to {args.raw}")
    prepare_dataset(info, args.raw, out, workers=max(1, args.workers), progress=None)
    return 0
