"""How far stain.py's frame anchors move when the same frame is seen at another magnification or in
another stain (benchmarks/quality/derived.py), against how far they vary between TRAIN frames.

The stain map is only as good as its anchors: the same slide must give the same anchors whatever the
magnification, and another stain must move them (that is what the map undoes). Cheap (no training), so
run it before a CPU probe of a new anchor design. TEST is never read.

    infra/env/run.sh python benchmarks/stain_anchor_shift.py --train ../shared/data/blood-cells/images/TRAIN
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.quality.derived import magnified, recoloured  # noqa: E402
from benchmarks.stain_reference import sampled_frames  # noqa: E402
from components.transform.stain import ANCHORS, frame_anchors  # noqa: E402


def anchors(pixels: np.ndarray) -> np.ndarray:
    """float [h, w, 3] 0-255 -> [anchors, 3 channels] of optical density."""
    *values, _ = frame_anchors(tf.constant(pixels[None] / 255.0, tf.float32))
    return np.stack([v[0].numpy() for v in values])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", required=True, help="the TRAIN folder: <CLASS>/<image>")
    parser.add_argument("--per-class", type=int, default=15)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    plain, shift = [], {"magnified_x3": [], "recoloured": []}
    for pixels in sampled_frames(args.train, args.per_class, args.seed):
        base = anchors(pixels)
        plain.append(base)
        shift["magnified_x3"].append(np.abs(anchors(magnified(pixels)) - base).mean(axis=1))
        shift["recoloured"].append(np.abs(anchors(recoloured(pixels)) - base).mean(axis=1))
    spread = np.asarray(plain).std(axis=0).mean(axis=1)
    print(f"{len(plain)} frames; anchor shift, mean over channels, median (90th percentile), in optical density")
    print(f"{'anchor':<12}{'spread between frames':>24}" + "".join(f"{k:>26}" for k in shift))
    for i, name in enumerate(ANCHORS):
        cells = "".join(f"{np.median(np.asarray(v)[:, i]):>17.4f} ({np.percentile(np.asarray(v)[:, i], 90):.4f})"
                        for v in shift.values())
        print(f"{name:<12}{spread[i]:>24.4f}{cells}")


if __name__ == "__main__":
    main()
