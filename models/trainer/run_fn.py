"""Trainer's run_fn: trains on the transformed splits TrainArgs names (`train`, plus `val` with
training.train_on_val) with a cosine learning-rate schedule, fits the review score and exports the
model (export.py)."""
from __future__ import annotations

import json
import logging
import math
import os

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from tfx import v1 as tfx

from models.trainer import architectures, data, export, review_score
from models.features import TRAINING_RECORD_FILE
from models.trainer.params import TrainerParams
from models.trainer.record import read_training_record, split_change


def distribution_strategy() -> tf.distribute.Strategy:
    """Follows the devices present: all GPUs (mixed precision) if any, else the CPU."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        keras.mixed_precision.set_global_policy("mixed_float16")
        return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.OneDeviceStrategy("/gpu:0")
    keras.mixed_precision.set_global_policy("float32")
    return tf.distribute.get_strategy()


def in_float32(model: keras.Model, params: TrainerParams) -> keras.Model:
    """The model computing in float32, as it is served. A GPU run trains in mixed precision: exported
    as is, its float16 layers would run slowly on TF Serving's CPUs, and the review score would be
    fitted on float16 features that the browser computes in float32."""
    if keras.mixed_precision.global_policy().name == "float32":
        return model
    keras.mixed_precision.set_global_policy("float32")
    copy = architectures.build_model(params.model, params.image_size, params.num_classes)
    copy.set_weights(model.get_weights())  # mixed precision keeps its variables in float32
    return copy


def cosine_learning_rate(base: float, epochs: int):
    """Per-epoch cosine decay from `base` towards 0 over the run."""
    return lambda epoch: base * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))


def train(params: TrainerParams, train_ds: tf.data.Dataset, val_ds: tf.data.Dataset,
          log_dir: str) -> keras.Model:
    """Builds, compiles and fits the model `params` names; returns it with its final (or best) weights."""
    strategy = distribution_strategy()
    logging.info("training %s on %s with %d replica(s)", params.model, type(strategy).__name__,
                 strategy.num_replicas_in_sync)
    with strategy.scope():
        model = architectures.build_model(params.model, params.image_size, params.num_classes)
        model.compile(optimizer=architectures.optimizer_for(params.model, params.learning_rate),
                      loss="sparse_categorical_crossentropy", metrics=["sparse_categorical_accuracy"])
    model.summary(print_fn=logging.info)

    callbacks = [keras.callbacks.TensorBoard(log_dir=log_dir, update_freq="epoch")]
    rate_applies = params.model != "tutorial_cnn"  # the tutorial's recipe: Adadelta at a constant rate
    if rate_applies:
        callbacks.append(keras.callbacks.LearningRateScheduler(
            cosine_learning_rate(params.learning_rate, params.epochs)))
    early_stopping = None
    if params.early_stopping_patience:
        # Off by default: `val` holds few cells of each class (whole cell groups), so its loss moves in
        # steps of one cell and would stop the run on noise.
        early_stopping = keras.callbacks.EarlyStopping(monitor="val_loss", patience=params.early_stopping_patience,
                                                       restore_best_weights=True)
        callbacks.append(early_stopping)
    stop = StopOnNaN()
    callbacks.append(stop)
    model.fit(train_ds, validation_data=val_ds, epochs=params.epochs, callbacks=callbacks, verbose=2)
    refuse_non_finite(model, stop, "training.learning_rate" if rate_applies else None)
    if early_stopping and early_stopping.best_weights is not None:
        # tf_keras restores them at the end of training whether or not it stopped early.
        logging.info("kept the weights of the epoch with the best val_loss (%.4f)", early_stopping.best)
    return in_float32(model, params)


class TrainingDiverged(ValueError):
    """The loss became NaN or infinite: the weights are no model."""


class StopOnNaN(keras.callbacks.TerminateOnNaN):
    """TerminateOnNaN that remembers it stopped: the weights may stay finite (a loss-scaling optimizer
    skips the step; early stopping restores an earlier epoch's), and the run must still fail."""

    fired = False

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        self.fired = self.fired or (loss is not None and not np.isfinite(loss))
        super().on_batch_end(batch, logs)


def refuse_non_finite(model: keras.Model, stop: StopOnNaN, rate_setting: str | None) -> None:
    """rate_setting: the setting that lowers the rate, None for a model trained at a fixed one."""
    # A NaN model would otherwise be exported, its probabilities NaN, and could be blessed where nothing
    # was blessed before it; a stopped one would be a model of a few batches.
    if stop.fired or not all(np.isfinite(w).all() for w in model.get_weights()):
        remedy = (f"lower {rate_setting}" if rate_setting else "the tutorial CNN trains at its recipe's fixed "
                  "rate (training.learning_rate does not apply): check the training images, or train the default model")
        raise TrainingDiverged(f"training diverged (the loss became NaN or infinite): {remedy}")


class BaseModelMismatch(Exception):
    """The blessed model's weights do not fit the model this run builds: train from the start."""


def load_base_weights(model: keras.Model, base_model: str) -> None:
    # The pushed SavedModel holds the Keras model's variables (plus the transform's, unused here).
    try:
        model.load_weights(os.path.join(base_model, "variables", "variables")).assert_existing_objects_matched()
    # What a model of other shapes or types gives; I/O errors (missing, corrupt, unreachable) fail the run.
    except (AssertionError, ValueError, tf.errors.InvalidArgumentError) as err:
        raise BaseModelMismatch(str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__) from err


def adapt(params: TrainerParams, base_model: str, train_ds: tf.data.Dataset, val_ds: tf.data.Dataset,
          log_dir: str) -> keras.Model:
    """The last blessed model (its SavedModel's variables), fine-tuned for params.adapt_steps batches at
    a low, cosine-decayed rate: cells of a new lab move it; starting over would forget what it knows."""
    strategy = distribution_strategy()
    with strategy.scope():
        model = architectures.build_model(params.model, params.image_size, params.num_classes)
        load_base_weights(model, base_model)
        # Batch norm in inference mode (Keras's fine-tuning practice): its statistics stay the base lab's,
        # instead of drifting to a mix of labs that neither lab's images match.
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
        schedule = keras.optimizers.schedules.CosineDecay(params.adapt_learning_rate, params.adapt_steps)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=schedule),
                      loss="sparse_categorical_crossentropy", metrics=["sparse_categorical_accuracy"])
    logging.info("adapting the blessed model %s for %d batches", base_model, params.adapt_steps)
    stop = StopOnNaN()
    model.fit(train_ds, validation_data=val_ds, steps_per_epoch=params.adapt_steps, epochs=1, verbose=2,
              callbacks=[keras.callbacks.TensorBoard(log_dir=log_dir, update_freq="epoch"), stop])
    refuse_non_finite(model, stop, "labs.adapt_learning_rate")
    return in_float32(model, params)


