"""Which TRAIN images are augmented copies of the same original cell.

TRAIN holds ~280 originals, each saved 13-155 times rotated, shifted, flipped and sheared, and the file
names carry no id of the original. Those changes move pixels but keep the frame's colour make-up, so
images are grouped by a colour histogram (8 levels per channel, square-rooted) with average-linkage
clustering cut at a fixed distance. A group may hold a few originals; what matters for a validation
split is that one original's copies are not spread over two groups.

    infra/env/run.sh python -m benchmarks.quality.cell_groups --train ../shared/data/blood-cells/images/TRAIN \
        [--out groups.json]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.cluster.hierarchy import fcluster, linkage

LEVELS = 8               # per channel: 512 colour bins
THUMBNAIL = (80, 60)     # enough pixels for a stable histogram, fast to decode
CUT = 0.2                # clustering distance (Euclidean between square-rooted histograms)


def colour_signature(image: Image.Image) -> np.ndarray:
    pixels = np.asarray(image.convert("RGB").resize(THUMBNAIL), dtype=np.int64) * LEVELS // 256
    bins = (pixels[..., 0] * LEVELS + pixels[..., 1]) * LEVELS + pixels[..., 2]
    counts = np.bincount(bins.ravel(), minlength=LEVELS ** 3).astype(np.float64)
    return np.sqrt(counts / counts.sum())


def group_ids(signatures: np.ndarray, cut: float = CUT) -> np.ndarray:
    """Group number (from 0) of each signature; a single image is its own group."""
    if len(signatures) < 2:
        return np.zeros(len(signatures), dtype=np.int64)
    return fcluster(linkage(signatures, "average"), cut, "distance") - 1


def group_folder(class_dir: Path, cut: float = CUT) -> dict[str, int]:
    files = sorted(p for p in class_dir.iterdir() if p.is_file())
    signatures = np.stack([colour_signature(Image.open(p)) for p in files])
    return {p.name: int(g) for p, g in zip(files, group_ids(signatures, cut))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", required=True, help="the TRAIN folder: <CLASS>/<image>")
    parser.add_argument("--cut", type=float, default=CUT)
    parser.add_argument("--out", help="write {class: {file name: group}} as JSON here")
    args = parser.parse_args()
    result = {}
    for class_dir in sorted(p for p in Path(args.train).iterdir() if p.is_dir()):
        groups = group_folder(class_dir, args.cut)
        result[class_dir.name] = groups
        sizes = np.bincount(list(groups.values()))
        print(f"{class_dir.name}: {len(groups)} images, {len(sizes)} groups, median size {np.median(sizes):.0f}, "
              f"largest {sizes.max()}, single images {(sizes == 1).sum()}")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
