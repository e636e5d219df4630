"""Accuracy cost of tfjs weight quantization: one pushed SavedModel converted with each setting
(none, float16, uint8) and run in Node (tfjs, wasm backend) on a whole image folder, against the
SavedModel's own `serving_pixels` on the same decoded pixels.

    infra/env/run.sh python -m benchmarks.tfjs_quantization --model runs/full/bloodcell/serving/bloodcell/VERSION \
        --images ../shared/data/blood-cells/images/TEST [--backend wasm]

Prints a Markdown table: bytes of model.json and its shards (before the CDN gzips the JSON), accuracy, accuracy change against the SavedModel,
predictions that changed class, and the largest probability difference.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from testkit import browser as bh

from components.tfjs_publisher import convert

CHUNK = 256  # images per Node call: 256 x 240 x 320 x 3 float32 is ~236 MB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a pushed SavedModel version folder")
    parser.add_argument("--images", required=True, help="<dir>/<CLASS>/* labelled images (e.g. TEST)")
    parser.add_argument("--classes", default="EOSINOPHIL,LYMPHOCYTE,MONOCYTE,NEUTROPHIL")
    parser.add_argument("--backend", default="wasm")
    args = parser.parse_args()

    classes = args.classes.split(",")
    files = sorted(p for c in classes for p in (Path(args.images) / c).iterdir() if p.is_file())
    labels = np.array([classes.index(p.parent.name) for p in files])
    with tempfile.TemporaryDirectory(prefix="tfjs-quant-", dir="/tmp") as tmp:
        converted = {}
        for q in convert.QUANTIZATIONS:
            converted[q] = f"{tmp}/{q}"
            convert.convert(args.model, converted[q], q)
        reference, got = [], {q: [] for q in converted}
        for start in range(0, len(files), CHUNK):
            pixels = bh.decoded_pixels(files[start:start + CHUNK])
            reference.append(bh.saved_model_probabilities(args.model, pixels))
            path = bh.write_pixels(pixels, Path(tmp) / "pixels.f32")
            for q, folder in converted.items():
                got[q].append(bh.node_probabilities(folder, path, args.backend))
            print(f"  {min(start + CHUNK, len(files))}/{len(files)} images", file=sys.stderr)
        reference = np.concatenate(reference)
        base_acc = float((reference.argmax(1) == labels).mean())
        print(f"{len(files)} images from {args.images}; tfjs {args.backend} backend in Node; "
              f"SavedModel accuracy {base_acc:.4f}\n")
        print("| weights | bytes (model.json + shards) | accuracy | change vs SavedModel | class changed | max prob diff |")
        print("|---|---|---|---|---|---|")
        for q, parts in got.items():
            probs = np.concatenate(parts)
            acc = float((probs.argmax(1) == labels).mean())
            changed = int((probs.argmax(1) != reference.argmax(1)).sum())
            print(f"| {q} | {convert.model_bytes(converted[q])} | {acc:.4f} | {acc - base_acc:+.4f} | {changed} | "
                  f"{np.abs(probs - reference).max():.2e} |")


if __name__ == "__main__":
    main()
