"""Runs the pipeline on this machine: LocalDagRunner, SQLite metadata, Beam DirectRunner.

    python -m pipeline.local_runner [--config FILE] [--data-dir DIR] [--epochs N] [--model NAME] [--set k=v]

Exit status: 0 with a blessed, pushed model; 1 with a one-line reason otherwise; 2 for bad arguments.
"""
from __future__ import annotations

import argparse
import errno
import fcntl
import json
import logging
import os
import re
import sys
import time
import traceback

from pipeline.config import DEFAULT_CONFIG, ConfigError, load_config

RUN_LOCK = ".run.lock"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pipeline.local_runner", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help=f"configuration YAML, read over {DEFAULT_CONFIG.name} (default: that alone)")
    parser.add_argument("--data-dir", help="image folders in the Kaggle layout (overrides data_dir)")
    parser.add_argument("--output-dir", help="where runs, metadata and pushed models go (overrides output_dir)")
    parser.add_argument("--epochs", type=int, help="training epochs (overrides training.epochs)")
    parser.add_argument("--model", help="model architecture: default | tutorial_cnn (overrides training.model)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override any configuration value; repeatable")
    parser.add_argument("--lab-source", action="append", default=[], metavar="NAME=DIR",
                        help="a lab's reviewed cells (review exports and/or class folders); repeatable")
    parser.add_argument("--if-changed", action="store_true",
                        help="run no step when the configuration, code, package locks, data and lab folders are "
                             "what the last finished run read: exit 0, or 1 when its model was not blessed "
                             "(for scheduled runs)")
    parser.add_argument("--verbose", action="store_true", help="show TFX and Beam logs")
    return parser.parse_args(argv)


def _folder(path: str) -> str:
    """A local folder made absolute; a bucket prefix (gs://...) as given."""
    return path if "://" in path else os.path.abspath(path)


def overrides_from(args: argparse.Namespace) -> list[str]:
    out = list(args.set)
    if args.data_dir:
        out.append(f"data_dir={_folder(args.data_dir)}")
    if args.output_dir:
        out.append(f"output_dir={_folder(args.output_dir)}")
    if args.epochs is not None:
        out.append(f"training.epochs={args.epochs}")
    if args.model:
        out.append(f"training.model={args.model}")
    named: dict[str, str] = {}
    malformed = []
    for source in args.lab_source:
        name, sep, folder = source.partition("=")
        if not (sep and folder):  # reaches the config's own check as an empty folder, after the good ones
            malformed.append(f"labs.sources.{name or '?'}=")
            continue
        if name in named and _folder(folder) != named[name]:
            raise ConfigError(f"--lab-source {name} is given two folders ({named[name]}, {_folder(folder)}): "
                              f"name each lab once")
        named[name] = _folder(folder)
    return out + [f"labs.sources.{name}={folder}" for name, folder in named.items()] + malformed


def one_line(err: BaseException) -> str:
    text = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    # TensorFlow's traced-function errors start with "in user code:" and end with the actual message.
    line = text[-1] if text and text[0].startswith("in user code") else (text[0] if text else "")
    return f"{type(err).__name__}: {line}".strip()


def _delivery_problem(config) -> str | None:
    """Why the model could not be delivered as configured, in one line: a local warm-up image that is
    not an image the model takes (TF Serving would not load the model), or no tfjs converter."""
    import tensorflow as tf

    from components.tfjs_publisher import convert
    from models.transform.preprocessing import decode_rgb
    from serving.warmup import warmup_count_problem

    too_many = warmup_count_problem(len(config.serving.warmup_images))
    if too_many:
        return too_many
    for path in config.serving.warmup_images:
        resolved = config.resolve(path)
        if "://" in resolved:
            continue
        if not os.path.isfile(resolved):
            return f"serving.warmup_images: no such file: {path}"
        try:
            with open(resolved, "rb") as f:
                decode_rgb(tf.constant(f.read()), config.ingest.max_pixels)  # as the served model decodes it
        except OSError as err:
            return f"serving.warmup_images: cannot read {path}: {err.strerror or err}"
        except tf.errors.OpError as err:
            # TensorFlow's message without its op-name wrapping
            reason = re.sub(r"\{\{[^}]*\}\}\s*|\s*\[Op:.*$", "", (err.message or type(err).__name__).strip().splitlines()[0])
            return f"serving.warmup_images: {path}: the served model cannot decode it ({reason})"
    try:
        convert.converter_command(config.browser.converter)
    except convert.ConversionError as err:
        return str(err)
    return None


