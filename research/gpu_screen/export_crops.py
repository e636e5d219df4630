"""Transform's `train` and `val` crops from a finished pipeline run -> one compact file for
research/gpu_screen/screen.py (the GPU machine has no TensorFlow and takes at most 64 MiB).

    infra/env/run.sh python -m research.gpu_screen.export_crops --pipeline-root RUN/bloodcell/pipeline_root \
        --out .gpu/crops_jpeg.npz

The `eval` split (TEST) is never exported: the screen tunes, and TEST is not a tuning signal. Each crop
is stored as a JPEG (quality 95, no chroma subsampling; about 1 level of 255 off per pixel on average),
so the full Kaggle split fits in about 34 MB.
"""
from __future__ import annotations

import argparse
import glob
import io
import os

import numpy as np
import tensorflow as tf
from PIL import Image


from benchmarks.quality.throughput import latest
from models.features import LABEL_KEY, TRANSFORMED_IMAGE_KEY

SPLITS = ("train", "val")


def encode_crop(crop: np.ndarray) -> bytes:
    """One crop, floats [S, S, 3] in [0, 1] -> JPEG bytes (quality 95, no chroma subsampling)."""
    pixels = np.clip(np.round(crop * 255), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=95, subsampling=0)
    return buffer.getvalue()


def jpeg_arrays(prefix: str, encoded: list[bytes]) -> dict[str, np.ndarray]:
    """JPEG crops -> {prefix_jpeg: all bytes in one array, prefix_len: each crop's length}."""
    return {f"{prefix}_jpeg": np.frombuffer(b"".join(encoded), np.uint8),
            f"{prefix}_len": np.asarray([len(e) for e in encoded])}


def read_split(examples_dir: str, split: str) -> tuple[list[bytes], np.ndarray]:
    files = sorted(glob.glob(os.path.join(examples_dir, f"Split-{split}", "*.gz")))
    if not files:
        raise SystemExit(f"error: no Split-{split} records under {examples_dir}")
    encoded, labels = [], []
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
        feature = tf.train.Example.FromString(record.numpy()).features.feature
        image = np.asarray(feature[TRANSFORMED_IMAGE_KEY].float_list.value, np.float32)
        side = int(round((image.size // 3) ** 0.5))
        encoded.append(encode_crop(image.reshape(side, side, 3)))
        labels.append(feature[LABEL_KEY].int64_list.value[0])
    return encoded, np.asarray(labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipeline-root", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    try:
        examples = latest(os.path.join(args.pipeline_root, "Transform", "transformed_examples", "*"))
    except FileNotFoundError as missing:
        raise SystemExit(f"error: {missing}: run the pipeline first") from None
    arrays = {}
    for split in SPLITS:
        encoded, labels = read_split(examples, split)
        arrays.update(jpeg_arrays(split, encoded))
        arrays[f"{split}_y"] = labels
        print(f"{split}: {len(labels)} crops, {sum(len(e) for e in encoded) / 1e6:.1f} MB, per class {np.bincount(labels)}")
    np.savez(args.out, **arrays)


if __name__ == "__main__":
    main()
