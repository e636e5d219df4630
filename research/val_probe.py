"""A tuning probe: one pipeline run of the default model with some settings changed, measured on `val`
only (the cell-group split), never on TEST. Results go to research/results/val_probes.md by hand.

    infra/env/run.sh python -m research.val_probe --data-dir ../shared/data/blood-cells \
        --work runs/probe --out probe.json [--seed 1] [--set image_size=96 ...]

It prints and writes the Trainer's one-view `val` accuracy per epoch, `val served` (the pushed model,
all views, as TEST is measured), the cells it gets right, and the derived variants on `val`
(magnified, recoloured, non-cells): a probe must keep the model's robustness, not only its accuracy.
A probe always holds val out of training (training.train_on_val=false), whatever the configuration says.
Runs that share --work reuse the cached data steps (a changed image_size re-runs Transform).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

from benchmarks import model_quality
from pipeline.config import load_config

HELD_OUT_KEY = "training.train_on_val"   # always false in a probe: val must be cells the model never saw


def probe(data_dir: str, work: str, seed: int, settings: list[str]) -> dict:
    from components.image_example_gen import image_reader

    if any(s.split("=", 1)[0].strip() == HELD_OUT_KEY for s in settings):
        raise SystemExit(f"error: a probe measures val, so it always runs with {HELD_OUT_KEY}=false; drop that --set")
    extra = ["--set", f"training.seed={seed}", "--set", f"{HELD_OUT_KEY}=false"]
    for setting in settings:
        extra += ["--set", setting]
    run = model_quality.run_pipeline(data_dir, work, extra)
    images = Path(image_reader.resolve_data_root(data_dir))
    measured = model_quality.measure_val(run["pushed"], run["pipeline_root"], images, load_config())
    if not measured:
        raise SystemExit("error: the run has no val split; a probe needs ingest.val_split=cell_groups data")
    val = measured["val"]
    return {"commit": model_quality.current_commit(), "seed": seed, "settings": settings,
            "pushed": run["pushed"], "trainer_s": run["trainer_s"],
            "val_accuracy_by_epoch": run["val_accuracy_by_epoch"], "val_served": val["accuracy"],
            "cells_right": val["by_cell"]["cells_right"], "cells": val["by_cell"]["cells"],
            "cells_wrong": val["by_cell"]["wrong"], "val": val}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data" / "blood-cells"))
    parser.add_argument("--work", default=str(REPO / "runs" / "probe"))
    parser.add_argument("--out", required=True, help="JSON file for the probe's figures")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                        help="a configuration override, as local_runner's --set (repeatable)")
    args = parser.parse_args(argv)
    result = probe(args.data_dir, args.work, args.seed, args.settings)
    Path(args.out).write_text(json.dumps(result, indent=1))
    derived = ", ".join(f"{k} {v['accuracy']:.4f}" for k, v in result["val"].get("derived", {}).items())
    print(f"val one-view by epoch: {' '.join(f'{v:.3f}' for v in result['val_accuracy_by_epoch'] or [])}\n"
          f"val served {result['val_served']:.4f}; cells right {result['cells_right']}/{result['cells']}\n"
          f"val derived: {derived}\nwritten: {os.path.abspath(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
