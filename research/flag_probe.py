"""Review-score variants for an adapted model, scored on features of the model itself: how many of the
lab's cells, of the lab's non-cells and of `val` each variant calls unlike the training images.

    infra/env/run.sh python -m research.flag_probe --run runs/lab_adaptation/seed1/n100 \
        --lab tecom=../shared/data/other-labs/tecom [--report] --out research/results/flag_probe_seed1.json

RUN is one benchmarks.lab_adaptation run (`seedN/nM`): its `lab/<name>/` holds the drawn (reviewed)
cells and its `out/` the pipeline run that adapted the model to them. Tuning figures come from the
drawn cells only: the lab's held-out side of the draw (the Transform's eval split, never trained on)
and non-cells made from every drawn cell (benchmarks/quality/derived.py). `--report` also scores the
lab's cells the draw never took, and their non-cells: the figures the benchmark reports on, measured
once per kept variant. TEST is never read.

Variants: `shared` (main: the lab's class means added, one limit from `val`), `lab_limit` (the lab
means' own limit, the base's scaled by the lab cells' left-out spread; measured and reverted), and
`pooled:W` (the lab train cells' spread, weighted to a share W of it, in the covariance itself, so the
score widens along the directions the lab's cells vary in and not along others; limit from `val`).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from models.trainer import typicality


def lab_class_means(lab_x, lab_y) -> np.ndarray:
    """One mean per class the lab's cells hold, in class order (typicality.with_lab_means's)."""
    return typicality.with_lab_means(np.zeros((0, lab_x.shape[1]), np.float32), lab_x, lab_y)


def pooled_fit(base_x, base_y, lab_x, lab_y, num_classes: int, lab_share: float):
    """Class means (base, then lab) and a precision fitted on both labs' within-class spread, the lab's
    rows repeated so that they are about `lab_share` of the rows."""
    from sklearn.covariance import ledoit_wolf

    base_means, _, _ = typicality.fit(base_x, base_y, num_classes)
    lab_means = lab_class_means(lab_x, lab_y)
    lab_classes = np.unique(lab_y)
    base_centred = base_x - base_means[base_y]
    lab_centred = lab_x - lab_means[np.searchsorted(lab_classes, lab_y)]
    repeats = max(1, round(lab_share / (1 - lab_share) * len(base_x) / len(lab_x)))
    rows = np.concatenate([base_centred, np.repeat(lab_centred, repeats, axis=0)]).astype(np.float64)
    cov, _ = ledoit_wolf(rows, assume_centered=True)
    return np.concatenate([base_means, lab_means]), np.linalg.inv(cov).astype(np.float32)


def lab_limit_fit(base_x, base_y, val_x, lab_x, lab_y, lab_cells, num_classes: int):
    """The reverted variant (21e0de6): per-mean limits [M], the lab means' scaled by the left-out spread."""
    means, precision, _ = typicality.fit(base_x, base_y, num_classes)
    val_d = typicality.min_distance(val_x, means, precision)
    base_limit = typicality.threshold(val_d)
    spread = []
    for c in np.unique(lab_y):
        feats, cells = lab_x[lab_y == c].astype(np.float64), lab_cells[lab_y == c]
        n = len(np.unique(cells))
        if n < 2:
            continue
        for cell in np.unique(cells):
            others = feats[cells != cell].mean(axis=0)
            spread.append(typicality.min_distance(feats[cells == cell], others[None], precision.astype(np.float64))
                          * (n + 1) * (n - 1) / n ** 2)
    lab_limit = base_limit * float(np.median(np.concatenate(spread)) / np.median(val_d)) if spread else base_limit
    lab_means = lab_class_means(lab_x, lab_y)
    limits = np.array([base_limit] * len(means) + [max(base_limit, lab_limit)] * len(lab_means), np.float32)
    return np.concatenate([means, lab_means]), precision, limits


def scores(means, precision, limits, features) -> np.ndarray:
    """Each input's distance to a mean over that mean's limit, at the mean where it is least."""
    diff = features[:, None, :] - means[None]
    return (np.einsum("ncd,de,nce->nc", diff, precision, diff) / limits).min(axis=1)


def summary(atypicality, probabilities=None, labels=None, review_below: float = 0.8) -> dict:
    """Unlike rate; with the answers, the review flag (unlike, or top probability under review_below)
    and how it falls on right and wrong answers (a non-cell's label is its cell's)."""
    out = {"n": int(len(atypicality)), "unlike": float((atypicality > 1).mean())}
    if probabilities is not None:
        flagged = (atypicality > 1) | (probabilities.max(axis=1) < review_below)
        right = probabilities.argmax(axis=1) == labels
        out.update(flagged=float(flagged.mean()), right=int(right.sum()),
                   errors_flagged=float(flagged[~right].mean()) if (~right).any() else None,
                   right_flagged=float(flagged[right].mean()) if right.any() else None)
    return out


