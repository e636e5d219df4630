"""Prints how the TRAIN images group into original cells (components/image_example_gen/cell_groups.py,
which the ingest uses for its validation split).

    infra/env/run.sh python -m benchmarks.quality.cell_groups --train ../shared/data/blood-cells/images/TRAIN \
        [--out groups.json]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from components.image_example_gen.cell_groups import CUT, group_files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", required=True, help="the TRAIN folder: <CLASS>/<image>")
    parser.add_argument("--cut", type=float, default=CUT)
    parser.add_argument("--out", help="write {class: {file name: group}} as JSON here")
    args = parser.parse_args()
    result = {}
    for class_dir in sorted(p for p in Path(args.train).iterdir() if p.is_dir()):
        files = sorted(str(p) for p in class_dir.iterdir() if p.is_file())
        groups = group_files(files, lambda p: Path(p).read_bytes(), args.cut)
        result[class_dir.name] = {Path(f).name: i for i, g in enumerate(groups) for f in g.members}
        sizes = np.array([len(g.members) for g in groups])
        print(f"{class_dir.name}: {len(files)} images, {len(sizes)} groups, median size {np.median(sizes):.0f}, "
              f"largest {sizes.max()}, single images {(sizes == 1).sum()}")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
