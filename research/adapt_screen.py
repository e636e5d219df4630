"""A screen of adaptation settings, cross-validated on a lab's reviewed cells only: which fine-tuning
settings to try through the real pipeline, chosen without the lab's other (reported) cells.

    infra/env/run.sh python -m research.adapt_screen \
        --pipeline-root RUN/bloodcell/pipeline_root --base-model SERVING/bloodcell/VERSION \
        --variant default: --variant balanced:balanced=1 --variant steps600:steps=600 \
        [--folds 3] [--seed 3] --out research/results/adapt_screen.json

RUN is a finished adaptation run (benchmarks.lab_adaptation's `seedN/nM/out`): its Transform output
holds the base data and the reviewed lab cells, already cropped, in both its train and eval splits. The
lab cells (both splits) are pooled and split into stratified folds; each fold's model is the blessed
model fine-tuned by the Trainer's own `adapt` on the base train split plus the other folds' lab cells,
and is scored on the fold's lab cells, one view (no symmetry averaging, no review score). `val` (base
cells; trained on when training.train_on_val is set) shows forgetting. TEST is never read.

A variant is `NAME:key=value,...` with keys steps, lr, share (of each batch from lab cells),
balanced (1: each lab class equally likely in the lab side of a batch) and transfer (the share of base
images given the colour statistics of a random lab cell before augmentation: the lab's colours on the
base lab's thousands of cells, not only on its own few).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pipeline.config import load_config
from pipeline.pipeline import trainer_params

SETTINGS = {"steps": ("adapt_steps", int), "lr": ("adapt_learning_rate", float), "share": ("lab_share", float),
            "balanced": (None, int), "transfer": (None, float)}


def parse_variant(text: str) -> tuple[str, dict]:
    name, _, spec = text.partition(":")
    settings = {}
    for item in filter(None, spec.split(",")):
        key, _, value = item.partition("=")
        if key not in SETTINGS:
            raise argparse.ArgumentTypeError(f"unknown setting {key!r} (known: {', '.join(SETTINGS)})")
        settings[key] = SETTINGS[key][1](value)
    if not name:
        raise argparse.ArgumentTypeError("a variant needs a name: NAME:key=value,...")
    return name, settings


def load_split(pipeline_root: Path, split: str):
    """(images, labels, is_lab) of one transformed split, in memory."""
    import tensorflow as tf
    import tensorflow_transform as tft

    from models.features import BASE_SOURCE, LABEL_KEY, SOURCE_KEY, TRANSFORMED_IMAGE_KEY

    transform = max((pipeline_root / "Transform" / "transform_graph").iterdir(), key=lambda p: int(p.name))
    examples = max((pipeline_root / "Transform" / "transformed_examples").iterdir(), key=lambda p: int(p.name))
    spec = tft.TFTransformOutput(str(transform)).transformed_feature_spec()
    files = sorted(str(p) for p in (examples / f"Split-{split}").glob("*.gz"))
    ds = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(512).map(lambda s: tf.io.parse_example(s, spec))
    images, labels, lab = [], [], []
    for batch in ds:
        images.append(batch[TRANSFORMED_IMAGE_KEY].numpy())
        labels.append(batch[LABEL_KEY].numpy().reshape(-1))
        lab.append(batch[SOURCE_KEY].numpy().reshape(-1) != BASE_SOURCE.encode())
    return np.concatenate(images), np.concatenate(labels), np.concatenate(lab)


def stratified_folds(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """The fold of each cell: each class dealt round the folds in a seeded order."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(labels), int)
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        fold[members] = np.arange(len(members)) % folds
    return fold


def channel_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each image's per-channel mean and standard deviation: [n, 3] each."""
    return images.mean(axis=(1, 2)), images.std(axis=(1, 2))


def colour_transfer(image, target_mean, target_std):
    """The image with each channel's mean and spread moved to the target's (Reinhard et al. 2001, in
    RGB), clipped to [0, 1]: the cell's own contrast pattern in another lab's colours."""
    import tensorflow as tf

    mean, std = tf.reduce_mean(image, axis=[0, 1]), tf.math.reduce_std(image, axis=[0, 1])
    return tf.clip_by_value((image - mean) / (std + 1e-3) * target_std + target_mean, 0.0, 1.0)


