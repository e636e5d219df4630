"""The tutorial's CNN trained with its published recipe, outside the pipeline: the baseline row of the
model quality harness.

The recipe: whole TRAIN images squashed to 80x80 as Keras's load_img does (PIL, nearest), pixels
divided by 255, ImageDataGenerator's augmentations (rotations up to 10 degrees, shifts up to 10 %,
horizontal flips, nearest fill; computed the same way, batch-wise in numpy), Adadelta at learning rate 1.0,
batches of 32, 30 epochs, no validation and no early stopping.

Written against Keras 3 alone, so the same code trains on TensorFlow here (hours on this CPU) or on
JAX or PyTorch on a GPU machine that has no TensorFlow:

    KERAS_BACKEND=jax python -m benchmarks.quality.tutorial_recipe train --train-dir DIR/TRAIN \
        --weights tutorial.weights.h5 --record tutorial_train.json
    infra/env/run.sh python -m benchmarks.quality.tutorial_recipe evaluate --data-dir DIR \
        --weights tutorial.weights.h5 --record tutorial_train.json --out benchmarks/results/tutorial_cnn.json

`evaluate` measures TEST and TEST_SIMPLE like the harness does for the default model, exports the
SavedModel and the tfjs model (float32 weights, as the tutorial shipped them) and counts their bytes.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import hashlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
from PIL import Image


from models.trainer.tutorial_cnn import tutorial_layers

CLASS_NAMES = ["EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL"]
RECIPE = {"image_size": 80, "resize": "PIL nearest, whole image", "rescale": "1/255",
          "augmentation": {"rotation_degrees": 10, "shift_fraction": 0.1, "horizontal_flip": True,
                           "fill": "nearest"},
          "optimizer": "Adadelta", "learning_rate": 1.0, "batch_size": 32, "epochs": 30}


def load_image(path: Path, size: int = RECIPE["image_size"]) -> np.ndarray:
    """What Keras's load_img(target_size=(size, size)) gives: RGB, resized with PIL's nearest."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB").resize((size, size), Image.NEAREST), dtype=np.uint8)


def load_folder(folder: Path, class_names: list[str] = CLASS_NAMES) -> tuple[np.ndarray, np.ndarray]:
    """All images under folder/<CLASS>/, sorted by path, as uint8 [n, 80, 80, 3] and class indices."""
    missing = [c for c in class_names if not (Path(folder) / c).is_dir()]
    if missing:
        raise SystemExit(f"error: {folder} has no class folder {', '.join(missing)}")
    files = sorted(p for c in class_names for p in (Path(folder) / c).iterdir() if p.is_file())
    if not files:
        raise SystemExit(f"error: no images under {folder}/<{'|'.join(class_names)}>/")
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count()) as pool:  # PIL decodes outside the GIL
        images = np.stack(list(pool.map(load_image, files)))
    return images, np.array([class_names.index(p.parent.name) for p in files])


def classifier(num_classes: int = len(CLASS_NAMES)):
    """The deployable model: 0-255 pixels at 80x80 in, class probabilities out."""
    size = RECIPE["image_size"]
    return keras.Sequential([keras.Input((size, size, 3)), keras.layers.Rescaling(1.0 / 255),
                             *tutorial_layers(keras, num_classes)], name="tutorial_cnn")


