"""SavedModel `serving_default` latency on this CPU (median per call, batch 1 and 32) and each
model version's size on disk, for several models measured in the same run.

    infra/env/run.sh python -m benchmarks.serving_latency --model default=DIR --model tutorial_cnn=DIR \
        [--images ../shared/data/blood-cells/images/TEST] [--repeats 50]

DIR is a model version folder (saved_model.pb inside). The first --model is the baseline of the ratios.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import tensorflow as tf


def dir_bytes(path: str) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def median_ms(fn, batch, repeats: int) -> float:
    for _ in range(5):  # warm-up: graph tracing, thread pools
        fn(images=batch)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(images=batch)["probabilities"].numpy()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True, metavar="NAME=DIR")
    parser.add_argument("--images", default=str(Path(__file__).resolve().parent.parent / "data" / "sample" / "TEST"))
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()

    files = sorted(p for p in Path(args.images).rglob("*") if p.suffix.lower() in (".jpeg", ".jpg", ".png"))[:32]
    images = [p.read_bytes() for p in files]
    batches = {1: tf.constant(images[:1]), 32: tf.constant((images * 32)[:32])}
    rows = []
    for spec in args.model:
        name, path = spec.split("=", 1)
        fn = tf.saved_model.load(path).signatures["serving_default"]
        rows.append((name, {b: median_ms(fn, x, args.repeats) for b, x in batches.items()}, dir_bytes(path)))

    base = rows[0]
    print(f"{len(images)} distinct images from {args.images}; {args.repeats} timed calls per cell; "
          f"ratios against {base[0]}")
    print(f"| model | batch 1 median ms | ratio | batch 32 median ms | ratio | per image at 32, ms | size on disk MB | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for name, lat, size in rows:
        print(f"| {name} | {lat[1]:.2f} | {lat[1] / base[1][1]:.2f} | {lat[32]:.1f} | {lat[32] / base[1][32]:.2f} | "
              f"{lat[32] / 32:.2f} | {size / 1e6:.2f} | {size / base[2]:.2f} |")


if __name__ == "__main__":
    main()
