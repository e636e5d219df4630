"""metadata.json, what travels with the browser model: built by the publisher's executor, and checked
against the web client's contract before any file of a version is written or the pointer moves."""
from __future__ import annotations

import datetime
import math

import jsonschema

from models.features import ATYPICALITY, BROWSER_INPUT, BROWSER_SIGNATURE, PROBABILITIES

# What web/src/modelSource.ts reads (checkMetadata) and web/src/main.ts shows.
SCHEMA = {
    "type": "object",
    "required": ["model_name", "version", "class_names", "image_size", "review_threshold", "quantization",
                 "input", "eval"],
    "properties": {
        "model_name": {"type": "string", "minLength": 1},
        "version": {"type": "string", "minLength": 1},
        "class_names": {"type": "array", "minItems": 2, "uniqueItems": True,
                        "items": {"type": "string", "minLength": 1}},
        "image_size": {"type": "integer", "minimum": 16},
        "review_threshold": {"type": "number", "minimum": 0, "maximum": 1},
        "quantization": {"enum": ["none", "float16", "uint8"]},
        "input": {"type": "object", "required": ["name"], "properties": {"name": {"const": BROWSER_INPUT}}},
        "eval": {"type": "object", "required": ["metrics"], "properties": {
            "metrics": {"type": "object"},
            "confusion_matrix": {"type": ["array", "null"], "items": {"type": "array", "items": {"type": "integer"}}},
            # Per source: "base" (the dataset's TEST) and each lab's held-out reviewed cells.
            "sources": {"type": "object", "additionalProperties": {
                "type": "object", "required": ["accuracy", "cells"],
                "properties": {"accuracy": {"type": ["number", "null"]}, "cells": {"type": "integer", "minimum": 0},
                               "recall": {"type": "object"}}}},
            "min_lab_cells": {"type": "integer", "minimum": 1},
        }},
    },
}


class MetadataError(ValueError):
    """Metadata the web client would refuse; str() is one line."""


def check_metadata(metadata: dict) -> dict:
    """The metadata, if the web client can use it; raises MetadataError naming the first problem."""
    odd = _not_finite(metadata)
    if odd is not None:  # the schema's bounds let NaN through: every comparison with it is false
        where, value = odd
        raise MetadataError(f"metadata {where}: {value} is not a number JSON carries (the browser cannot read it)")
    errors = sorted(jsonschema.Draft202012Validator(SCHEMA).iter_errors(metadata), key=lambda e: list(e.path))
    if errors:
        where = ".".join(str(p) for p in errors[0].absolute_path) or "(top level)"
        raise MetadataError(f"metadata {where}: {errors[0].message}")
    matrix = metadata["eval"].get("confusion_matrix")
    classes = len(metadata["class_names"])
    if matrix and (len(matrix) != classes or any(len(row) != classes for row in matrix)):
        raise MetadataError(f"metadata eval.confusion_matrix is not {classes} x {classes}, one row and column "
                            f"per class name")
    return metadata


def _not_finite(value, where: str = "(top level)") -> tuple[str, float] | None:
    """(path, value) of the first NaN or infinity in a JSON-like value, or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return where, value
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = _not_finite(item, str(key) if where == "(top level)" else f"{where}.{key}")
        if found:
            return found
    return None


def _finite(value):
    """JSON for browsers has no NaN (a class never predicted has no precision): null instead."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def build_metadata(*, model_name: str, version: str, class_names: list[str], image_size: int,
                   review_threshold: float, quantization: str, evaluation: dict, pipeline_name: str,
                   run_id: str | None, saved_model: str) -> dict:
    """What travels with the browser model (metadata.json): enough to show, check and trace it."""
    return {
        "model_name": model_name,
        "version": version,
        "class_names": list(class_names),
        "input": {"name": BROWSER_INPUT, "dtype": "float32", "shape": [-1, -1, -1, 3], "range": [0, 255],
                  "layout": "RGB, any height and width; the model resizes to image_size"},
        "outputs": {PROBABILITIES: "float32 [batch, classes], in class_names order",
                    ATYPICALITY: "float32 [batch]: > 1 means unlike the training images (review it); "
                                   "0 when the model has no such score"},
        "image_size": image_size,
        "review_threshold": review_threshold,
        "quantization": quantization,
        "eval": {"split": "eval (the dataset's TEST folder, and each lab's held-out reviewed cells)",
                 **_finite(evaluation)},
        "pipeline": {"name": pipeline_name, "run_id": run_id, "saved_model": saved_model,
                     "signature": BROWSER_SIGNATURE},
        "published_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