def model_identity(params: TrainerParams) -> dict:
    """What a blessed model must share with this run's settings for its weights to be fine-tuned."""
    return {"model": params.model, "image_size": params.image_size, "stain_normalisation": params.stain_normalisation,
            "class_names": list(params.class_names)}


def same_model(base_model: str, params: TrainerParams) -> bool:
    """Whether the blessed model was built as this run would build it (its training record says). A
    changed architecture, input size or class list trains from the start instead of failing to load."""
    record = read_training_record(base_model)
    if record is None:
        return True  # adapt() falls back if its weights do not fit
    same = all(record.get(k) == v for k, v in model_identity(params).items())
    if not same:
        logging.info("the blessed model %s was built with other settings: training from the start", base_model)
    return same


class LabsLeftBehind(ValueError):
    """A lab the blessed model was trained or gated on has no cells in this run's data and is not retired."""


def refuse_labs_left_behind(base_model: str, present: set[str], retired: tuple[str, ...]) -> None:
    """The orchestrator-independent form of the local runner's labs check (Kubeflow has no other): without
    the lab, the model would be trained from the start and gated on the base alone."""
    record = read_training_record(base_model) or {}
    learned = (set(record.get("labs", [])) | set(record.get("lab_train_cells_per_lab", {}))
               | set(record.get("labs_not_trained_on", {})))
    missing = sorted(learned - set(present) - set(retired))
    if missing:
        raise LabsLeftBehind(
            f"the last blessed model was trained or gated on lab(s) {', '.join(missing)}, of which this run's data holds no "
            f"training cell (an export folder or prefix gone, renamed or empty, or its cells all held out, "
            f"refused or relabelled as not trained?): restore them, or drop them on purpose "
            f"with labs.retired: {json.dumps(missing, separators=(',', ':'))} in the configuration")


