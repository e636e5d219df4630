"""Prints how the TRAIN images group into original cells (components/image_example_gen/cell_groups.py,
which the ingest uses for its validation split), and with --nucleus-width how large each group's
nucleus is (the width the Transform's crop is sized by), to see where one cell sits in its class.

    infra/env/run.sh python -m benchmarks.quality.cell_groups --train ../shared/data/blood-cells/images/TRAIN \
        [--nucleus-width] [--out groups.json]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from components.image_example_gen.cell_groups import CUT, GroupedFiles, group_files

MIN_GROUP = 5     # smaller groups are mostly stray copies split off a cell, not cells
BATCH = 64


def nucleus_widths(images: Sequence[bytes]) -> np.ndarray:
    """Encoded RGB images of one size -> width in pixels (square root of the area) of each image's
    nucleus, as models/transform/nucleus_crop.py finds it; 0 where it finds none."""
    import tensorflow as tf

    from models.transform.nucleus_crop import nucleus_centres
    from models.transform.preprocessing import decode_rgb

    widths = []
    for start in range(0, len(images), BATCH):
        pixels = tf.stack([decode_rgb(tf.constant(b)) for b in images[start:start + BATCH]])
        _, _, area = nucleus_centres(tf.cast(pixels, tf.float32) / 255.0)
        widths.append(np.sqrt(area.numpy()))
    return np.concatenate(widths) if widths else np.zeros(0)


def group_nucleus_widths(groups: Sequence[GroupedFiles], read_bytes: Callable[[str], bytes],
                         min_group: int = MIN_GROUP) -> dict[str, float]:
    """Median nucleus width of each group of at least min_group images, by group key: the median,
    because the copies' rotations and shifts move a few of them off the nucleus."""
    return {g.key: float(np.median(nucleus_widths([read_bytes(m) for m in g.members])))
            for g in groups if len(g.members) >= min_group}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", required=True, help="the TRAIN folder: <CLASS>/<image>")
    parser.add_argument("--cut", type=float, default=CUT)
    parser.add_argument("--nucleus-width", action="store_true",
                        help=f"also the median nucleus width of each group of {MIN_GROUP} images or more")
    parser.add_argument("--out", help="write {class: {file name: group}} (and the widths) as JSON here")
    args = parser.parse_args()
    result, widths = {}, {}
    for class_dir in sorted(p for p in Path(args.train).iterdir() if p.is_dir()):
        files = sorted(str(p) for p in class_dir.iterdir() if p.is_file())
        encoded = {p: Path(p).read_bytes() for p in files}  # read once: grouping and widths both need them
        groups = group_files(files, encoded.__getitem__, args.cut)
        result[class_dir.name] = {Path(f).name: i for i, g in enumerate(groups) for f in g.members}
        sizes = np.array([len(g.members) for g in groups])
        print(f"{class_dir.name}: {len(files)} images, {len(sizes)} groups, median size {np.median(sizes):.0f}, "
              f"largest {sizes.max()}, single images {(sizes == 1).sum()}")
        if args.nucleus_width:
            by_group = group_nucleus_widths(groups, encoded.__getitem__)
            widths[class_dir.name] = {Path(k).name: round(v, 1) for k, v in by_group.items()}
            w = np.array(sorted(by_group.values()))
            print(f"  nucleus width of {len(w)} groups of {MIN_GROUP}+ images: median {np.median(w):.1f} px, "
                  f"10th-90th percentile {np.percentile(w, 10):.1f}-{np.percentile(w, 90):.1f}, "
                  f"smallest {', '.join(f'{v:.1f}' for v in w[:3])}")
    if args.out:
        Path(args.out).write_text(json.dumps({"groups": result, "nucleus_width": widths} if args.nucleus_width
                                             else result, indent=1))


if __name__ == "__main__":
    main()