def adapt_dataset(base, lab, settings: dict, share: float, batch_size: int, seed: int):
    """Endless augmented batches, `share` of them lab cells (per class, when balanced), as the Trainer's;
    with `transfer`, that share of the base images recoloured to a random lab cell's statistics."""
    import tensorflow as tf

    from models.trainer import augment as augment_lib
    from models.trainer import data

    def endless(images, labels):
        return tf.data.Dataset.from_tensor_slices((images, labels)).shuffle(len(labels), seed=seed).repeat()

    base_side = endless(*base)
    if settings.get("transfer"):
        lab_mean, lab_std = (tf.constant(a, tf.float32) for a in channel_stats(lab[0]))
        fraction = float(settings["transfer"])

        def to_lab_colours(image, label):
            i = tf.random.uniform([], 0, len(lab[1]), dtype=tf.int32)
            chosen = tf.random.uniform([]) < fraction
            return tf.cond(chosen, lambda: colour_transfer(image, lab_mean[i], lab_std[i]), lambda: image), label

        base_side = base_side.map(to_lab_colours, num_parallel_calls=tf.data.AUTOTUNE)

    if settings.get("balanced"):
        classes = np.unique(lab[1])
        lab_side = tf.data.Dataset.sample_from_datasets(
            [endless(lab[0][lab[1] == c], lab[1][lab[1] == c]) for c in classes], seed=seed)
    else:
        lab_side = endless(*lab)
    ds = tf.data.Dataset.sample_from_datasets([lab_side, base_side], weights=[share, 1 - share], seed=seed)
    return data.map_images(ds.batch(batch_size), augment_lib.augment, seed, batch_size).prefetch(tf.data.AUTOTUNE)


def scores(model, images, labels, num_classes: int) -> dict:
    predicted = model.predict(images, batch_size=256, verbose=0).argmax(axis=1)
    return {"n": int(len(labels)), "correct": int((predicted == labels).sum()),
            "per_class_right": [int(((predicted == labels) & (labels == c)).sum()) for c in range(num_classes)],
            "per_class_n": [int((labels == c).sum()) for c in range(num_classes)]}


def pooled(fold_scores: list[dict]) -> dict:
    n = sum(s["n"] for s in fold_scores)
    right = np.sum([s["per_class_right"] for s in fold_scores], axis=0)
    counts = np.sum([s["per_class_n"] for s in fold_scores], axis=0)
    return {"n": n, "accuracy": round(sum(s["correct"] for s in fold_scores) / n, 4),
            "recall": [round(float(r / c), 3) if c else None for r, c in zip(right, counts)]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline-root", type=Path, required=True)
    parser.add_argument("--base-model", required=True, help="the blessed model's pushed version folder")
    parser.add_argument("--variant", type=parse_variant, action="append", required=True, metavar="NAME:SETTINGS")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    import keras

    from models.trainer import run_fn

    config = load_config()
    params = dataclasses.replace(trainer_params(config), seed=args.seed)
    train_images, train_labels, train_lab = load_split(args.pipeline_root, "train")
    eval_images, eval_labels, eval_lab = load_split(args.pipeline_root, "eval")
    val_images, val_labels, val_lab = load_split(args.pipeline_root, "val")
    base = (train_images[~train_lab], train_labels[~train_lab])
    lab_images = np.concatenate([train_images[train_lab], eval_images[eval_lab]])
    lab_labels = np.concatenate([train_labels[train_lab], eval_labels[eval_lab]])
    val = (val_images[~val_lab], val_labels[~val_lab])
    del eval_images
    fold = stratified_folds(lab_labels, args.folds, args.seed)
    print(f"{len(base[1])} base train cells, {len(lab_labels)} lab cells in {args.folds} folds, "
          f"{len(val[1])} val images", file=sys.stderr)

    results = {"pipeline_root": str(args.pipeline_root), "base_model": args.base_model, "folds": args.folds,
               "seed": args.seed, "lab_cells": int(len(lab_labels)), "class_names": list(config.class_names),
               "variants": []}
    for name, settings in [("blessed (not adapted)", {"steps": 0})] + args.variant:
        started = time.perf_counter()
        folds, val_scores = [], []
        for k in range(args.folds):
            if settings.get("steps") == 0:
                model = run_fn.architectures.build_model(params.model, params.image_size, params.num_classes)
                model.load_weights(f"{args.base_model}/variables/variables")
            else:
                variant = dataclasses.replace(params, **{SETTINGS[key][0]: value for key, value in settings.items()
                                                          if SETTINGS[key][0]})
                keras.utils.set_random_seed(args.seed + k)
                train_ds = adapt_dataset(base, (lab_images[fold != k], lab_labels[fold != k]), settings,
                                         variant.lab_share, variant.batch_size, args.seed + k)
                with tempfile.TemporaryDirectory() as log_dir:
                    model = run_fn.adapt(variant, args.base_model, train_ds, None, log_dir)
            folds.append(scores(model, lab_images[fold == k], lab_labels[fold == k], params.num_classes))
            val_scores.append(scores(model, *val, params.num_classes))
            if settings.get("steps") == 0:
                folds = [scores(model, lab_images, lab_labels, params.num_classes)]
                break
        row = {"name": name, "settings": settings, "lab": pooled(folds), "val": pooled(val_scores[:1]) | {
            "accuracy_per_fold": [round(s["correct"] / s["n"], 4) for s in val_scores]},
               "seconds": round(time.perf_counter() - started, 1)}
        results["variants"].append(row)
        print(json.dumps(row), file=sys.stderr)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