def augment_batch(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """ImageDataGenerator's random transform, drawn per image: a rotation of up to 10 degrees, a shift of
    up to 10 % each way, a left-right mirror with probability 1/2."""
    aug, n = RECIPE["augmentation"], len(images)
    h, w = images.shape[1:3]
    return affine_batch(images,
                        theta=rng.uniform(-aug["rotation_degrees"], aug["rotation_degrees"], n),
                        tx=rng.uniform(-aug["shift_fraction"], aug["shift_fraction"], n) * h,
                        ty=rng.uniform(-aug["shift_fraction"], aug["shift_fraction"], n) * w,
                        flip=rng.random(n) < 0.5 if aug["horizontal_flip"] else np.zeros(n, bool))


def affine_batch(images: np.ndarray, theta: np.ndarray, tx: np.ndarray, ty: np.ndarray,
                 flip: np.ndarray) -> np.ndarray:
    """ImageDataGenerator.apply_transform for a batch, vectorised: per image, theta (degrees), shifts tx and
    ty (pixels) and a left-right mirror, read bilinearly with edges extended (order=1,
    fill_mode='nearest'). Float32 out, on the input's scale."""
    n, h, w, _ = images.shape
    angle = -np.deg2rad(theta)[:, None, None]
    rows, cols = np.meshgrid(np.arange(h) - (h - 1) / 2, np.arange(w) - (w - 1) / 2, indexing="ij")
    rows, cols = rows + np.asarray(ty)[:, None, None], cols + np.asarray(tx)[:, None, None]
    # Where each output pixel reads from in the source image: shifted, then rotated about the centre.
    src_r = np.clip(np.cos(angle) * rows - np.sin(angle) * cols + (h - 1) / 2, 0, h - 1)
    src_c = np.clip(np.sin(angle) * rows + np.cos(angle) * cols + (w - 1) / 2, 0, w - 1)
    r0, c0 = np.floor(src_r).astype(np.int64), np.floor(src_c).astype(np.int64)
    r1, c1 = np.minimum(r0 + 1, h - 1), np.minimum(c0 + 1, w - 1)
    fr = (src_r - r0).astype(np.float32)[..., None]
    fc = (src_c - c0).astype(np.float32)[..., None]
    pixels, i = images.astype(np.float32), np.arange(n)[:, None, None]
    top = pixels[i, r0, c0] * (1 - fc) + pixels[i, r0, c1] * fc
    bottom = pixels[i, r1, c0] * (1 - fc) + pixels[i, r1, c1] * fc
    out = top * (1 - fr) + bottom * fr
    out[flip] = out[flip, :, ::-1]
    return out


class AugmentedBatches(keras.utils.PyDataset):
    """Shuffled, augmented batches on the host, as flow_from_directory delivers them. Augmenting here
    rather than with Keras's preprocessing layers: on an H100 those layers cost ~160 ms a step on JAX
    against 1.6 ms for the model itself (measured; benchmarks/README.md)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, seed: int, batch_size: int):
        super().__init__()
        self.images, self.labels, self.seed, self.batch_size = images, labels, seed, batch_size
        self.set_epoch(0)

    def __len__(self) -> int:
        return -(-len(self.images) // self.batch_size)

    def __getitem__(self, index: int):
        batch = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        rng = np.random.default_rng((self.seed, self.epoch, index))
        return augment_batch(self.images[batch], rng), self.labels[batch]

    def on_epoch_end(self):
        self.set_epoch(self.epoch + 1)

    def set_epoch(self, epoch: int):
        """Each epoch's order and transforms follow from (seed, epoch): a resumed run continues them."""
        self.epoch = epoch
        self.order = np.random.default_rng((self.seed, epoch)).permutation(len(self.images))


class _EpochOfData(keras.callbacks.Callback):
    def __init__(self, data: AugmentedBatches):
        super().__init__()
        self.data = data

    def on_epoch_begin(self, epoch, logs=None):
        self.data.set_epoch(epoch)


def train(images: np.ndarray, labels: np.ndarray, seed: int, epochs: int = RECIPE["epochs"],
          verbose: int = 2, backup_dir: str | None = None) -> tuple[object, dict]:
    """Trains a fresh classifier; returns it and a record of the run (time, images/s, per-epoch loss).
    With backup_dir, an interrupted run resumes from its last finished epoch (keras BackupAndRestore):
    the CPU run takes hours."""
    code = fingerprint()  # of the code that starts the run, not of what is on disk when it ends
    callbacks = []
    if backup_dir:
        stamp = Path(backup_dir) / "code_fingerprint"
        if stamp.exists() and stamp.read_text() != code:
            raise SystemExit(f"error: the backup in {backup_dir} was made by other code; delete it to start over")
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(code)
        callbacks.append(keras.callbacks.BackupAndRestore(str(Path(backup_dir) / "keras")))
    keras.utils.set_random_seed(seed)
    model = classifier()
    model.compile(optimizer=keras.optimizers.Adadelta(learning_rate=RECIPE["learning_rate"]),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    data = AugmentedBatches(images, labels, seed, RECIPE["batch_size"])
    start = time.perf_counter()
    history = model.fit(data, epochs=epochs, verbose=verbose, callbacks=[*callbacks, _EpochOfData(data)])
    seconds = time.perf_counter() - start
    epochs_here = len(history.history["loss"])  # fewer than epochs when a backup was resumed
    return model, {
        "seed": seed, "epochs_run": epochs, "train_examples": int(len(images)),
        # A resumed run's earlier epochs ran in another process: its total time is unknown.
        "trainer_s": seconds if epochs_here == epochs else None, "resumed": epochs_here < epochs,
        "epochs_this_process": epochs_here, "seconds_this_process": seconds,
        "train_images_per_s": len(images) * epochs_here / seconds,
        "train_loss_by_epoch": [round(float(v), 4) for v in history.history["loss"]],
        "train_accuracy_by_epoch": [round(float(v), 4) for v in history.history["accuracy"]],
        "keras": keras.__version__, "backend": keras.backend.backend(), "machine": machine(),
        "code_fingerprint": code,
    }


def train_images_per_s(images: np.ndarray, labels: np.ndarray, n: int = 640) -> float:
    """Training speed over n images after a one-batch warm-up (compilation), for a same-run comparison."""
    model = classifier()
    model.compile(optimizer=keras.optimizers.Adadelta(learning_rate=RECIPE["learning_rate"]),
                  loss="sparse_categorical_crossentropy")
    batch = RECIPE["batch_size"]
    model.fit(AugmentedBatches(images[:batch], labels[:batch], 0, batch), epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(AugmentedBatches(images[:n], labels[:n], 0, batch), epochs=1, verbose=0)
    return n / (time.perf_counter() - start)


def machine() -> str:
    try:
        import subprocess

        gpu = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        gpu = ""
    return f"{platform.machine()}, {os.cpu_count()} CPUs" + (f", {gpu}" if gpu else ", no GPU")


def fingerprint() -> str:
    from models.trainer import tutorial_cnn
    from pipeline.code_version import code_fingerprint

    return code_fingerprint(sys.modules[__name__], tutorial_cnn)


def evaluate(model, images_root: Path, trained: dict, threshold: float) -> dict:
    """The harness's figures for a trained classifier (TensorFlow backend: it exports the SavedModel)."""
    from benchmarks.quality import metrics
    from components.tfjs_publisher.convert import convert, model_bytes

    result = {**trained, "recipe": RECIPE}
    for split in ("TEST", "TEST_SIMPLE"):
        images, labels = load_folder(images_root / split)
        probabilities = model.predict(images.astype(np.float32), batch_size=64, verbose=0)
        result[split.lower()] = metrics.summarize(probabilities, labels, CLASS_NAMES, threshold,
                                                  np.zeros(len(labels), np.float32))
    with tempfile.TemporaryDirectory() as tmp:
        saved_model = os.path.join(tmp, "saved_model")
        model.export(saved_model, format="tf_saved_model", verbose=False)
        result["saved_model_bytes"] = sum(p.stat().st_size for p in Path(saved_model).rglob("*") if p.is_file())
        convert(saved_model, os.path.join(tmp, "tfjs"), quantization="none", signature="serving_default")
        result["tfjs_bytes"] = model_bytes(os.path.join(tmp, "tfjs"))
    result.update(params=int(model.count_params()), derived={}, val_accuracy_by_epoch=[])
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    t = commands.add_parser("train", help="train with the published recipe (any Keras 3 backend)")
    t.add_argument("--train-dir", required=True, help="the dataset's TRAIN folder (<CLASS>/<image>)")
    t.add_argument("--weights", required=True, help="where to write the weights (.weights.h5)")
    t.add_argument("--record", required=True, help="where to write the training record (JSON)")
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--epochs", type=int, default=RECIPE["epochs"])
    t.add_argument("--backup-dir", help="resume an interrupted run from here (kept until the run ends)")
    e = commands.add_parser("evaluate", help="measure trained weights on TEST and TEST_SIMPLE (TensorFlow backend)")
    e.add_argument("--data-dir", required=True, help="folder holding TEST and TEST_SIMPLE")
    e.add_argument("--weights", required=True)
    e.add_argument("--record", required=True, help="the training record written by train")
    e.add_argument("--out", required=True, help="the harness's cached result, e.g. benchmarks/results/tutorial_cnn.json")
    e.add_argument("--commit", default="unknown", help="the commit whose code trained the weights")
    e.add_argument("--review-threshold", type=float, default=0.8)
    args = parser.parse_args(argv)

    if args.command == "train":
        started = time.perf_counter()
        images, labels = load_folder(Path(args.train_dir))
        print(f"loaded {len(images)} TRAIN images in {time.perf_counter() - started:.1f} s", flush=True)
        model, record = train(images, labels, args.seed, args.epochs, backup_dir=args.backup_dir)
        model.save_weights(args.weights)
        record["weights_sha256"] = hashlib.sha256(Path(args.weights).read_bytes()).hexdigest()
        record["date"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        Path(args.record).write_text(json.dumps(record, indent=1))
        print(json.dumps({k: v for k, v in record.items() if not k.endswith("_by_epoch")}), flush=True)
        return 0

    trained = json.loads(Path(args.record).read_text())
    if hashlib.sha256(Path(args.weights).read_bytes()).hexdigest() != trained["weights_sha256"]:
        raise SystemExit(f"error: {args.weights} is not the file the training record describes (sha256 differs)")
    model = classifier()
    model.load_weights(args.weights)
    result = evaluate(model, Path(args.data_dir), trained, args.review_threshold)
    result["commit"] = args.commit
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"TEST {result['test']['accuracy']:.4f}, TEST_SIMPLE {result['test_simple']['correct']}/"
          f"{result['test_simple']['n']}; written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
