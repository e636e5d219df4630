"""Model quality harness: the pipeline's default model over several seeds against the tutorial's CNN,
on the dataset's TEST and TEST_SIMPLE, with calibration, review flags on derived images (other
magnification, other stain colours, non-cells) and the input pipeline's speed.

    infra/env/run.sh python -m benchmarks.model_quality --data-dir ../shared/data/blood-cells
        [--seeds 1 2 3] [--epochs N] [--tutorial cached|retrain|skip] [--out benchmarks/results]

Each seed is a real pipeline run (local_runner; the data steps are cached after the first) with the gate
opened (min_accuracy 0, any drop) so that every seed's model is pushed and measured. TEST is only
measured here, never used to choose anything. The tutorial's CNN is trained with its own published
recipe (benchmarks/quality/tutorial_recipe.py), which takes hours on a CPU: its result is stored in
<out>/tutorial_cnn.json with the commit, date, machine and a fingerprint of the code that made it, and
reused until that code changes (--tutorial retrain forces it; the recipe's `train` command also runs on a
GPU machine with JAX or PyTorch). Both models' training speed on this machine is measured in the run.
Writes <out>/model_quality.json, <out>/model_quality.md and one confusion-matrix PNG per model.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import io
import json
import os
import re
import shlex
import statistics
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent

from benchmarks.quality import confusion_png, derived, heldout_cells, metrics, other_labs, throughput, tutorial_recipe
from pipeline import local_runner
from pipeline.config import load_config

TUTORIAL_SEED = 1
DERIVED_SUBSET = 400  # TEST (and val) images per derived variant: every 6th (2nd) or so, all classes


def files_and_labels(folder: Path, class_names: list[str]) -> tuple[list[Path], np.ndarray]:
    files = sorted(p for c in class_names for p in (folder / c).iterdir() if p.is_file())
    return files, np.array([class_names.index(p.parent.name) for p in files])


@functools.lru_cache(maxsize=1)
def pixels_signature(saved_model: str):
    """The browser signature of a SavedModel, loaded once for the run of calls that measure it."""
    import tensorflow as tf

    return tf.saved_model.load(saved_model).signatures["serving_pixels"]


def predict(saved_model: str, files: list[Path], transform=None) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and atypicality through the browser signature on PIL-decoded pixels (the same
    pixels as serving_default's decode)."""
    import tensorflow as tf

    fn = pixels_signature(saved_model)
    out, atypical = [None] * len(files), np.zeros(len(files), np.float32)
    for start in range(0, len(files), 64):
        batch = [np.asarray(Image.open(p).convert("RGB"), dtype=np.float32) for p in files[start:start + 64]]
        if transform:
            batch = [transform(b) for b in batch]
        # One call per image size (TEST's are all 320x240; another lab's vary); answers go back to their files.
        for shape in {b.shape for b in batch}:
            at = [start + i for i, b in enumerate(batch) if b.shape == shape]
            result = fn(pixels=tf.constant(np.stack([batch[i - start] for i in at])))
            for i, row in zip(at, result["probabilities"].numpy()):
                out[i] = row
            if "atypicality" in result:
                atypical[at] = result["atypicality"].numpy()
    return np.stack(out), atypical


