"""How a lab's reviewed cells adapt the model: accuracy on the lab's other cells after 0, 25, 50 and 100
reviewed cells, through the real pipeline (lab source, warm start from the blessed model, per-source gate).

    infra/env/run.sh python -m benchmarks.lab_adaptation --base 1=runs/quality1/default \
        --lab tecom=../shared/data/other-labs/tecom [--sizes 25 50 100] [--out benchmarks/results]

--base SEED=DIR names a pipeline output folder whose latest blessed model is the base (a model quality
harness run, `--seeds N --work DIR` gives one per seed); SEED draws the reviewed cells and seeds the
adaptation runs. It names the base in the report, which records the base's model and its training
record: SEED need not be the seed the base was trained with. For
each size the base run's metadata store is copied into a fresh output folder, the drawn cells become the
lab's source (class folders), and one pipeline run adapts the model (gate opened, so every model is
measured). The drawn cells are nested (the 25 are among the 50) and stratified as far as the class counts
allow (at most half of a class); every size is measured on the same cells, those never drawn (nor an
image with the same bytes as a drawn one: that is a reviewed cell). Kaggle TEST
is measured too, and the run's wall time. Writes <out>/lab_adaptation.{json,md}.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks import model_quality
from benchmarks.quality import derived, metrics, other_labs
from components.image_example_gen import image_reader
from models.features import BASE_SOURCE, LAB_NAME_PATTERN
from models.trainer.record import UnreadableRecord, read_training_record
from pipeline import local_runner
from pipeline.config import load_config

REPO = Path(__file__).resolve().parent.parent


def draw(cells: other_labs.LabCells, n: int, seed: int, class_names: list[str]) -> list[int]:
    """Indices of n cells: as even over the classes as their counts allow, at most half of each class
    (the rest must stay to be measured on); a fixed order per seed, so a smaller draw is a prefix."""
    rng = random.Random(seed)
    by_class = {c: [i for i in range(len(cells.files)) if cells.labels[i] == c] for c in range(len(class_names))}
    for members in by_class.values():
        rng.shuffle(members)
    caps = {c: len(m) // 2 for c, m in by_class.items()}
    order, taken = [], {c: 0 for c in by_class}
    while len(order) < sum(caps.values()):  # round robin over the classes with room left
        for c in by_class:
            if taken[c] < caps[c]:
                order.append(by_class[c][taken[c]])
                taken[c] += 1
    if n > len(order):
        raise ValueError(f"{cells.name} allows at most {len(order)} drawn cells (half of each class)")
    return order[:n]


def write_lab(cells: other_labs.LabCells, indices: list[int], folder: Path, class_names: list[str]) -> None:
    for i in indices:
        dest = folder / class_names[cells.labels[i]]
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(cells.files[i], dest / cells.files[i].name)


def latest_pushed(serving_dir: Path) -> str:
    """The newest version folder: with the gate opened every run pushes, so it is the latest blessed."""
    versions = [p for p in serving_dir.iterdir() if p.name.isdigit()] if serving_dir.is_dir() else []
    if not versions:
        raise ValueError(f"no pushed model under {serving_dir}")
    return str(max(versions, key=lambda p: int(p.name)))


def adapt_run(base_dir: Path, work: Path, lab: str, lab_dir: Path, data_dir: str, seed: int) -> dict:
    """One pipeline run from the base run's metadata store with the lab source; the pushed model and time."""
    work.mkdir(parents=True, exist_ok=True)
    config = load_config()
    (work / config.pipeline_name).mkdir(exist_ok=True)
    shutil.copy(base_dir / config.pipeline_name / "metadata.sqlite", work / config.pipeline_name / "metadata.sqlite")
    args = ["--data-dir", data_dir, "--output-dir", str(work), "--lab-source", f"{lab}={lab_dir}",
            # The drawn cells are the only lab: none from labs.dir or labs.sources of the configuration.
            "--set", f"labs.dir={work / 'no-labs-dir'}", "--set", "labs.sources={}", "--set", f"training.seed={seed}",
            "--set", "evaluation.min_accuracy=0", "--set", "evaluation.max_accuracy_drop=1"]
    out = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out):
        code = local_runner.main(args)
    seconds = time.perf_counter() - started
    text = out.getvalue()
    if code != 0:
        raise SystemExit(f"error: adaptation run failed; its output ends: {text[-800:]}")
    if "trainer: adapted the last blessed model" not in text:
        raise SystemExit(f"error: the run did not adapt the base model; its output ends: {text[-800:]}")
    steps = dict(re.findall(r"^  (\w+)\s+\w+\s+([\d.]+) s$", text, re.M))
    return {"pushed": re.search(r"^pushed model: (\S+)$", text, re.M).group(1), "run_s": round(seconds, 1),
            "component_s": {k: float(v) for k, v in steps.items()}}