class LabSplitChanged(ValueError):
    """This run's lab cells were split with another labs.eval_fraction than the blessed model's."""


def refuse_other_split(base_model: str, present: set[str], eval_fraction: float, retired: tuple[str, ...]) -> None:
    """The orchestrator-independent form of the local runner's split check: a lab's cell keeps its side
    only while the split does, and the lab's gate must not score cells the models trained on. A lab the
    blessed model learned from binds the split unless it is retired and gone: a new split may leave it
    no training cell in this run, and retiring it then must not let the split through."""
    record = read_training_record(base_model) or {}
    bound = {lab for lab in record.get("labs", []) if lab in present or lab not in retired}
    problem = split_change(record.get("lab_eval_fraction"), eval_fraction) if bound else None
    if problem:
        raise LabSplitChanged(f"{problem}; keep {record['lab_eval_fraction']:g}, or start afresh without the "
                              "blessed model")


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    params = TrainerParams.from_custom_config(fn_args.custom_config)
    keras.utils.set_random_seed(params.seed)
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)

    # Labs whose reviewed cells are of one class only are left out of training (data.adaptable_labs).
    lab_cells, left_out = data.adaptable_labs(
        data.lab_records(fn_args.train_files, tf_transform_output, params.num_classes), list(params.class_names))
    for name, why in left_out.items():
        logging.warning("lab %s not trained on: %s", name, why)
    present = set(lab_cells) | set(left_out)
    if fn_args.base_model:
        # The split first: a new split may leave a lab no training cell, and the labs check would then
        # suggest retiring it.
        refuse_other_split(fn_args.base_model, present, params.lab_eval_fraction, params.retired_labs)
        refuse_labs_left_behind(fn_args.base_model, present, params.retired_labs)

    def dataset(files, training):
        return data.make_dataset(files, tf_transform_output, params.batch_size, training, params.seed,
                                 tuple(left_out))

    val_ds = dataset(fn_args.eval_files, False)
    base_model = fn_args.base_model if fn_args.base_model and same_model(fn_args.base_model, params) else None
    lab_counts = [sum(len(by_class[c]) for by_class in lab_cells.values()) for c in range(params.num_classes)]
    lab_records = sum(lab_counts) if base_model else 0
    if lab_records:
        train_ds = data.make_adapt_dataset(fn_args.train_files, tf_transform_output, params.batch_size,
                                           params.seed, params.lab_share, lab_cells)
        try:
            model = adapt(params, base_model, train_ds, val_ds, fn_args.model_run_dir)
        except BaseModelMismatch as err:
            logging.warning("the blessed model's weights do not fit this model (%s): training from the start", err)
            lab_records, model = 0, None
    elif base_model:
        logging.info("no lab cells to adapt to: training from the start")
    if not lab_records:
        model = train(params, dataset(fn_args.train_files, True), val_ds, fn_args.model_run_dir)
    # The labs trained on, adapted to or trained from the start with, have review means of their own.
    lab_ds = data.make_lab_dataset(lab_cells, tf_transform_output, params.batch_size) if lab_cells else None
    typical = review_score.fit_review_score(model, dataset(fn_args.train_files, False), val_ds, params.num_classes,
                                            params.average_symmetries, params.seed, params.batch_size, lab_ds)
    export.save_model(model, fn_args.serving_model_dir, tf_transform_output, params, typical)
    record = ({"mode": "adapted", "base_model": base_model, "lab_train_cells": lab_records,
               "lab_train_cells_per_class": dict(zip(params.class_names, lab_counts)),
               "lab_train_cells_per_lab": {name: sum(map(len, by_class)) for name, by_class in lab_cells.items()},
               "lab_draw": "lab_then_class_balanced",
               "steps": params.adapt_steps} if lab_records else {"mode": "trained", "epochs": params.epochs})
    if left_out:
        record["labs_not_trained_on"] = left_out
    record["labs"] = sorted(present)  # whether adapted or trained from the start with them
    record["lab_eval_fraction"] = params.lab_eval_fraction
    record.update(model_identity(params))
    with tf.io.gfile.GFile(os.path.join(fn_args.serving_model_dir, TRAINING_RECORD_FILE), "w") as f:
        f.write(json.dumps(record))
