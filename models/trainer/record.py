"""The training record each exported model carries (models/features.py TRAINING_RECORD_FILE): how it
was trained, read by the next run's Trainer, the run summary and the benchmarks."""
from __future__ import annotations

import json
import os

import tensorflow as tf

from models.features import TRAINING_RECORD_FILE


class UnreadableRecord(ValueError):
    """A model's training record exists but cannot be read: the checks that depend on it cannot run."""


def read_training_record(model_dir: str) -> dict | None:
    """The record of the SavedModel in `model_dir`; None for a model made before versions kept one.
    Raises UnreadableRecord for one that is there but unreadable or damaged: read as "no record", it
    would let a run drop the model's labs or change their split unchecked."""
    path = os.path.join(model_dir, TRAINING_RECORD_FILE)
    try:
        with tf.io.gfile.GFile(path) as f:
            record = json.load(f)
    except tf.errors.NotFoundError:
        return None
    except (OSError, ValueError, tf.errors.OpError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UnreadableRecord(f"the training record {path} cannot be read ({reason})") from None
    if not isinstance(record, dict):
        raise UnreadableRecord(f"the training record {path} is not a JSON object")
    return record


def split_change(before: float | None, now: float) -> str | None:
    """Why a run whose labs.eval_fraction is `now` must not adapt a model whose lab cells were split with
    `before` (the local runner and the Trainer both refuse it); None when nothing binds or nothing changed."""
    if before is None or abs(before - now) <= 1e-9:
        return None
    return (f"labs.eval_fraction is {now:g}, but the last blessed model's lab cells were split with {before:g}: "
            "a change moves cells between training and the held-out side, so the lab's gate would score cells "
            "its models trained on")