def measure(pushed: str, held_out: other_labs.LabCells, images: Path, class_names: list[str], threshold: float) -> dict:
    lab = other_labs.measure(lambda files: model_quality.predict(pushed, files), held_out, class_names, threshold)
    # The lab's own colours with no cell in them: an adapted model must still flag them.
    probs, atypical = model_quality.predict(pushed, held_out.files, derived.not_a_cell)
    lab["not_a_cell"] = metrics.summarize(probs, held_out.labels, class_names, threshold, atypical)
    test_files, test_labels = model_quality.files_and_labels(images / "TEST", class_names)
    probs, atypical = model_quality.predict(pushed, test_files)
    return {"lab": lab, "test": metrics.summarize(probs, test_labels, class_names, threshold, atypical)}


def held_out_cells(cells: other_labs.LabCells, drawn: list[int]) -> other_labs.LabCells:
    """The cells a base's largest draw leaves: what every size of that base is measured on. A file with
    the same bytes as a drawn one is that reviewed cell, so it is left out too, and a cell in two files
    is measured once. The draw itself goes by file, so a seed and size draw what they always drew."""
    digests = [other_labs.sha256_of(f) for f in cells.files]
    reviewed = {digests[i] for i in drawn}
    taken, rest = set(drawn), []
    for i, digest in enumerate(digests):
        if i not in taken and digest not in reviewed:
            reviewed.add(digest)  # its later copies are left out
            rest.append(i)
    return other_labs.LabCells(cells.name, cells.folder, [cells.files[i] for i in rest], cells.labels[rest], [])


def distinct_cells(cells: other_labs.LabCells, indices: list[int]) -> int:
    """How many cells these drawn files are: files with the same bytes are one reviewed cell."""
    return len({other_labs.sha256_of(cells.files[i]) for i in indices})


def count_distinct_reviewed(report: dict) -> bool:
    """reviewed_distinct of the rows that lack it (reports from before it was recorded), from the draws
    again: a draw depends only on the lab's files, the seed and the size. Left out (False) when the lab's
    folder is not here or no longer holds the files the report drew from."""
    missing = [row for row in report["rows"] if "reviewed_distinct" not in row and row["reviewed"]]
    if not missing or not Path(report["lab_dir"]).is_dir() or "lab_cells" not in report:
        return False
    cells = other_labs.load(report["lab"], Path(report["lab_dir"]), report["class_names"], keep_copies=True)
    if len(cells.files) != report["lab_cells"]:
        return False
    drawn = max(row["reviewed"] for row in report["rows"])
    for row in missing:
        row["reviewed_distinct"] = distinct_cells(cells, draw(cells, drawn, row["base"], report["class_names"])
                                                  [:row["reviewed"]])
    return True


def remeasure(report: dict, data_dir: str) -> None:
    """Each row's stored pushed model measured again (after a change to what is measured), on the cells
    its base's largest draw left, as when it was first measured."""
    names, threshold = report["class_names"], report["review_threshold"]
    images = Path(image_reader.resolve_data_root(data_dir))
    cells = other_labs.load(report["lab"], Path(report["lab_dir"]), names, keep_copies=True)
    drawn = max(row["reviewed"] for row in report["rows"])
    # Older reports hold the count of files never drawn, newer ones the lab's file count.
    stored, now = ((report["lab_cells"], len(cells.files)) if "lab_cells" in report else
                   (report.get("held_out_cells"), len(cells.files) - drawn))
    if stored is not None and stored != now:
        raise ValueError(f"{report['lab_dir']} no longer holds the cells the report was measured on")
    gone = [row["pushed"] for row in report["rows"] if not os.path.isdir(row["pushed"])]
    if gone:  # before any row is measured again
        raise ValueError(f"it needs the stored pushed models; missing: {', '.join(gone)}")
    for row in report["rows"]:
        order = draw(cells, drawn, row["base"], names)
        held_out = held_out_cells(cells, order)
        row.update(measure(row["pushed"], held_out, images, names, threshold), held_out_cells=len(held_out.files),
                   reviewed_distinct=distinct_cells(cells, order[:row["reviewed"]]))
        print(f"base {row['base']}, {row['reviewed']} cells: {report['lab']} {row['lab']['accuracy']:.4f} "
              "(measured again)", file=sys.stderr)
    report["lab_cells"] = len(cells.files)


