"""Do models trained with different seeds get the same `val` cells wrong? Measures `val` (never TEST)
through each pushed model and through the mean of their probabilities (an ensemble), with the cells
each gets wrong.

    infra/env/run.sh python -m research.val_ensemble --data-dir ../shared/data/blood-cells \
        --pipeline-root runs/quality/default/bloodcell/pipeline_root --out ensemble.json MODEL_DIR...

The models must have held `val` out of training (training.train_on_val=false), and --pipeline-root is
the run whose ingest made that `val`. If the ensemble gets no more cells right than its members, the
errors are a bias that all seeds share, which more seeds or averaging cannot remove.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent

from benchmarks import model_quality
from benchmarks.quality import metrics
from pipeline.config import load_config


def summary(probs: np.ndarray, labels: np.ndarray, cells: list[str], names: list[str]) -> dict:
    predicted = probs.argmax(axis=1)
    by_cell = metrics.by_cell(labels, predicted, cells, names)
    return {"accuracy": float((predicted == labels).mean()), "cells_right": by_cell["cells_right"],
            "cells": by_cell["cells"], "cells_wrong": [c["cell"] for c in by_cell["wrong"]]}


def measure(models: list[str], pipeline_root: str, images: Path, names: list[str]) -> dict:
    try:
        files, labels, cells = model_quality.val_split(pipeline_root, images, names)
    except FileNotFoundError as e:  # no ingest under that root
        raise SystemExit(f"error: no val split under {pipeline_root}: {e}") from None
    if not files:
        raise SystemExit(f"error: {pipeline_root} has no val split; it needs ingest.val_split=cell_groups data")
    probs = {model: model_quality.predict(model, files)[0] for model in models}
    return {"images": len(files),
            "models": {m: summary(p, labels, cells, names) for m, p in probs.items()},
            "ensemble": summary(np.mean(list(probs.values()), axis=0), labels, cells, names)}


def main(argv: list[str] | None = None) -> int:
    from components.image_example_gen import image_reader

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="pushed SavedModel directories, one per seed")
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data" / "blood-cells"))
    parser.add_argument("--pipeline-root", required=True, help="the pipeline root whose ingest made val")
    parser.add_argument("--out", required=True, help="JSON file for the figures")
    args = parser.parse_args(argv)
    for model in args.models:
        if not os.path.isdir(model):
            raise SystemExit(f"error: no pushed model at {model}")
    try:
        images = Path(image_reader.resolve_data_root(args.data_dir))
    except image_reader.IngestError as e:
        raise SystemExit(f"error: {e}") from None
    result = measure(args.models, args.pipeline_root, images, list(load_config().class_names))
    Path(args.out).write_text(json.dumps(result, indent=1))
    rows = [*result["models"].items(), ("ensemble (mean probabilities)", result["ensemble"])]
    for name, r in rows:
        print(f"{name}: val {r['accuracy']:.4f}, cells right {r['cells_right']}/{r['cells']}, "
              f"wrong: {', '.join(r['cells_wrong']) or 'none'}")
    print(f"written: {os.path.abspath(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
