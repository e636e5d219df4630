"""Peak memory of a pushed model's serving_default (the signature TF Serving runs) on batches of large
JPEGs, each setting in a process of its own, with TF's thread pools at the serving pod's CPU limit.

    infra/env/run.sh python -m benchmarks.serving_memory --model runs/bloodcell/serving/bloodcell/VERSION \
        [--sides 2000 4000 5000] [--batches 1 8] [--threads 2]

Prints a Markdown table: the process's peak resident memory after loading the model, and what one call
added to it. A pod runs num_batch_threads (serving/config/batching.config) such calls at once.
"""
from __future__ import annotations

import argparse
import io
import json
import resource
import subprocess
import sys

import numpy as np
from PIL import Image


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def measure_one(model: str, side: int, batch: int, threads: int) -> dict:
    """In this process: load the model, then one serving_default call on `batch` JPEGs of side x 3/4 side."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    pixels = np.random.default_rng(0).integers(0, 256, (side * 3 // 4, side, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=30)
    serve = tf.saved_model.load(model).signatures["serving_default"]
    (name,) = serve.structured_input_signature[1]
    loaded = _peak_mib()
    serve(**{name: tf.constant([out.getvalue()] * batch)})
    return {"side": side, "batch": batch, "jpeg_kb": len(out.getvalue()) // 1024,
            "loaded_mib": round(loaded), "call_adds_mib": round(_peak_mib() - loaded)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a pushed version folder (saved_model.pb inside)")
    parser.add_argument("--sides", type=int, nargs="+", default=[2000, 4000, 5000], help="image width in pixels")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--threads", type=int, default=2, help="TF intra- and inter-op threads (the pod's CPUs)")
    parser.add_argument("--one", nargs=2, type=int, metavar=("SIDE", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure_one(args.model, *args.one, args.threads)))
        return 0
    print("| image (pixels) | JPEG KB | batch | after loading (MiB) | one call adds (MiB) |\n|---|---|---|---|---|")
    for side in args.sides:
        for batch in args.batches:
            done = subprocess.run([sys.executable, "-m", "benchmarks.serving_memory", "--model", args.model,
                                   "--threads", str(args.threads), "--one", str(side), str(batch)],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                print(f"error: {side} px, batch {batch}: {(done.stderr.strip().splitlines() or ['?'])[-1]}",
                      file=sys.stderr)
                return 1
            r = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"| {side} x {side * 3 // 4} | {r['jpeg_kb']} | {batch} | {r['loaded_mib']} | {r['call_adds_mib']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