def bases_text(report: dict) -> list[str]:
    """Which model each base is: a base is named by its --base SEED, not by the model it holds."""
    models = {}
    for row in sorted(report["rows"], key=lambda row: row["reviewed"]):  # the 0-cell row's model is the base itself
        if row.get("base_model") or row.get("pushed"):
            models.setdefault(row["base"], (row.get("base_model") or row["pushed"], row.get("base_training")))
    if not models:
        return []
    lines = ["Bases: each its own training of the default recipe. A base's number is the --base SEED that drew "
             "its reviewed cells and seeded its adaptation runs; the model it is:", ""]
    for base, (model, record) in sorted(models.items()):
        told = ", ".join(f"{key} {record[key]}" for key in ("seed", "code_version", "commit")
                         if record and key in record)
        lines.append(f"- base {base}: {model}" + (f" (training record: {told})" if told else ""))
    return lines


def held_out_text(report: dict) -> str:
    """How many cells each base was measured on: rows record it since images that equal a drawn one are
    left out (a count per base); older reports hold one count of files never drawn."""
    counts = {row["base"]: row["held_out_cells"] for row in report["rows"] if "held_out_cells" in row}
    if not counts:
        return f"{report['held_out_cells']} cells never drawn"
    if len(set(counts.values())) == 1:
        return f"{next(iter(counts.values()))} cells never drawn (nor a copy of a drawn image)"
    return ("cells never drawn (nor a copy of a drawn image): "
            + ", ".join(f"{n} for base {base}" for base, n in sorted(counts.items())))


def markdown(report: dict) -> str:
    names = report["class_names"]
    lines = [f"# Adapting to a lab's reviewed cells ({report['date']}, commit {report['commit'][:10]})", "",
             f"Lab: {report['lab']} ({report['lab_dir']}); measured on the {held_out_text(report)}. Drawn cells: "
             f"at most half of each class, nested. Review flag: top probability < "
             f"{report['review_threshold']} or unlike the training images. Pipeline: labs.eval_fraction "
             f"{report['eval_fraction']} of the drawn cells held out for the gate, labs.adapt_steps "
             f"{report['adapt_steps']}."
             + (f" Every model measured again {report['remeasured']['date']} at commit "
                f"{report['remeasured']['commit'][:10]}." if report.get("remeasured") else ""), "",
             "| base | reviewed cells | lab accuracy | " + " | ".join(f"recall {n[:3]}" for n in names)
             + " | flagged | errors flagged | lab non-cells flagged | Kaggle TEST | TEST flagged | default gate on TEST"
             " | run s |", "|---|---|---|" + "---|" * len(names) + "---|---|---|---|---|---|---|"]
    base_test = {row["base"]: row["test"]["accuracy"] for row in report["rows"] if row["reviewed"] == 0}
    for row in report["rows"]:
        lab, test = row["lab"], row["test"]
        before = base_test.get(row["base"])  # none: this base's own row is missing, nothing to compare with
        drop = None if before is None else before - test["accuracy"]
        gate = "-" if row["reviewed"] == 0 or drop is None else (
            "passes" if drop <= report["max_accuracy_drop"] else f"refused ({-drop:+.4f})")
        recalls = " | ".join(other_labs.share(lab["per_class"][n]["recall"]) for n in names)  # None: no cell
        errors = "-" if lab["errors_flagged"] is None else f"{lab['errors_flagged']:.3f}"
        non_cells = f"{lab['not_a_cell']['review_flag_rate']:.3f}" if "not_a_cell" in lab else "-"
        lines.append(f"| {row['base']} | {row['reviewed']} | {lab['accuracy']:.4f} | {recalls} | "
                     f"{lab['review_flag_rate']:.3f} | {errors} | {non_cells} | {test['accuracy']:.4f} | "
                     f"{test['review_flag_rate']:.3f} | {gate} | {row.get('run_s', '-')} |")
    bases = sorted({row["base"] for row in report["rows"]})
    if len(bases) > 1:
        lines += ["", f"Mean over the {len(bases)} bases ({', '.join(map(str, bases))}):", "",
                  "| reviewed cells | lab accuracy | " + " | ".join(f"recall {n[:3]}" for n in names)
                  + " | lowest recall | flagged | Kaggle TEST |", "|---|---|" + "---|" * len(names) + "---|---|---|"]
        for size in sorted({row["reviewed"] for row in report["rows"]}):
            rows = [row for row in report["rows"] if row["reviewed"] == size]
            # A base without held-out cells of a class has no recall for it: the mean is over the others,
            # and says over how many when that is fewer than all.
            values = [[row["lab"]["per_class"][n]["recall"] for row in rows if row["lab"]["per_class"][n]["recall"]
                       is not None] for n in names]
            recalls = [float(np.mean(v)) if v else None for v in values]
            known = [r for r in recalls if r is not None]
            lines.append(f"| {size} ({len(rows)} bases) | {np.mean([r['lab']['accuracy'] for r in rows]):.4f} | "
                         + " | ".join(other_labs.share(r) + (f" ({len(v)} of {len(rows)})" if r is not None and
                                                              len(v) < len(rows) else "")
                                      for r, v in zip(recalls, values))
                         + f" | {other_labs.share(min(known) if known else None)} | "
                         f"{np.mean([r['lab']['review_flag_rate'] for r in rows]):.3f} | "
                         f"{np.mean([r['test']['accuracy'] for r in rows]):.4f} |")
    fewer = [row for row in report["rows"] if row.get("reviewed_distinct", row["reviewed"]) < row["reviewed"]]
    if fewer:
        lines += ["", "Reviewed cells counts the files drawn; files with the same bytes are one cell, so "
                  + ", ".join(f"base {row['base']}'s {row['reviewed']} are {row['reviewed_distinct']} cells"
                              for row in fewer) + "."]
    if bases_text(report):
        lines += ["", *bases_text(report)]
    lines += ["", "Recall \"-\": no held-out cell of that class; a mean over fewer bases than the row's says "
              "how many (\"2 of 3\").",
              "", "Lab non-cells: the held-out cells' images shuffled in 16x16 blocks (the lab's colours, no cell;"
              " benchmarks/quality/derived.py).",
              "", f"Default gate on TEST: the adapted model may trail the base by at most {report['max_accuracy_drop']} "
              "(evaluation.max_accuracy_drop); these runs opened the gate to measure every model. Run s: the whole "
              "run, ExampleGen to publish (the lab's cells change the ingest, so the base data is read again)."]
    return "\n".join(lines) + "\n"


