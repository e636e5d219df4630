"""How a trained model does on another lab's labelled cells, before that lab trusts it: accuracy, recall
and confusion per class, calibration, and what the review flag catches. No training.

    infra/env/run.sh python -m benchmarks.cross_lab --model runs/bloodcell/serving/bloodcell/VERSION \
        --other-lab mylab=/path/to/cells [--other-lab ...] [--review-threshold T] [--out report.json]

The cells are a class-folder tree, `<DIR>/<CLASS>/<image>`; a folder of a class the model does not know
is reported cell by cell (its answer and whether it was flagged). Without --other-lab, every source under
--other-labs-root (../shared/data/other-labs) is measured. The model quality harness
(benchmarks/model_quality.py) prints the same table for each seed it trains.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks.quality import other_labs
from pipeline.config import load_config

REPO = Path(__file__).resolve().parent.parent


def parse_model(text: str) -> tuple[str, Path]:
    """NAME=DIR or DIR (named by its version folder)."""
    name, sep, folder = text.partition("=")
    name, folder = (name, folder) if sep else (Path(text).name, text)
    if not (Path(folder) / "saved_model.pb").is_file():
        raise argparse.ArgumentTypeError(f"{folder} holds no saved_model.pb (a pushed model version folder)")
    return name, Path(folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=parse_model, action="append", required=True, metavar="[NAME=]DIR",
                        help="a pushed model version folder; repeatable")
    parser.add_argument("--other-lab", type=other_labs.parse_other_lab, action="append", default=[],
                        metavar="NAME=DIR", help="a lab's class-folder tree; repeatable")
    parser.add_argument("--other-labs-root", type=Path, default=REPO.parent / "shared" / "data" / "other-labs")
    parser.add_argument("--review-threshold", type=float,
                        help="flag answers whose top probability is under this (default: browser.review_threshold "
                             "of pipeline/config.yaml, as the harness)")
    parser.add_argument("--class-names", nargs="+", help="the model's classes in output order "
                        "(default: class_names of pipeline/config.yaml)")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args(argv)

    try:  # the labs given, else every one under the root
        sources, origin = other_labs.sources(args.other_lab, None if args.other_lab else args.other_labs_root)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not sources:
        parser.error(f"no --other-lab given and no source under {args.other_labs_root}")
    config = load_config()
    names = args.class_names or list(config.class_names)
    if args.review_threshold is None:
        args.review_threshold = config.browser.review_threshold
    cells = {}
    for name, folder in sources.items():
        try:
            cells[name] = other_labs.load(name, folder, names)
        except (OSError, ValueError) as err:
            print(f"error: {other_labs.load_error(err, origin[name])}", file=sys.stderr)
            return 2

    from benchmarks.model_quality import predict

    results = {model: {name: {"folder": str(c.folder), **other_labs.measure(
        lambda files, d=folder: predict(str(d), files), c, names, args.review_threshold)}
        for name, c in cells.items()} for model, folder in args.model}
    for name in cells:
        rows = [(name, model, "-", results[model][name]) for model in results]
        print("\n".join([f"## {name} ({cells[name].folder})", "", *other_labs.table(rows, names), ""]))
    if args.out:
        args.out.write_text(json.dumps({"review_threshold": args.review_threshold, "models":
                                        {m: str(d) for m, d in args.model}, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