def current_commit() -> str:
    """HEAD's commit without the git binary (the userland has none)."""
    git = REPO / ".git"
    if git.is_file():  # a worktree: "gitdir: <common git dir>/worktrees/<name>"
        git = Path(git.read_text().split(":", 1)[1].strip())
    common = git.parent.parent if git.parent.name == "worktrees" else git  # where branch refs live
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head
        ref = head[5:]
        if (common / ref).exists():
            return (common / ref).read_text().strip()
        for line in (common / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split()[0]
    except OSError:
        pass
    return "unknown"


def trainer_record(metadata_path: str) -> tuple[float | None, int | None, list[float]]:
    """Seconds, epochs and per-epoch `val` accuracy (one view) of the training that made the latest
    Trainer output, also when this run took it from the cache (the cached execution points to the
    artifact the original one wrote)."""
    import tensorflow as tf
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    cfg = metadata_store_pb2.ConnectionConfig()
    cfg.sqlite.filename_uri = metadata_path
    cfg.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    store = metadata_store.MetadataStore(cfg)
    trainers = [e for t in store.get_execution_types() if t.name.endswith("Trainer")
                for e in store.get_executions_by_type(t.name)]
    if not trainers:
        return None, None, []
    latest = max(trainers, key=lambda e: e.id)
    outputs = [ev.artifact_id for ev in store.get_events_by_execution_ids([latest.id])
               if ev.type == metadata_store_pb2.Event.OUTPUT]
    writers = {ev.execution_id for ev in store.get_events_by_artifact_ids(outputs)
               if ev.type == metadata_store_pb2.Event.OUTPUT}
    done = [e for e in store.get_executions_by_id(list(writers))
            if e.last_known_state == metadata_store_pb2.Execution.COMPLETE]
    if not done:
        return None, None, []
    original = min(done, key=lambda e: e.id)
    seconds = (original.last_update_time_since_epoch - original.create_time_since_epoch) / 1000
    epochs, val_accuracy = None, []
    for artifact in store.get_artifacts_by_id(outputs):
        events = tf.io.gfile.glob(os.path.join(artifact.uri, "validation", "events.out.tfevents.*"))
        if events:
            summaries = [(e.step, v) for path in events for e in tf.compat.v1.train.summary_iterator(path)
                         for v in e.summary.value]
            epochs = sum(1 for _, v in summaries if v.tag == "epoch_loss")
            val_accuracy = [round(float(tf.make_ndarray(v.tensor)), 4) for _, v in sorted(
                (s for s in summaries if s[1].tag == "epoch_sparse_categorical_accuracy"), key=lambda s: s[0])]
    return seconds, epochs, val_accuracy


def run_config(args: list[str]):
    """The configuration a local_runner run with these arguments uses."""
    parsed = local_runner.parse_args(args)
    return load_config(parsed.config, local_runner.overrides_from(parsed))


def trained_examples(ingest_report: dict, config) -> int:
    """How many images the Trainer learnt from: `train`, plus `val` when the run's configuration trains on it."""
    splits = ["train", "val"] if config.training.train_on_val else ["train"]
    return sum(ingest_report["splits"][s]["examples"] for s in splits)


def run_pipeline(data_dir: str, work: str, extra: list[str]) -> dict:
    """One pipeline run; returns the pushed model, the Trainer's time and epochs, the tfjs bytes.

    The run reads no lab: with a lab's cells (the user's labs/ folder or labs.sources) the default model
    would train on them, later seeds would warm-start from the first one's model, and the zero-shot
    other-lab figures could count trained cells. So labs.dir is a folder that holds nothing and
    labs.sources is emptied, as benchmarks/lab_adaptation.py does for its own lab."""
    args = ["--data-dir", data_dir, "--output-dir", work, "--set", "evaluation.min_accuracy=0",
            "--set", "evaluation.max_accuracy_drop=1",
            "--set", f"labs.dir={os.path.join(os.path.abspath(work), 'no-labs-dir')}", "--set", "labs.sources={}",
            *extra]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = local_runner.main(args)
    text = out.getvalue()
    if code != 0:
        raise SystemExit(f"error: pipeline run failed ({' '.join(extra)}); its output ends: {text[-500:]}")
    config = run_config(args)
    tfjs = re.search(r"^browser model \(tfjs\): \S+ \((\d+) bytes", text, re.M)
    report = re.search(r"^ingest report: (\S+)$", text, re.M)
    train_examples = trained_examples(json.loads(Path(report.group(1)).read_text()), config) if report else None
    seconds, epochs, val_accuracy = trainer_record(config.metadata_path)
    return {"pushed": re.search(r"^pushed model: (\S+)$", text, re.M).group(1),
            "pipeline_root": config.pipeline_root,
            "trainer_s": seconds, "epochs_run": epochs, "train_examples": train_examples,
            "val_accuracy_by_epoch": val_accuracy,
            "tfjs_bytes": int(tfjs.group(1)) if tfjs else None}


def dir_bytes(path: str) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def param_count(model: str, image_size: int, n: int) -> int:
    from models.trainer.architectures import build_model

    return int(build_model(model, image_size, n).count_params())


def val_split(pipeline_root: str, images: Path, class_names: list[str]) -> tuple[list[Path], np.ndarray, list[str]]:
    """The `val` images of the run's latest ingest, their labels, and the cell (group of augmented copies
    of one original) each belongs to, named by the cell's first file."""
    import tensorflow as tf

    from components.image_example_gen import cell_groups
    from models.features import LABEL_KEY, PATH_KEY

    examples = throughput.latest(os.path.join(pipeline_root, "FileBasedExampleGen", "examples", "*"))
    rows = []
    for record in tf.data.TFRecordDataset(tf.io.gfile.glob(os.path.join(examples, "Split-val", "*")),
                                          compression_type="GZIP"):
        feature = tf.train.Example.FromString(record.numpy()).features.feature
        rows.append((feature[PATH_KEY].bytes_list.value[0].decode(), int(feature[LABEL_KEY].int64_list.value[0])))
    rows.sort()
    files, labels = [images / path for path, _ in rows], np.array([label for _, label in rows])
    cell_of = {}
    for c in range(len(class_names)):
        for group in cell_groups.group_files([str(f) for f, y in zip(files, labels) if y == c],
                                             lambda path: Path(path).read_bytes()):
            cell_of.update({m: str(Path(group.key).relative_to(images)) for m in group.members})
    return files, labels, [cell_of[str(f)] for f in files]


def measure_val(pushed: str, pipeline_root: str, images: Path, config) -> dict:
    """val through the served model (all views, as TEST is measured): a steadier tuning signal than the
    Trainer's one-view figure, with the cells the errors come from. Empty without a val split."""
    names = list(config.class_names)
    files, labels, cells = val_split(pipeline_root, images, names)
    if not files:
        return {}
    threshold = config.browser.review_threshold
    probs, atypical = predict(pushed, files)
    return {"val": {**metrics.summarize(probs, labels, names, threshold, atypical),
                    "by_cell": metrics.by_cell(labels, metrics.answers(probs), cells, names),
                    # A tuning probe must keep its robustness too, without looking at TEST.
                    "derived": measure_derived(pushed, files, labels, names, threshold)}}


def measure_derived(pushed: str, files: list[Path], labels: np.ndarray, names: list[str], threshold: float) -> dict:
    """Every derived variant (other magnification, stains, non-cells) of about DERIVED_SUBSET of the images."""
    subset = slice(None, None, max(1, len(files) // DERIVED_SUBSET))
    out = {}
    for variant, fn in derived.VARIANTS.items():
        probs, atypical = predict(pushed, files[subset], fn)
        out[variant] = metrics.summarize(probs, labels[subset], names, threshold, atypical)
    return out


def measure(run: dict, model: str, images: Path, config, sources: dict[str, Path] | None = None) -> dict:
    names, threshold = list(config.class_names), config.browser.review_threshold
    test_files, test_labels = files_and_labels(images / "TEST", names)
    simple_files, simple_labels = files_and_labels(images / "TEST_SIMPLE", names)
    test_probs, test_atyp = predict(run["pushed"], test_files)
    simple_probs, simple_atyp = predict(run["pushed"], simple_files)
    result = {
        **run,
        "params": param_count(model, config.image_size, len(names)),
        "saved_model_bytes": dir_bytes(run["pushed"]),
        "train_images_per_s": (run["train_examples"] * run["epochs_run"] / run["trainer_s"])
        if run.get("trainer_s") and run.get("epochs_run") and run.get("train_examples") else None,
        "test": metrics.summarize(test_probs, test_labels, names, threshold, test_atyp),
        "test_simple": metrics.summarize(simple_probs, simple_labels, names, threshold, simple_atyp),
        # Decision (a) of the cross-lab issue: every held-out cell weighs alike, not by its number of copies.
        "test_by_cell": metrics.by_cell(test_labels, metrics.answers(test_probs),
                                        heldout_cells.assign(test_files, test_labels, simple_files, simple_labels),
                                        names),
        "derived": measure_derived(run["pushed"], test_files, test_labels, names, threshold),
        "other_labs": other_labs.measure_all(lambda files: predict(run["pushed"], files), sources or {},
                                             names, threshold),
    }
    if not config.training.train_on_val:  # else val holds cells the model learnt: no measure of new cells
        result.update(measure_val(run["pushed"], run["pipeline_root"], images, config))
    return result


def tutorial_result(args, config, images: Path, may_train: bool = True) -> dict | None:
    """The tutorial's CNN with its published recipe (benchmarks/quality/tutorial_recipe.py), from the cache
    when the code that made it is unchanged, else trained here (unless may_train is False)."""
    cache = Path(args.out) / "tutorial_cnn.json"
    if args.tutorial == "skip":
        return None
    fingerprint = tutorial_recipe.fingerprint()
    if args.tutorial == "cached" and cache.exists():
        stored = json.loads(cache.read_text())
        if stored.get("code_fingerprint") == fingerprint:
            return {**stored, "reused_from_cache": True}
        print(f"tutorial result in {cache} was made by other code", file=sys.stderr)
    if not may_train:
        print(f"no current tutorial result in {cache}: its row is left out", file=sys.stderr)
        return None
    train_images, train_labels = tutorial_recipe.load_folder(images / "TRAIN")
    model, trained = tutorial_recipe.train(train_images, train_labels, seed=TUTORIAL_SEED,
                                           backup_dir=os.path.join(args.work, "tutorial_backup"))
    weights = tutorial_weights_path(args)
    weights.parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(str(weights))  # kept so that new measurements (other labs) need no retraining
    trained["weights_sha256"] = other_labs.sha256_of(weights)
    trained["date"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    result = {**tutorial_recipe.evaluate(model, images, trained, config.browser.review_threshold),
              "commit": current_commit()}
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(result, indent=1))
    return {**result, "reused_from_cache": False}


def tutorial_weights_path(args) -> Path:
    return Path(args.tutorial_weights or os.path.join(args.work, "tutorial_cnn.weights.h5"))


def tutorial_on_other_labs(weights: Path, tutorial: dict, sources: dict[str, Path], names: list[str],
                           threshold: float) -> dict | None:
    """The tutorial's CNN on other labs' cells, from the weights its cached result was made with. None
    when those weights are not here."""
    if not sources or not weights.is_file():
        return None
    if other_labs.sha256_of(weights) != tutorial.get("weights_sha256"):
        print(f"{weights} are not the weights of the cached tutorial result: its other-lab rows are left out",
              file=sys.stderr)
        return None
    model = tutorial_recipe.classifier(len(names))
    model.load_weights(str(weights))

    def predict_files(files: list[Path]) -> tuple[np.ndarray, np.ndarray]:
        pixels = np.stack([tutorial_recipe.load_image(f) for f in files]).astype(np.float32)
        return model.predict(pixels, batch_size=64, verbose=0), np.zeros(len(files), np.float32)

    return other_labs.measure_all(predict_files, sources, names, threshold)


def other_labs_section(report: dict) -> list[str]:
    """Per source: every seed of the default model, their mean, and the tutorial's CNN when measured."""
    names, runs = report["class_names"], report["seeds_runs"]
    tutorial = report.get("tutorial") or {}
    sources = sorted({s for r in runs for s in r.get("other_labs") or {}})
    if not sources:
        return []
    lines = ["", "## Other labs (zero-shot: no cell of these labs was trained on)", "",
             "Accuracy counts the cells of the four classes. Flagged: sent to review (top probability under "
             f"{report['review_threshold']}, or unlike the training images). Errors flagged: share of the wrong "
             "answers that are flagged; right answers flagged: the reviewer's cost. The mean row's confusion "
             "is summed over seeds."]
    for source in sources:
        rows = [(source, "default", str(r["seed"]), r["other_labs"][source]) for r in runs
                if source in (r.get("other_labs") or {})]
        if len(rows) > 1:
            rows.append((source, "default", "mean", other_labs.mean_row([row[3] for row in rows], names)))
        theirs = (tutorial.get("other_labs") or {}).get(source)
        if theirs:
            rows.append((source, "tutorial_cnn", str(tutorial.get("seed", "-")), theirs))
        lines += ["", f"### {source} ({rows[0][3]['folder']})", "", *other_labs.table(rows, names)]
        if tutorial and not theirs:
            lines += ["", "tutorial_cnn: not measured on this source: the weights of its cached result are not "
                      "here (--tutorial-weights, or --tutorial retrain)."]
    return lines


def spread(values: list[float]) -> dict:
    return {"mean": statistics.mean(values), "min": min(values), "max": max(values),
            "stdev": statistics.stdev(values) if len(values) > 1 else 0.0}


def test_per_cell_lines(seeds_runs: list[dict], class_names: list[str]) -> list[str]:
    """What the TEST per cell column means, with its mean over the seeds that have it, per class too."""
    measured = [r["test_by_cell"] for r in seeds_runs if r.get("test_by_cell")]
    if not measured:
        return []
    per_cell = spread([m["mean_share_right"] for m in measured])
    cells = {n: [c for c in measured[0]["per_cell"] if c["class"] == n] for n in class_names}
    by_class = {n: statistics.mean(statistics.mean(c["share_right"] for c in m["per_cell"] if c["class"] == n)
                                   for m in measured) for n in class_names if cells[n]}
    return ["", f"TEST per cell: the share of a cell's TEST copies answered right, averaged over TEST's "
            f"{measured[0]['cells']} cells (TEST_SIMPLE's originals; files with the same bytes are one cell). "
            "Within a class the dataset made about as many copies of each original, so this weighs each class "
            "by its cells (" + ", ".join(f"{n[:3]} {len(cells[n])}" for n in class_names) + "), as TEST_SIMPLE "
            "does, where TEST's image accuracy weighs the classes alike. Over seeds: mean "
            f"{per_cell['mean']:.4f}, min {per_cell['min']:.4f}, max {per_cell['max']:.4f}; per class (mean over "
            "seeds of the class's cells): " + ", ".join(f"{n[:3]} {v:.3f}" for n, v in by_class.items()) + ".",
            "", "Which original a copy comes from is not recorded: each goes to the original of its class nearest "
            "in colour (quality/heldout_cells.py). Copies per cell (" + ", ".join(
                f"{n[:3]} {min(c['images'] for c in cells[n])}-{max(c['images'] for c in cells[n])}"
                for n in class_names if cells[n]) + ") should be about even within a class: where they are not, "
            "copies went to a look-alike cell of the same class."]


def markdown(report: dict) -> str:
    names = report["class_names"]
    header = ("| model | seed | TEST acc | TEST per cell | TEST_SIMPLE | ECE | " + " | ".join(f"recall {n[:3]}" for n in names)
              + " | val acc | val served | val cells | params | SavedModel MB | tfjs MB | train s | train img/s |")
    rebuilt = report.get("rebuilt")
    lines = [f"# Model quality ({report['date']}, commit {report['commit'][:10]})", "",
             *([f"Report rebuilt {rebuilt['date']} at commit {rebuilt['commit'][:10]} from these stored seed "
                f"results (--report-only). Of the rebuild: " + ", ".join(
                    (["every figure of the default model's seeds, measured again on their stored models"]
                     if rebuilt.get("remeasured") else [])
                    + (["the tutorial's row"] if report.get("tutorial") else [])
                    + ([] if report.get("val_in_training") else ["the `val served` figures of models still on disk"])
                    + (["the speeds"] if rebuilt.get("speeds_remeasured") else [])) + ".", ""]
               if rebuilt else []),
             *([f"Made by `{report['command']}` on {report['machine']}.", ""] if report.get("command") else []),
             f"Data: {report['data_dir']}. Seeds: {report['seeds']}. TEST {report['seeds_runs'][0]['test']['n']} images, "
             f"TEST_SIMPLE {report['seeds_runs'][0]['test_simple']['n']}. Review flag (every flagged figure; "
             f"metrics.review_flags): top probability < {report['review_threshold']}, or atypicality over 1 "
             "(unlike the training images; the tutorial's CNN has no such score), or no finite probabilities.", "",
             header, "|" + "---|" * (header.count("|") - 1)]
    rows = [("default", r) for r in report["seeds_runs"]]
    if report.get("tutorial"):
        rows.append(("tutorial_cnn" + (" (cached)" if report["tutorial"].get("reused_from_cache") else ""),
                     report["tutorial"]))
    for name, r in rows:
        t = r["test"]
        recalls = " | ".join(f"{t['per_class'][n]['recall']:.3f}" for n in names)
        val = [] if report.get("val_in_training") else r.get("val_accuracy_by_epoch") or []
        train_s = "-" if r["trainer_s"] is None else f"{r['trainer_s']:.0f}"  # None: a resumed run
        served = f"{r['val']['accuracy']:.4f}" if r.get("val") else "-"
        cells = f"{r['val']['by_cell']['cells_right']}/{r['val']['by_cell']['cells']}" if r.get("val") else "-"
        per_cell = (r.get("test_by_cell") or {}).get("mean_share_right")
        lines.append(f"| {name} | {r.get('seed', '-')} | {t['accuracy']:.4f} | "
                     f"{'-' if per_cell is None else f'{per_cell:.4f}'} | {r['test_simple']['correct']}/"
                     f"{r['test_simple']['n']} | {other_labs.share(t['ece'])} | {recalls} | "
                     f"{f'{val[-1]:.4f}' if val else '-'} | {served} | {cells} | {r['params']} | "
                     f"{r['saved_model_bytes'] / 1e6:.2f} | {(r['tfjs_bytes'] or 0) / 1e6:.2f} | "
                     f"{train_s} | {r['train_images_per_s'] or 0:.0f} |")
    acc = report["default_test_accuracy"]
    lines += ["", "The default model trained on `val` too (training.train_on_val): its val columns would "
              "measure cells it has seen, so they are left out. Tuning runs hold val out "
              "(research/val_probe.py)." if report.get("val_in_training") else
              "val acc: the Trainer's `val` split after the last epoch, one view per image (with "
              "ingest.val_split=cell_groups, cells that training never saw: the tuning signal). val served: "
              "the same images through the pushed model, as TEST is measured. val cells: cells whose most common "
              "answer is right (a plurality; a tie goes to the class listed first).", ""]
    for name, r in rows:
        wrong = (r.get("val") or {}).get("by_cell", {}).get("wrong")
        if wrong:
            lines.append(f"- {name} seed {r.get('seed', '-')}, val cells wrong: " + "; ".join(
                f"{c['cell']} ({c['images']} images, {c['share_right']:.0%} right, mostly {c['majority'] or 'no answer'})"
                for c in wrong))
    lines += ["", f"Default model TEST accuracy over seeds: mean {acc['mean']:.4f}, min {acc['min']:.4f}, "
              f"max {acc['max']:.4f}, stdev {acc['stdev']:.4f}.", *test_per_cell_lines(report["seeds_runs"], names), "",
              "## Derived images (every few TEST and val images, transformed)", "",
              "| model | seed | image set | accuracy | mean confidence | low confidence | unlike training | flagged for review |",
              "|---|---|---|---|---|---|---|---|"]
    for name, r in rows:
        served = r.get("val") or {}
        for variant, d in [("TEST", r["test"]), *r["derived"].items(),
                           *([("val", served)] if served else []),
                           *((f"val {v}", d) for v, d in served.get("derived", {}).items())]:
            lines.append(f"| {name} | {r.get('seed', '-')} | {variant} | {d['accuracy']:.4f} | "
                         f"{other_labs.share(d['mean_confidence'])} | {d['low_confidence_rate']:.3f} | "
                         f"{d['unlike_training_rate']:.3f} | {d['review_flag_rate']:.3f} |")
    lines += other_labs_section(report)
    tp = report.get("input_pipeline")
    if tp:
        lines += ["", "## Input pipeline alone (images/s, same run)", "",
                  f"Trainer tf.data over Transform output: {tp['trainer_tf_data']:.0f}; tutorial "
                  f"ImageDataGenerator.flow_from_directory: {tp['image_data_generator']:.0f}; ratio "
                  f"{tp['ratio']:.2f}."]
    speed = report.get("training_speed")
    if speed:
        lines += ["", "## Training speed on this machine (images/s, same run)", "",
                  f"640 images after a warm-up, each model with its own input pipeline: default model "
                  f"{speed['default']:.1f}, tutorial CNN {speed['tutorial_cnn']:.1f}, ratio "
                  f"{speed['default'] / speed['tutorial_cnn']:.2f}."]
    tutorial = report.get("tutorial")
    if tutorial:
        lines += ["", f"tutorial_cnn: trained {tutorial.get('date', '?')} at commit {tutorial.get('commit', '?')[:10]} "
                  f"on {tutorial.get('machine', '?')}, Keras {tutorial.get('keras', '?')} "
                  f"({tutorial.get('backend', '?')} backend), seed {tutorial.get('seed')}; its tfjs model holds "
                  f"float32 weights, as the tutorial shipped it."]
    return "\n".join(lines) + "\n"


def report_frame(seeds_runs: list[dict], data_dir: str, config, now: str, commit: str) -> dict:
    """What a report says around its seed results: when, from which code and data, with which settings."""
    return {
        "date": now, "commit": commit,
        # What made the report and where: a rebuild's command, not the seed runs' (each seed file has its own).
        "command": " ".join(["python -m benchmarks.model_quality", *map(shlex.quote, sys.argv[1:])]),
        "machine": tutorial_recipe.machine(),
        "data_dir": data_dir, "seeds": [r["seed"] for r in seeds_runs], "class_names": list(config.class_names),
        "review_threshold": config.browser.review_threshold,
        "val_in_training": config.training.train_on_val,
        "seeds_runs": seeds_runs,
        "default_test_accuracy": spread([r["test"]["accuracy"] for r in seeds_runs]),
    }


def report_from_seed_files(paths: list[str], data_dir: str, config, now: str) -> dict:
    """A report's frame around seed results written by separate runs (seed<N>.json each). Its commit
    is the one the seed files name when they all agree (older files name none), else the current one."""
    runs = sorted((json.loads(Path(p).read_text()) for p in paths), key=lambda r: r["seed"])
    seeds = [r["seed"] for r in runs]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"a seed appears twice: {seeds}")
    commits = {r.get("commit") for r in runs}
    commit = commits.pop() if len(commits) == 1 and None not in commits else current_commit()
    return report_frame(runs, data_dir, config, now, commit)


def write_seed_result(out: str, result: dict) -> None:
    Path(out, f"seed{result['seed']}.json").write_text(json.dumps(result, indent=1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data" / "blood-cells"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--epochs", type=int, help="default: training.epochs of the configuration")
    parser.add_argument("--tutorial", choices=["cached", "retrain", "skip"], default="cached")
    parser.add_argument("--work", default=str(REPO / "runs" / "quality"))
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    parser.add_argument("--no-throughput", action="store_true")
    parser.add_argument("--other-labs-root", type=Path, default=REPO.parent / "shared" / "data" / "other-labs",
                        help="every sub-folder holding class folders is a source measured zero-shot")
    parser.add_argument("--other-lab", type=other_labs.parse_other_lab, action="append", default=[],
                        metavar="NAME=DIR", help="another lab's class-folder tree (<DIR>/<CLASS>/<image>); repeatable")
    parser.add_argument("--tutorial-weights", help="the cached tutorial result's weights (.weights.h5), to "
                        "measure it on other labs; default: <work>/tutorial_cnn.weights.h5")
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing: rebuild the report from <out>/model_quality.json's seed results and "
                             "the cached tutorial result, re-measuring the speeds (the default runs' pipeline "
                             "root must still be under --work)")
    parser.add_argument("--seed-results", nargs="+", metavar="SEED_JSON",
                        help="with --report-only: build the report from these seed<N>.json files (seed runs made "
                             "in separate --out folders) instead of <out>/model_quality.json")
    parser.add_argument("--remeasure", action="store_true",
                        help="with --report-only: measure the stored seed runs' pushed models again (TEST, "
                             "TEST_SIMPLE, derived images), after a change to what the harness measures")
    args = parser.parse_args()
    if args.remeasure and not args.report_only:
        parser.error("--remeasure needs --report-only")
    if args.seed_results and not args.report_only:
        parser.error("--seed-results needs --report-only")

    from components.image_example_gen import image_reader

    config = load_config()
    try:
        images = Path(image_reader.resolve_data_root(args.data_dir))
    except image_reader.IngestError as err:
        print(f"error: --data-dir: {err}", file=sys.stderr)
        return 2
    if not (images / "TEST_SIMPLE").is_dir():
        print(f"error: no TEST_SIMPLE folder beside TEST under {images}", file=sys.stderr)
        return 2
    if not args.report_only or args.remeasure:  # before hours of training, not after
        empty = [f"{split}/{c}" for split in ("TEST", "TEST_SIMPLE") for c in config.class_names
                 if not (images / split / c).is_dir() or not any(p.is_file() for p in (images / split / c).iterdir())]
        if empty:
            print(f"error: no images in {', '.join(empty)} under {images}: every class needs TEST images and "
                  "their TEST_SIMPLE originals", file=sys.stderr)
            return 2
    try:
        sources, origin = other_labs.sources(args.other_lab, args.other_labs_root)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for name, folder in sources.items():  # checked before hours of training, not after
        try:
            other_labs.load(name, folder, list(config.class_names))
        except (OSError, ValueError) as err:
            print(f"error: {other_labs.load_error(err, origin[name])}", file=sys.stderr)
            return 2
    os.makedirs(args.out, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    root = os.path.join(args.work, "default", config.pipeline_name, "pipeline_root")  # the default runs'

    if args.report_only:
        if args.seed_results:
            try:
                report = report_from_seed_files(args.seed_results, args.data_dir, config, now)
            except (OSError, ValueError, KeyError) as err:
                print(f"error: --seed-results: {err}", file=sys.stderr)
                return 2
        else:
            stored = Path(args.out, "model_quality.json")
            if not stored.exists():
                print(f"error: --report-only needs a previous report at {stored} (or --seed-results)", file=sys.stderr)
                return 2
            report = json.loads(stored.read_text())
        report["rebuilt"] = {"date": now, "commit": current_commit()}
        tutorial = tutorial_result(args, config, images, may_train=False)
        seeds_runs = report["seeds_runs"]
        if args.remeasure:
            gone = [r["pushed"] for r in seeds_runs if not os.path.isdir(r["pushed"])]
            if gone:
                print(f"error: --remeasure needs the stored runs' pushed models; missing: {', '.join(gone)}",
                      file=sys.stderr)
                return 2
            for r in seeds_runs:  # the run's own fields (pushed model, trainer time, ...) are kept
                r.update(measure(r, "default", images, config, sources))
                write_seed_result(args.out, r)
                print(f"seed {r['seed']}: TEST {r['test']['accuracy']:.4f} (measured again)", file=sys.stderr)
            report["rebuilt"]["remeasured"] = True
        for r in seeds_runs:  # runs measured before val was: measured now if their model is still there
            if ("val" not in r and not report.get("val_in_training") and os.path.isdir(r["pushed"])
                    and os.path.isdir(root)):
                r.update(measure_val(r["pushed"], root, images, config))
        report["rebuilt"]["speeds_remeasured"] = not args.no_throughput
    else:
        seeds_runs = []
        for seed in args.seeds:
            extra = ["--set", f"training.seed={seed}"] + (["--epochs", str(args.epochs)] if args.epochs else [])
            run = run_pipeline(args.data_dir, os.path.join(args.work, "default"), extra)
            seeds_runs.append({"seed": seed, "commit": current_commit(),
                               **measure(run, "default", images, config, sources)})
            write_seed_result(args.out, seeds_runs[-1])  # on disk as soon as they exist
            print(f"seed {seed}: TEST {seeds_runs[-1]['test']['accuracy']:.4f}", file=sys.stderr)
        tutorial = tutorial_result(args, config, images)
        report = report_frame(seeds_runs, args.data_dir, config, now, current_commit())
    if tutorial:
        measured = tutorial_on_other_labs(tutorial_weights_path(args), tutorial, sources, list(config.class_names),
                                          config.browser.review_threshold)
        tutorial["other_labs"] = measured or tutorial.get("other_labs")
    report["tutorial"] = tutorial
    if not args.no_throughput:
        ours = throughput.trainer_pipeline_images_per_s(root)
        theirs = throughput.image_data_generator_images_per_s(str(images / "TRAIN"), config.image_size)
        report["input_pipeline"] = {"trainer_tf_data": ours, "image_data_generator": theirs, "ratio": ours / theirs}
        # Training speed of both models on this machine in this run, over 640 images each: whole-run
        # figures differ in what they include, and the tutorial's may come from the cache (another machine).
        train_images, train_labels = tutorial_recipe.load_folder(images / "TRAIN")
        report["training_speed"] = {
            "default": throughput.trainer_model_images_per_s(root, "default", config.image_size,
                                                             len(config.class_names), config.training.learning_rate),
            "tutorial_cnn": tutorial_recipe.train_images_per_s(train_images[::10], train_labels[::10])}
    for name, r in [(f"default_seed{r['seed']}", r) for r in seeds_runs] + ([("tutorial_cnn", tutorial)] if tutorial else []):
        confusion_png.draw(r["test"]["confusion_matrix"], list(config.class_names),
                           f"{name}: TEST accuracy {r['test']['accuracy']:.4f}",
                           os.path.join(args.out, f"confusion_{name}.png"))
    Path(args.out, "model_quality.json").write_text(json.dumps(report, indent=1))
    Path(args.out, "model_quality.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