def parse_bases(given: list[tuple[str, Path]], config) -> list[tuple[int, Path, str]]:
    """(seed, output folder, its latest pushed model) of each --base SEED=OUTPUT_DIR; ValueError in one line
    for a seed that is not an integer or given twice, or a folder without a pushed model."""
    bases = []
    for text, folder in given:
        try:
            seed = int(text)
        except ValueError:
            raise ValueError(f"--base {text}={folder}: SEED must be an integer (it draws the reviewed cells and "
                             "seeds the adaptation runs)") from None
        if seed in [b[0] for b in bases]:
            raise ValueError(f"--base {seed} is given twice (each base's runs go under <work>/seed{seed})")
        try:
            pushed = latest_pushed(folder / config.pipeline_name / "serving" / config.serving.model_name)
        except ValueError as err:
            raise ValueError(f"--base {text}={folder}: {err} (a pipeline output folder)") from None
        bases.append((seed, folder, pushed))
    return bases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=other_labs.parse_other_lab, action="append", default=[], metavar="SEED=OUTPUT_DIR",
                        help="a pipeline output folder whose latest blessed model is the base; SEED is an integer")
    parser.add_argument("--lab", type=other_labs.parse_other_lab, metavar="NAME=DIR")
    parser.add_argument("--sizes", type=int, nargs="+", default=[25, 50, 100])
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data" / "blood-cells"))
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "lab_adaptation")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--report-only", action="store_true", help="rebuild the markdown from <out>/lab_adaptation.json")
    parser.add_argument("--remeasure", action="store_true",
                        help="with --report-only: measure each stored row's pushed model again, on the same cells")
    args = parser.parse_args(argv)
    if args.remeasure and not args.report_only:
        parser.error("--remeasure needs --report-only")
    if args.report_only:
        stored = args.out / "lab_adaptation.json"
        if not stored.is_file():
            print(f"error: --report-only needs a previous report at {stored}", file=sys.stderr)
            return 2
        report = json.loads(stored.read_text())
        report.setdefault("max_accuracy_drop", load_config().evaluation.max_accuracy_drop)
        try:
            counted = count_distinct_reviewed(report)
        except (OSError, ValueError) as err:
            print(f"error: --report-only: {err}", file=sys.stderr)
            return 2
        if args.remeasure:
            try:
                remeasure(report, args.data_dir)
            except (OSError, ValueError, image_reader.IngestError) as err:
                print(f"error: --remeasure: {err}", file=sys.stderr)
                return 2
            report["remeasured"] = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                    "commit": model_quality.current_commit()}
        if counted or args.remeasure:
            (args.out / "lab_adaptation.json").write_text(json.dumps(report, indent=1))
        (args.out / "lab_adaptation.md").write_text(markdown(report))
        print(markdown(report))
        return 0
    if not args.base or not args.lab:
        parser.error("--base and --lab are needed (unless --report-only)")

    config = load_config()
    names, threshold = list(config.class_names), config.browser.review_threshold
    lab, lab_dir = args.lab
    # Every argument is checked before the first run: each takes minutes.
    try:
        bases = parse_bases(args.base, config)
        if not re.match(LAB_NAME_PATTERN, lab) or lab == BASE_SOURCE:
            raise ValueError(f"--lab {lab}: a lab's name is 1-64 letters, digits, '.', '_' or '-', starting "
                             f"with a letter or digit, not '{BASE_SOURCE}' (the pipeline's lab source name)")
        if min(args.sizes) < 1:
            raise ValueError(f"--sizes: each size is a number of reviewed cells, at least 1 (got {min(args.sizes)})")
        try:
            cells = other_labs.load(lab, lab_dir, names, keep_copies=True)  # drawn by file, as the stored draws were
        except ValueError as err:
            raise ValueError(f"--lab {err}") from None
        try:
            orders = {seed: draw(cells, max(args.sizes), seed, names) for seed, _, _ in bases}
        except ValueError as err:
            raise ValueError(f"--sizes {max(args.sizes)}: {err}") from None
        images = Path(image_reader.resolve_data_root(args.data_dir))
    except (OSError, ValueError, image_reader.IngestError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    rows = []
    for seed, base_dir, base_model in bases:
        order = orders[seed]
        held_out = held_out_cells(cells, order)
        # Which model the base is: its SEED is only the draw's and the adaptation's.
        try:
            base_training = read_training_record(base_model)
        except UnreadableRecord as err:  # the rows still measure the model; say what could not be read
            base_training = {"unreadable": str(err)}
        provenance = {"base_model": base_model, "base_training": base_training}
        rows.append({"base": seed, "reviewed": 0, "pushed": base_model, "held_out_cells": len(held_out.files),
                     **provenance, **measure(base_model, held_out, images, names, threshold)})
        print(f"base {seed}, 0 cells: {lab} {rows[-1]['lab']['accuracy']:.4f}", file=sys.stderr)
        for n in sorted(args.sizes):
            work = args.work / f"seed{seed}" / f"n{n}"
            shutil.rmtree(work, ignore_errors=True)
            write_lab(cells, order[:n], work / "lab" / lab, names)
            run = adapt_run(base_dir, work / "out", lab, work / "lab" / lab, args.data_dir, seed)
            rows.append({"base": seed, "reviewed": n, "reviewed_distinct": distinct_cells(cells, order[:n]), **run,
                         "held_out_cells": len(held_out.files), **provenance,
                         **measure(run["pushed"], held_out, images, names, threshold)})
            print(f"base {seed}, {n} cells: {lab} {rows[-1]['lab']['accuracy']:.4f}, "
                  f"TEST {rows[-1]['test']['accuracy']:.4f}, run {run['run_s']:.0f} s", file=sys.stderr)
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "lab_adaptation.partial.json").write_text(json.dumps(rows, indent=1))
    report = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "commit": model_quality.current_commit(),
              "lab": lab, "lab_dir": str(lab_dir), "lab_cells": len(cells.files), "class_names": names,
              "review_threshold": threshold, "eval_fraction": config.labs.eval_fraction,
              "adapt_steps": config.labs.adapt_steps, "max_accuracy_drop": config.evaluation.max_accuracy_drop,
              "rows": rows}
    (args.out / "lab_adaptation.json").write_text(json.dumps(report, indent=1))
    (args.out / "lab_adaptation.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