def main(argv: list[str] | None = None) -> int:
    import tensorflow as tf
    import tf_keras as keras
    from PIL import Image

    from benchmarks.quality import derived, other_labs
    from models.trainer import architectures, data, dihedral
    from models.transform.preprocessing import resize_decoded_pixels
    from pipeline.config import load_config
    from pipeline.pipeline import trainer_params
    from research.adapt_screen import load_split

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--lab", type=other_labs.parse_other_lab, required=True, metavar="NAME=DIR")
    parser.add_argument("--share", type=float, nargs="+", default=[0.1, 0.25, 0.5])
    parser.add_argument("--report", action="store_true", help="also score the cells the draw never took")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    config = load_config()
    params = trainer_params(config)
    names = list(config.class_names)
    root = args.run / "out" / config.pipeline_name / "pipeline_root"
    serving = args.run / "out" / config.pipeline_name / "serving" / config.serving.model_name
    pushed = max((p for p in serving.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    model = architectures.build_model(params.model, params.image_size, params.num_classes)
    model.load_weights(f"{pushed}/variables/variables")
    both = keras.Model(model.input, [model.get_layer(typicality.FEATURE_LAYER).output, model.output])
    run = tf.function(lambda x: dihedral.run_views(both, x, params.average_symmetries), reduce_retracing=True)

    def features(images: np.ndarray):
        f, p = [], []
        for start in range(0, len(images), 64):
            a, b = run(tf.constant(images[start:start + 64]))
            f.append(a.numpy())
            p.append(b.numpy())
        return np.concatenate(f), np.concatenate(p)

    def recoloured(images, labels):
        ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(64)
        return np.concatenate([x.numpy() for x, _ in data.recoloured(ds, params.seed, 64)])

    def browser_crops(files, transform=None):
        out = []
        for path in files:  # one at a time: another lab's images vary in size
            pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
            if transform:
                pixels = transform(pixels)
            out.append(resize_decoded_pixels(tf.constant(pixels[None]), params.image_size,
                                             params.stain_normalisation).numpy()[0])
        return np.stack(out)

    train_x, train_y, train_lab = load_split(root, "train")
    val_x, val_y, val_lab = load_split(root, "val")
    eval_x, eval_y, eval_lab = load_split(root, "eval")
    stride = max(1, int(np.ceil((~train_lab).sum() / typicality.MAX_FIT_IMAGES)))
    base_x, base_y = train_x[~train_lab][::stride], train_y[~train_lab][::stride]
    lab_x, lab_y = train_x[train_lab], train_y[train_lab]
    tune_x, tune_y = eval_x[eval_lab], eval_y[eval_lab]
    val_x, val_y = val_x[~val_lab], val_y[~val_lab]
    del train_x, eval_x
    print(f"{len(base_y)} base, {len(val_y)} val, {len(lab_y)} lab train, {len(tune_y)} lab held-out of the draw",
          file=sys.stderr)

    base_f = np.concatenate([features(base_x)[0], features(recoloured(base_x, base_y))[0]])
    base_fy = np.tile(base_y, 2)
    val_f = np.concatenate([features(val_x)[0], features(recoloured(val_x, val_y))[0]])
    lab_f = np.concatenate([features(lab_x)[0], features(recoloured(lab_x, lab_y))[0]])
    lab_fy, lab_cells = np.tile(lab_y, 2), np.tile(np.arange(len(lab_y)), 2)
    sets = {"val": (val_f[: len(val_y)], None, None), "tune lab cells": (*features(tune_x), tune_y)}
    lab_name, lab_dir = args.lab
    cells = other_labs.load(lab_name, lab_dir, names)
    drawn = {p.name for p in (args.run / "lab" / lab_name).rglob("*") if p.is_file()}
    taken = np.array([f.name in drawn for f in cells.files])
    files = np.array(cells.files, dtype=object)
    sets["tune lab non-cells"] = (*features(browser_crops(files[taken], derived.not_a_cell)), cells.labels[taken])
    if args.report:
        sets["report lab cells"] = (*features(browser_crops(files[~taken])), cells.labels[~taken])
        sets["report lab non-cells"] = (*features(browser_crops(files[~taken], derived.not_a_cell)),
                                        cells.labels[~taken])

    variants = {}
    means, precision, _ = typicality.fit(base_f, base_fy, params.num_classes)
    means = typicality.with_lab_means(means, lab_f, lab_fy)
    variants["shared"] = (means, precision, typicality.threshold(typicality.min_distance(val_f, means, precision)))
    variants["lab_limit"] = lab_limit_fit(base_f, base_fy, val_f, lab_f, lab_fy, lab_cells, params.num_classes)
    for share in args.share:
        means, precision = pooled_fit(base_f, base_fy, lab_f, lab_fy, params.num_classes, share)
        variants[f"pooled:{share}"] = (means, precision,
                                       typicality.threshold(typicality.min_distance(val_f, means, precision)))
    result = {"run": str(args.run), "pushed": str(pushed), "report": args.report, "variants": {}}
    for name, (means, precision, limits) in variants.items():
        result["variants"][name] = {
            set_name: summary(scores(means, precision, np.broadcast_to(np.asarray(limits, np.float32), len(means)), f),
                              p, y) for set_name, (f, p, y) in sets.items()}
        print(name, json.dumps(result["variants"][name]), file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
