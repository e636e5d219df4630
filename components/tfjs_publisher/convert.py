"""Converting a pushed SavedModel's browser signature into a TensorFlow.js graph model.

tensorflowjs cannot be imported next to TFX (requirements/converter.in), so the converter runs as a
subprocess from its own environment: `$BLOODCELL_TFJS_CONVERTER` (set by infra/env/run.sh and the
pipeline image), else `tensorflowjs_converter` on PATH.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess

from models.features import BROWSER_SIGNATURE

QUANTIZATIONS = ("none", "float16", "uint8")
_QUANTIZE_FLAGS = {"none": [], "float16": ["--quantize_float16=*"], "uint8": ["--quantize_uint8=*"]}
CONVERTER_ENV = "BLOODCELL_TFJS_CONVERTER"


class ConversionError(RuntimeError):
    """One line for the user."""


def converter_command(configured: str = "") -> str:
    candidate = configured or os.environ.get(CONVERTER_ENV) or "tensorflowjs_converter"
    found = shutil.which(candidate)
    if not found:
        raise ConversionError(f"tfjs converter not found: '{candidate}' (run through infra/env/run.sh, "
                              f"or set {CONVERTER_ENV} / browser.converter)")
    return found


def convert(saved_model_dir: str, output_dir: str, quantization: str = "none", converter: str = "",
            timeout_s: int = 900, signature: str = BROWSER_SIGNATURE) -> None:
    """Writes model.json and weight shards for one signature of the SavedModel (by default the browser's,
    `serving_pixels`) into output_dir."""
    if quantization not in QUANTIZATIONS:
        raise ConversionError(f"unknown quantization '{quantization}': use one of {', '.join(QUANTIZATIONS)}")
    command = [converter_command(converter), "--input_format=tf_saved_model", "--saved_model_tags=serve",
               f"--signature_name={signature}", *_QUANTIZE_FLAGS[quantization],
               saved_model_dir, output_dir]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        raise ConversionError(f"tfjs conversion of {saved_model_dir} took over {timeout_s} s") from None
    if done.returncode != 0 or not os.path.exists(os.path.join(output_dir, "model.json")):
        lines = [l for l in (done.stderr or done.stdout).splitlines() if l.strip()]
        errors = [l for l in lines if "Error" in l or "error" in l]
        raise ConversionError(f"tfjs conversion of {saved_model_dir} failed (exit {done.returncode}): "
                              f"{(errors or lines or ['no output'])[-1].strip()}")


_BYTES = {"float32": 4, "int32": 4, "bool": 1, "uint8": 1, "float16": 2}


def float16_overflow(tfjs_dir: str) -> list[str]:
    """The float16-quantized weights of a converted model that hold an infinity: a float32 value past
    float16's 65504 (a review-score constant of a barely trained model, say). Empty when none does."""
    import numpy as np
    import tensorflow as tf

    with tf.io.gfile.GFile(os.path.join(tfjs_dir, "model.json"), "rb") as f:
        manifest = json.loads(f.read())["weightsManifest"]
    overflowed = []
    for group in manifest:
        data = b"".join(tf.io.gfile.GFile(os.path.join(tfjs_dir, p), "rb").read() for p in group["paths"])
        at = 0
        for weight in group["weights"]:
            count = int(np.prod(weight["shape"], dtype=np.int64))
            stored = (weight.get("quantization") or {}).get("dtype", weight["dtype"])
            if weight["dtype"] == "string":  # each a 4-byte length, then its bytes
                for _ in range(count):
                    at += 4 + int.from_bytes(data[at:at + 4], "little")
                continue
            size = count * _BYTES[stored]
            if stored == "float16" and not np.isfinite(np.frombuffer(data[at:at + size], "<f2")).all():
                overflowed.append(weight["name"])
            at += size
        if at != len(data):
            raise ConversionError(f"{tfjs_dir}: the weights manifest does not match its shards")
    return overflowed


def convert_for_browser(saved_model_dir: str, output_dir: str, quantization: str, converter: str = "") -> str:
    """convert(), but a float16 model that overflows float16 is converted again unquantized (twice the
    bytes, a working review score); returns the quantization published."""
    convert(saved_model_dir, output_dir, quantization, converter)
    if quantization == "float16" and float16_overflow(output_dir):
        shutil.rmtree(output_dir)
        convert(saved_model_dir, output_dir, "none", converter)
        return "none"
    return quantization


def model_bytes(tfjs_dir: str) -> int:
    """Bytes a browser downloads for the model: model.json plus the shards it names (local or gs://
    folder; a cut-short earlier publish may have left other shards beside them)."""
    import tensorflow as tf

    path = os.path.join(tfjs_dir, "model.json")
    with tf.io.gfile.GFile(path) as f:
        shards = [p for group in json.load(f).get("weightsManifest", []) for p in group["paths"]]
    return sum(tf.io.gfile.stat(os.path.join(tfjs_dir, name)).length for name in ["model.json", *shards])
