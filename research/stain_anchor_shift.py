"""How far stain.py's frame anchors and map move when the same frame is seen at another magnification
or in another stain (benchmarks/quality/derived.py), against how far they vary between TRAIN frames.

The stain map is only as good as its anchors: the same slide must give the same anchors whatever the
magnification, and another stain must move them (that is what the map undoes). Then, on the model's
80x80 nucleus crops (mean absolute difference, 0-1 scale), for each set of adjustments the map may fit:
- recoloured: a recoloured frame's mapped crop against the plain frame's mapped crop (what the map
  leaves of another stain; "none" is the crop without a map);
- magnified map: the plain frame mapped with the map fitted on its magnified view, against the plain
  frame mapped with its own (what magnification does to the map; 0 without one);
- plain change: how far the map moves a plain frame's crop.
On the three maps probed through the pipeline so far, these foresaw how recoloured and magnified
`val` went, except one magnified drop they gave no reason for (research/results/val_probes.md).
Cheap (no training): run it before a CPU probe of a new map, not instead of one. TEST is never read.

    infra/env/run.sh python -m research.stain_anchor_shift --train ../shared/data/blood-cells/images/TRAIN \
        --adjusted turn,colourfulness,greyness turn
"""
from __future__ import annotations

import argparse

import numpy as np
import tensorflow as tf


from benchmarks.quality.derived import magnified, recoloured
from research.stain_reference import sampled_frames
from models.transform.nucleus_crop import nucleus_crop
from models.transform.stain import ADJUSTED, ANCHORS, apply_stain_map, fit_stain_map, frame_anchors

CROP = 80  # the default image_size


def anchors(frame: tf.Tensor) -> np.ndarray:
    """[1, h, w, 3] in [0, 1] -> [anchors, 3 channels] of optical density."""
    *values, _ = frame_anchors(frame)
    return np.stack([v[0].numpy() for v in values])


def crop_shifts(plain: tf.Tensor, plain_crop: tf.Tensor, views: dict[str, tf.Tensor],
                adjusted: tuple[str, ...] | None) -> dict:
    """Mean absolute crop differences for one frame; adjusted None: no map."""
    if adjusted is None:
        return {"recoloured": float(tf.reduce_mean(tf.abs(nucleus_crop(views["recoloured"], CROP) - plain_crop))),
                "magnified map": 0.0, "plain change": 0.0}

    def mapped(frame: tf.Tensor, fitted_on: tf.Tensor) -> tf.Tensor:
        return nucleus_crop(apply_stain_map(fit_stain_map(fitted_on, adjusted), frame), CROP)

    own = mapped(plain, plain)
    return {"recoloured": float(tf.reduce_mean(tf.abs(mapped(views["recoloured"], views["recoloured"]) - own))),
            "magnified map": float(tf.reduce_mean(tf.abs(mapped(plain, views["magnified_x3"]) - own))),
            "plain change": float(tf.reduce_mean(tf.abs(own - plain_crop)))}


def summary(values) -> str:
    return f"{np.median(values):>9.4f} ({np.percentile(values, 90):.4f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", required=True, help="the TRAIN folder: <CLASS>/<image>")
    parser.add_argument("--per-class", type=int, default=15)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--adjusted", nargs="*", default=[",".join(ADJUSTED)],
                        help="comma-separated adjustments for each map to compare (stain.ADJUSTABLE); "
                             "an empty string: the background offset only")
    args = parser.parse_args()
    maps = {"none": None} | {a or "offset only": tuple(x for x in a.split(",") if x) for a in args.adjusted}
    plain_anchors, shift = [], {"magnified_x3": [], "recoloured": []}
    crops = {name: [] for name in maps}
    for pixels in sampled_frames(args.train, args.per_class, args.seed):
        plain = tf.constant(pixels[None] / 255.0, tf.float32)
        views = {name: tf.constant(fn(pixels)[None] / 255.0, tf.float32)
                 for name, fn in (("magnified_x3", magnified), ("recoloured", recoloured))}
        base = anchors(plain)
        plain_anchors.append(base)
        for name, view in views.items():
            shift[name].append(np.abs(anchors(view) - base).mean(axis=1))
        plain_crop = nucleus_crop(plain, CROP)
        for name, adjusted in maps.items():
            crops[name].append(crop_shifts(plain, plain_crop, views, adjusted))
    spread = np.asarray(plain_anchors).std(axis=0).mean(axis=1)
    print(f"{len(plain_anchors)} frames; anchor shift, mean over channels, median (90th percentile), in optical density")
    print(f"{'anchor':<12}{'spread between frames':>24}" + "".join(f"{k:>26}" for k in shift))
    for i, name in enumerate(ANCHORS):
        cells = "".join(f"{np.median(np.asarray(v)[:, i]):>17.4f} ({np.percentile(np.asarray(v)[:, i], 90):.4f})"
                        for v in shift.values())
        print(f"{name:<12}{spread[i]:>24.4f}{cells}")
    print(f"\n{CROP}x{CROP} crops, mean absolute difference, median (90th percentile)")
    columns = ("recoloured", "magnified map", "plain change")
    print(f"{'map':<34}" + "".join(f"{c:>20}" for c in columns))
    for name, rows in crops.items():
        print(f"{name:<34}" + "".join(f"{summary([r[c] for r in rows]):>20}" for c in columns))


if __name__ == "__main__":
    main()
