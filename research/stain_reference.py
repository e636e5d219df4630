"""The reference stain of models/transform/stain.py: the mean of its frame anchors (each anchor's
density per channel) over random TRAIN frames. Run once when the reference is set; the
printed tuples go into stain.py. TEST is never read.

    infra/env/run.sh python -m research.stain_reference --train ../shared/data/blood-cells/images/TRAIN
"""
from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np
import tensorflow as tf


from models.transform.preprocessing import decode_rgb
from models.transform.stain import ANCHORS, frame_anchors


def sampled_frames(train: str, per_class: int, seed: int):
    """Decoded TRAIN frames, float32 [h, w, 3] 0-255: per_class at random from each class folder."""
    random.seed(seed)
    for class_dir in sorted(p for p in Path(train).iterdir() if p.is_dir()):
        files = sorted(p for p in class_dir.iterdir() if p.is_file())
        for path in random.sample(files, min(per_class, len(files))):
            yield decode_rgb(tf.constant(path.read_bytes())).numpy().astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", required=True, help="the TRAIN folder: <CLASS>/<image>")
    parser.add_argument("--per-class", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    anchors = []
    for pixels in sampled_frames(args.train, args.per_class, args.seed):
        *values, usable = frame_anchors(tf.constant(pixels[None] / 255.0))
        if bool(usable[0]):
            anchors.append(np.concatenate([v[0] for v in values]))
    anchors = np.asarray(anchors)
    mean, spread = anchors.mean(axis=0), anchors.std(axis=0)
    print(f"{len(anchors)} frames")
    for i, name in enumerate(a.upper() for a in ANCHORS):
        part = slice(3 * i, 3 * i + 3)
        print(f"REFERENCE_{name} =", tuple(round(float(v), 4) for v in mean[part]), " sd", spread[part].round(4))


if __name__ == "__main__":
    main()
