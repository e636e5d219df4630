"""The training record each exported model carries (models/features.py TRAINING_RECORD_FILE): how it
was trained, read by the next run's Trainer, the run summary and the benchmarks."""
from __future__ import annotations

import json
import os

import tensorflow as tf

from models.features import TRAINING_RECORD_FILE


def read_training_record(model_dir: str) -> dict | None:
    """The record of the SavedModel in `model_dir`; None for a model made before versions kept one."""
    try:
        with tf.io.gfile.GFile(os.path.join(model_dir, TRAINING_RECORD_FILE)) as f:
            record = json.load(f)
    except (OSError, ValueError, tf.errors.OpError):
        return None
    return record if isinstance(record, dict) else None


def split_change(before: float | None, now: float) -> str | None:
    """Why a run whose labs.eval_fraction is `now` must not adapt a model whose lab cells were split with
    `before` (the local runner and the Trainer both refuse it); None when nothing binds or nothing changed."""
    if before is None or abs(before - now) <= 1e-9:
        return None
    return (f"labs.eval_fraction is {now:g}, but the last blessed model's lab cells were split with {before:g}: "
            "a change moves cells between training and the held-out side, so the lab's gate would score cells "
            "its models trained on")