def _bad_name_bytes(err: UnicodeDecodeError) -> str:
    """The name's bytes around the one that is not UTF-8, as Python writes bytes."""
    return repr(err.object[max(0, err.start - 20):err.end + 20])


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        config = load_config(args.config, overrides_from(args))
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if "://" in config.output_dir:
        print(f"error: output_dir {config.output_dir}: a local run keeps its metadata store and run lock in a local "
              "folder (a bucket is for Kubeflow's kubeflow.pipeline_root)", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(message)s")
    if not args.verbose:
        from absl import logging as absl_logging
        absl_logging.set_verbosity(absl_logging.WARNING)

    from pipeline import run_log

    with run_log.captured(None, enabled=not args.verbose):  # TensorFlow's and TFX's start-up lines
        import tensorflow as tf

        from components.image_example_gen import image_reader
        from pipeline.pipeline import create_pipeline  # noqa: F401  (imports TFX)

    try:
        data_root = image_reader.resolve_data_root(config.data_path)
        # A quick look before the run: "hash" checks the layout and every split without reading images;
        # the ingest itself splits by config.ingest.val_split.
        base, _ = image_reader.list_source(data_root, list(config.class_names), config.ingest.val_fraction,
                                           config.ingest.hash_split_eval_fraction, "hash")
    except image_reader.IngestError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except UnicodeDecodeError as err:  # TensorFlow's file listing cannot return such a name
        print(f"error: a file name under {config.data_path} is not UTF-8 ({_bad_name_bytes(err)}): rename it",
              file=sys.stderr)
        return 2
    except (tf.errors.OpError, OSError) as err:  # e.g. a sub-folder this user may not list
        print(f"error: cannot read the data folder {config.data_path}: {one_line(err)}", file=sys.stderr)
        return 2

    problem = _delivery_problem(config)
    if problem:  # found now, not after the Trainer's minutes (warm-up) or the Pusher (converter)
        print(f"error: {problem}", file=sys.stderr)
        return 2

    try:
        os.makedirs(config.run_dir, exist_ok=True)
        if not os.access(config.run_dir, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
    except OSError as err:
        print(f"error: cannot create the output folder {config.run_dir}: {err.strerror}", file=sys.stderr)
        return 2
    try:
        lock = open(os.path.join(config.run_dir, RUN_LOCK), "a")
    except OSError as err:  # e.g. left by a run as another user
        print(f"error: cannot open the run lock {os.path.join(config.run_dir, RUN_LOCK)}: {err.strerror}",
              file=sys.stderr)
        return 2
    with lock:
        try:
            # Two runs on one folder would share its metadata store: each summary could report the
            # other's blessing. Taken before the store is read; it goes with the process, however it ends.
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"error: run in progress: another run holds {lock.name}; wait for it to end", file=sys.stderr)
            return 2
        return _run_locked(args, config, data_root, [c.path for c in base])


def _prune_line(config, before: int) -> str | None:
    """Older runs' image copies deleted (pipeline/retention.py), in one line, or None when none was; a
    failure to delete them is said, never the run's failure (a finished run's model is delivered by then)."""
    from pipeline import retention

    try:
        pruned = retention.prune_examples(config.metadata_path, config.keep_examples, before)
    except Exception as err:  # a file held open, a store mid-repair: the next run tries again
        return f"warning: older runs' image copies were not deleted: {one_line(err)}"
    if not pruned.artifacts + pruned.orphans:
        return None
    stopped = f", {pruned.orphans} of them left by runs stopped mid-step" if pruned.orphans else ""
    return (f"disk: {pruned.artifacts + pruned.orphans} older copies of the images deleted{stopped}, "
            f"{pruned.bytes_freed / 2**20:.0f} MiB freed (the newest {config.keep_examples} of each kept: keep_examples)")


def _unreadable_store(config, err: Exception) -> int:
    detail = one_line(err).split(" query:")[0]  # not the SQL it was running
    print(f"error: cannot read the metadata store {config.metadata_path}: {detail}; restore it, or move it "
          f"aside to start afresh (no step cached, no blessed model to compare with)", file=sys.stderr)
    return 2


def _run_locked(args: argparse.Namespace, config, data_root: str, base_files: list[str]) -> int:
    """The rest of main, while this process holds the output folder's run lock. base_files: the base
    dataset's images, as main listed them."""
    import tensorflow as tf
    from tfx import v1 as tfx

    from components.image_example_gen import executor as example_gen_executor
    from components.image_example_gen import image_reader
    from models.trainer.record import split_change
    from pipeline import run_inputs, run_log, run_summary
    from pipeline.pipeline import create_pipeline, schema_copy

    try:
        labs = example_gen_executor.lab_folders(config.labs_path, config.lab_sources())  # as the ingest will
        key = run_inputs.inputs_key(config, data_root)  # lists the labs' folders too
    except image_reader.IngestError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (tf.errors.OpError, OSError) as err:  # a dangling link, a file gone while the folder syncs
        print(f"error: cannot read the run's inputs: {one_line(err)}", file=sys.stderr)
        return 2
    except UnicodeDecodeError as err:
        folders = ", ".join([config.labs_path, *config.lab_sources().values()])
        print(f"error: a file name under the labs' folders ({folders}) is not UTF-8 ({_bad_name_bytes(err)}): "
              "rename it", file=sys.stderr)
        return 2
    try:
        blessed = run_summary.last_blessed_reports(config.metadata_path)  # read once for both checks
        blessed_labs, blessed_split = run_summary.labs_of(blessed), run_summary.eval_fraction_of(blessed)
    except Exception as err:  # ml_metadata raises RuntimeError and its own errors alike
        return _unreadable_store(config, err)
    # Before the missing-labs check, which counts training cells with this run's split. A retired lab
    # still in its folder is still read, and still binds the split.
    problem = split_change(blessed_split, config.labs.eval_fraction) if set(blessed_labs) & set(labs) else None
    if problem:
        print(f"error: {problem}; keep --set labs.eval_fraction={blessed_split:g}, or start afresh in a new "
              "--output-dir", file=sys.stderr)
        return 2
    missing = run_inputs.missing_labs(
        blessed_labs, run_inputs.labs_with_cells(labs, blessed_labs, list(config.class_names), config.ingest.max_pixels,
                                                 config.labs.eval_fraction, base_files),
        config.labs.retired)
    if missing:
        print(f"error: the last blessed model was trained or gated on lab(s) {', '.join(missing)}, which this run does "
              f"not find (folder gone, renamed or empty, a share not mounted, or no training cell in it the ingest "
              f"takes?): restore them, or drop them on purpose with --set "
              f"'labs.retired={json.dumps(missing, separators=(',', ':'))}' "
              f"(in the config or the timer's line, not once: docs/labs.md)", file=sys.stderr)
        return 2
    if not os.path.exists(config.metadata_path):  # moved aside to start afresh
        run_inputs.forget_finished(config.run_dir)
    last = run_inputs.last_finished(config.run_dir)
    if args.if_changed and last and last.get("inputs_key") == key:
        if last.get("blessed") is not True:  # a failure until the inputs change: a skip must not read as all well
            print(f"error: nothing changed since the run that finished {last.get('finished_at')}, whose model was not "
                  "blessed (the last blessed model stays in service; it would not be blessed again): skipped",
                  file=sys.stderr)
            return 1
        print(f"nothing changed since the run that finished {last.get('finished_at')}: skipped")
        return 0
    metadata = tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path)
    pipeline = create_pipeline(config, metadata, data_root,
                               schema_file=schema_copy(os.path.join(config.run_dir, "curated_schema")))
    print(f"running pipeline '{config.pipeline_name}' on {data_root} (model {config.training.model}, "
          f"{config.training.epochs} epochs); outputs under {config.run_dir}", flush=True)
    try:
        # This run's steps come after it. Read last: the store may be moved aside while the labs are listed.
        before = run_summary.last_execution_id(config.metadata_path)
    except Exception as err:
        return _unreadable_store(config, err)
    started = time.monotonic()  # the wall time must not follow a clock step
    failure = None
    log_path = os.path.join(config.run_dir, "logs", time.strftime("run-%Y%m%dT%H%M%SZ.log", time.gmtime()))
    try:
        with run_log.captured(log_path, enabled=not args.verbose):
            tfx.orchestration.LocalDagRunner().run(pipeline)
    except Exception as err:  # a component failed: report it in one line below
        failure = err
    except KeyboardInterrupt:
        if args.verbose:
            traceback.print_exc()
        print(f"error: interrupted; the steps that finished are reused by the next run"
              f"{'' if args.verbose else f' (full log of the run: {log_path})'}", file=sys.stderr)
        return 130
    with run_log.captured(log_path, enabled=not args.verbose):  # TFMA's notices while it reads the results
        summary = run_summary.collect(config.metadata_path, before, config.class_names)
    if failure is None:
        run_inputs.record_finished(config.run_dir, key, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                   summary.blessed)
    print(run_summary.format_summary(summary, time.monotonic() - started, config.class_names,
                                    config.labs.min_eval_cells))
    # After a failure too: runs that fail while new exports come would each keep their copies.
    line = _prune_line(config, before)
    if line:
        print(line)
    if not args.verbose:
        print(f"full log of the run: {log_path}")
    if failure is not None:
        print(f"error: pipeline failed: {one_line(failure)}", file=sys.stderr)
        return 1
    if not summary.blessed:
        print(f"error: model not blessed: {summary.blessing_reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
