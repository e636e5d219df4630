import json
import os
import types

import pytest

from pipeline import code_version
from pipeline.config import load_config


def module_at(path) -> types.ModuleType:
    module = types.ModuleType(path.stem)
    module.__file__ = str(path)
    return module


def test_fingerprint_follows_every_file_of_a_package(tmp_path, monkeypatch):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("x = 1\n")
    monkeypatch.setattr(code_version, "REPO_ROOT", tmp_path)
    package = module_at(pkg / "__init__.py")
    first = code_version.code_fingerprint(package)
    assert code_version.code_fingerprint(package) == first
    (pkg / "a.py").write_text("x = 2\n")
    second = code_version.code_fingerprint(package)
    assert second != first
    (pkg / "sub" / "new.py").write_text("")  # a new file, in a folder no list named
    assert code_version.code_fingerprint(package) != second


def test_metric_names_use_class_names():
    from components.tfjs_publisher.evaluation import readable_metrics

    got = readable_metrics({"recall/classId:1 topK:1": 0.91234, "sparse_categorical_accuracy": 0.5},
                           ["EOSINOPHIL", "LYMPHOCYTE"])
    assert got == {"recall/LYMPHOCYTE": 0.9123, "sparse_categorical_accuracy": 0.5}


def test_pipeline_wiring(tmp_path):
    """Training waits for the validation gate; TEST feeds only the Evaluator; only blessed models push."""
    from pipeline.config import load_config
    from pipeline.pipeline import create_pipeline
    from testkit.images import make_dataset

    config = load_config(overrides=[f"data_dir={make_dataset(tmp_path)}", f"output_dir={tmp_path / 'out'}"])
    nodes = {c.id: c for c in create_pipeline(config).components}
    assert "AnomaliesGate" in {n.id for n in nodes["Transform"].upstream_nodes}
    assert json.loads(nodes["Trainer"].exec_properties["train_args"])["splits"] == ["train", "val"]
    assert json.loads(nodes["Trainer"].exec_properties["eval_args"])["splits"] == ["val"]
    assert json.loads(nodes["Evaluator"].exec_properties["example_splits"]) == ["eval"]
    assert nodes["Pusher"].inputs["model_blessing"] is nodes["Evaluator"].outputs["blessing"]
    assert nodes["TfjsPublisher"].inputs["pushed_model"] is nodes["Pusher"].outputs["pushed_model"]
    # Nothing reaches TF Serving's folder that did not first serve (locally: ServingCheck).
    assert nodes["Pusher"].inputs["infra_blessing"] is nodes["ServingCheck"].outputs["blessing"]
    assert nodes["ServingCheck"].inputs["model"] is nodes["Trainer"].outputs["model"]
    # A model that would not serve is never blessed: a blessing is the next run's baseline (and, with
    # labs, what it adapts), whether or not that model was pushed.
    assert "ServingCheck" in {n.id for n in nodes["Evaluator"].upstream_nodes}
    assert len(nodes) == 13
    # The project's executors, set as TFX's guide does (a class's EXECUTOR_SPEC, no deprecated override).
    from components.image_example_gen import executor as ingest
    from components.pusher import executor as push

    assert nodes["Pusher"].executor_spec.executor_class is push.Executor
    assert nodes["FileBasedExampleGen"].executor_spec.executor_class is ingest.Executor
    # Each step that runs the project's code carries its fingerprint: a fixed check must not be read
    # back from the cache for the same model.
    import components.anomalies_gate
    import components.pusher
    import components.serving_check
    import serving
    from pipeline.code_version import code_fingerprint

    assert nodes["AnomaliesGate"].exec_properties["code_version"] == code_fingerprint(components.anomalies_gate)
    assert nodes["ServingCheck"].exec_properties["code_version"] == code_fingerprint(components.serving_check, serving)
    assert json.loads(nodes["Pusher"].exec_properties["custom_config"])["code_version"] == code_fingerprint(
        components.pusher)

    # A tuning run holds val out of training.
    held_out = load_config(overrides=[f"data_dir={make_dataset(tmp_path)}", "training.train_on_val=false"])
    trainer = {c.id: c for c in create_pipeline(held_out).components}["Trainer"]
    assert json.loads(trainer.exec_properties["train_args"])["splits"] == ["train"]


def test_blessing_failures_read_as_sentences():
    from google.protobuf import text_format
    from tensorflow_model_analysis.proto import validation_result_pb2

    from pipeline.run_summary import describe_failure

    value = text_format.Parse("""
        metric_key { name: "sparse_categorical_accuracy" }
        metric_threshold { value_threshold { lower_bound { value: 0.5 } } }
        metric_value { double_value { value: 0.2509 } }""", validation_result_pb2.ValidationFailure())
    change = text_format.Parse("""
        metric_key { name: "sparse_categorical_accuracy" is_diff: true }
        metric_threshold { change_threshold { absolute { value: -0.01 } direction: HIGHER_IS_BETTER } }
        metric_value { double_value { value: -0.6188 } }""", validation_result_pb2.ValidationFailure())
    assert describe_failure(value) == "sparse_categorical_accuracy 0.2509 < 0.5"
    assert describe_failure(change) == "sparse_categorical_accuracy change vs last blessed model -0.6188 < -0.0100"


def test_a_gated_slice_the_eval_split_lacks_is_named_as_the_reason():
    # An eval split of lab cells and no base cell is not blessed; the summary had said only "thresholds
    # not met".
    from google.protobuf import text_format
    from tensorflow_model_analysis.proto import validation_result_pb2

    from pipeline.run_summary import failure_reasons

    validation = text_format.Parse("""
        validation_ok: false
        missing_slices { feature_values { key: "source" value: "base" } }""", validation_result_pb2.ValidationResult())
    assert failure_reasons(validation) == ["source=base: no examples of it in the eval split, so nothing to gate on"]


def test_the_sources_whose_own_slice_failed_are_read_from_the_validation_result():
    from google.protobuf import text_format
    from tensorflow_model_analysis.proto import validation_result_pb2

    from pipeline.run_summary import failed_sources

    failure = 'failures { metric_key { name: "sparse_categorical_accuracy" } }'
    validation = text_format.Parse(f"""
        validation_ok: false
        metric_validations_per_slice {{ slice_key {{ single_slice_keys {{ column: "source" bytes_value: "small" }} }} {failure} }}
        metric_validations_per_slice {{ slice_key {{ single_slice_keys {{ column: "source" bytes_value: "x" }}
                                                   single_slice_keys {{ column: "label_name" bytes_value: "MONOCYTE" }} }} {failure} }}
        metric_validations_per_slice {{ slice_key {{ single_slice_keys {{ column: "source" bytes_value: "fine" }} }} }}
        missing_slices {{ feature_values {{ key: "source" value: "gone" }} }}""", validation_result_pb2.ValidationResult())
    assert failed_sources(validation) == ["small"]


def test_the_adapted_line_names_the_lab_cells_trained_on_per_class():
    from pipeline.run_summary import adapted_line

    record = {"mode": "adapted", "lab_train_cells": 76, "steps": 600,
              "lab_train_cells_per_class": {"EOSINOPHIL": 8, "LYMPHOCYTE": 18, "MONOCYTE": 14, "NEUTROPHIL": 36}}
    assert adapted_line(record) == ("trainer: adapted the last blessed model to 76 lab cells (600 batches; per "
                                    "class: EOSINOPHIL 8, LYMPHOCYTE 18, MONOCYTE 14, NEUTROPHIL 36)")
    two_labs = {**record, "lab_train_cells_per_lab": {"a": 70, "b": 6}}
    assert adapted_line(two_labs).endswith("NEUTROPHIL 36; per lab: a 70, b 6)")
    # versions trained before the record held per-class counts
    assert adapted_line({"lab_train_cells": 5, "steps": 600}) == (
        "trainer: adapted the last blessed model to 5 lab cells (600 batches)")


def test_per_class_metrics_from_the_confusion_matrix():
    from components.tfjs_publisher.evaluation import per_class_metrics

    matrix = [[8, 2], [1, 9]]  # rows: actual A, B; columns: predicted A, B
    got = per_class_metrics(matrix, ["A", "B"])
    assert got == {"recall/A": 0.8, "precision/A": 8 / 9, "recall/B": 0.9, "precision/B": 9 / 11}


def test_fingerprint_of_a_folder_of_data_files(tmp_path):
    # The Trainer's warm-up requests are made from images: replacing one re-runs it.
    from pipeline import code_version

    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.jpeg").write_bytes(b"one")
    first = code_version.code_fingerprint(tmp_path / "images")
    (tmp_path / "images" / "a.jpeg").write_bytes(b"two")
    assert code_version.code_fingerprint(tmp_path / "images") != first


def test_fingerprint_of_single_files(tmp_path, monkeypatch):
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "b.py").write_text("y = 1\n")
    monkeypatch.setattr(code_version, "REPO_ROOT", tmp_path)
    first = code_version.code_fingerprint(module_at(tmp_path / "a.py"))
    (tmp_path / "b.py").write_text("y = 2\n")  # not part of the fingerprint
    assert code_version.code_fingerprint(module_at(tmp_path / "a.py")) == first


def test_traced_function_errors_keep_their_message_in_one_line():
    from pipeline.local_runner import one_line

    err = NameError("in user code:\n\n    File \"x.py\", line 3, in f\n        y\n\n    NameError: name 'y' is not defined\n")
    assert one_line(err) == "NameError: NameError: name 'y' is not defined"
    assert one_line(ValueError("bad value\nmore")) == "ValueError: bad value"


def test_a_second_run_on_a_folder_in_use_exits_2(tmp_path, capsys):
    """Two runs on one folder would share its metadata store (and mix their summaries)."""
    import fcntl

    from pipeline import local_runner
    from testkit.images import make_dataset

    data = make_dataset(tmp_path / "data", {"TRAIN": 2, "TEST": 1})
    run_dir = tmp_path / "out" / "bloodcell"
    run_dir.mkdir(parents=True)
    with open(run_dir / local_runner.RUN_LOCK, "a") as first_run:
        fcntl.flock(first_run, fcntl.LOCK_EX)
        code = local_runner.main(["--data-dir", str(data), "--output-dir", str(tmp_path / "out")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: run in progress: another run holds") and "\n" not in err


def test_a_run_in_progress_is_found_before_the_metadata_store_is_read(tmp_path, capsys):
    """The lock came after the metadata store and every lab image had been read: a second run read the
    first one's store mid-write, and could tell the operator to move it aside."""
    import fcntl

    from pipeline import local_runner
    from testkit.images import make_dataset

    data = make_dataset(tmp_path / "data", {"TRAIN": 2, "TEST": 1})
    run_dir = tmp_path / "out" / "bloodcell"
    run_dir.mkdir(parents=True)
    (run_dir / "metadata.sqlite").write_bytes(b"being written")
    with open(run_dir / local_runner.RUN_LOCK, "a") as first_run:
        fcntl.flock(first_run, fcntl.LOCK_EX)
        assert local_runner.main(["--data-dir", str(data), "--output-dir", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith("error: run in progress")


def test_a_bucket_as_the_output_folder_is_refused_in_one_line(tmp_path, capsys):
    """--output-dir gs://... became a local folder named gs: under the working folder."""
    from pipeline import local_runner

    assert local_runner.main(["--output-dir", "gs://bucket/runs"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: output_dir gs://bucket/runs: a local run keeps") and "\n" not in err
    assert not os.path.exists("gs:")


def test_a_lab_name_with_a_dot_can_be_given_on_the_command_line(tmp_path):
    from pipeline import local_runner

    args = local_runner.parse_args(["--lab-source", f"st.marys={tmp_path}", "--set", f"labs.sources.lab.2={tmp_path}"])
    config = load_config(overrides=local_runner.overrides_from(args))
    assert config.lab_sources() == {"st.marys": str(tmp_path), "lab.2": str(tmp_path)}


def test_an_edited_curated_schema_reaches_the_run_at_a_path_named_by_its_content(tmp_path, monkeypatch):
    # ImportSchemaGen's cache key holds the schema file's path, not its content.
    from pathlib import Path

    from pipeline import local_runner
    from pipeline import pipeline as pipeline_lib
    from testkit.images import make_dataset

    schema = tmp_path / "schema.pbtxt"
    schema.write_text("feature { name: 'a' }")
    monkeypatch.setattr(pipeline_lib, "SCHEMA_FILE", schema)
    first = pipeline_lib.schema_copy(str(tmp_path / "copies"))
    assert pipeline_lib.schema_copy(str(tmp_path / "copies")) == first  # unchanged: the cache holds
    schema.write_text("feature { name: 'b' }")
    second = pipeline_lib.schema_copy(str(tmp_path / "copies"))
    assert second != first and Path(first).read_text() == "feature { name: 'a' }"

    seen = {}

    def stop(config, metadata, data_root, schema_file):
        seen["schema_file"] = schema_file
        raise RuntimeError("stop before running")

    monkeypatch.setattr(pipeline_lib, "create_pipeline", stop)
    data = make_dataset(tmp_path / "data", {"TRAIN": 2, "TEST": 1})
    with pytest.raises(RuntimeError, match="stop before running"):
        local_runner.main(["--data-dir", str(data), "--output-dir", str(tmp_path / "out")])
    assert Path(seen["schema_file"]).read_text() == "feature { name: 'b' }"
    assert seen["schema_file"].startswith(str(tmp_path / "out"))


def test_a_lab_left_out_of_the_adaptation_is_named_in_the_summary():
    from pipeline.run_summary import RunSummary, format_summary

    training = {"mode": "trained", "epochs": 3,
                "labs_not_trained_on": {"onlyneu": "reviewed cells of NEUTROPHIL only: trained on once they hold 2 classes"}}
    text = format_summary(RunSummary(components=[], training=training), 1.0)
    assert "note: lab onlyneu not trained on: reviewed cells of NEUTROPHIL only: trained on once they hold 2 classes" in text


def test_a_file_that_cannot_be_read_in_the_data_folder_is_one_line(tmp_path, capsys):
    # A dangling link, or a file gone while the folder was being synced: the run's inputs cannot be read.
    from pipeline import local_runner
    from testkit.images import make_dataset

    data = make_dataset(tmp_path / "data", {"TRAIN": 2, "TEST": 1})
    (data / "TRAIN" / "MONOCYTE" / "gone.jpeg").symlink_to(tmp_path / "nowhere.jpeg")
    assert local_runner.main(["--data-dir", str(data), "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot read the run's inputs: ") and "gone.jpeg" in err and "\n" not in err


def test_the_summary_says_why_the_browser_channel_stayed():
    from ml_metadata.proto import metadata_store_pb2

    from pipeline.run_summary import channel_note

    def published(channel, **flags):
        artifact = metadata_store_pb2.Artifact()
        artifact.custom_properties["published_version"].string_value = "5"
        artifact.custom_properties["channel_version"].string_value = channel
        for name, value in flags.items():
            artifact.custom_properties[name].int_value = value
        return artifact

    assert channel_note(published("5")) is None
    assert "pinned by a rollback" in channel_note(published("3", channel_pinned=1))
    assert channel_note(published("3", channel_pinned=0, channel_rolled_back=1)) == (
        "the browser channel stays at version 3: a rollback rolled it back from this version; a newer model moves it")
    assert channel_note(published("6", channel_pinned=0, channel_rolled_back=0)) == (
        "the browser channel stays at version 6, newer than this one")


def test_an_export_outside_a_lab_folder_is_named_in_the_summary(tmp_path):
    """It was only in the ingest report: a lab's reviews could go unread, week after week, unnoticed."""
    from components.image_example_gen import lab_sources
    from pipeline.run_summary import RunSummary, format_summary

    labs = tmp_path / "labs"
    labs.mkdir()
    (labs / "bloodcell-review-lab2.zip").write_bytes(b"PK")
    report = tmp_path / "ingest_report.json"
    report.write_text(json.dumps({"labs": {}, "rejected_inputs": [
        {"rel_path": r.rel_path, "split": None, "reason": r.reason} for r in lab_sources.stray_files(str(labs))]}))
    text = format_summary(RunSummary(components=[], ingest_report=str(report)), 1.0)
    assert ("note: labs/bloodcell-review-lab2.zip not read: not in a lab folder (put it in labs/<lab name>/)"
            in text.splitlines())


def test_an_export_made_for_another_lab_is_named_in_the_summary(tmp_path):
    from pipeline.run_summary import RunSummary, format_summary

    report = tmp_path / "ingest_report.json"
    report.write_text(json.dumps({"labs": {"onelab": {
        "cells": 2, "train": 1, "eval": 1, "not_trained": 0, "relabelled": [], "refused": 0,
        "exports_of_other_labs": [{"file": "labs/onelab/theirs.zip", "lab": "otherlab"}]}}}))
    text = format_summary(RunSummary(components=[], ingest_report=str(report)), 1.0)
    assert ("note: labs/onelab/theirs.zip was exported for lab 'otherlab': its cells are taken as onelab's "
            "(move it to labs/otherlab/ if they are not)") in text.splitlines()


def test_a_split_export_with_a_zip_missing_is_named_in_the_summary(tmp_path):
    from pipeline.run_summary import RunSummary, format_summary

    report = tmp_path / "ingest_report.json"
    report.write_text(json.dumps({"labs": {"onelab": {
        "cells": 2, "train": 1, "eval": 1, "not_trained": 0, "relabelled": [], "refused": 0,
        "incomplete_exports": [{"lab": "onelab", "exported_at": "2026-12-02T09:00:00.000Z", "parts": 3,
                                "missing": [2, 3]}]}}}))
    text = format_summary(RunSummary(components=[], ingest_report=str(report)), 1.0)
    assert ("note: lab onelab: the export of 2026-12-02T09:00:00.000Z is 3 zips, and zips 2, 3 of it were not found "
            "in the lab's folder, or were refused (see the ingest report): their cells are not read until they are "
            "there, whole") in text.splitlines()


def test_a_lab_gated_on_few_cells_is_named_with_what_one_cell_weighs():
    # A lab with 6 held-out cells failed the no-regression gate on one cell, and the summary said only
    # "change vs last blessed model -0.1667 < -0.0100": the lab could not tell noise from a worse model.
    from pipeline.run_summary import RunSummary, format_summary

    summary = RunSummary(components=[], blessed=False, sources={
        "base": {"accuracy": 0.88, "cells": 2485}, "small": {"accuracy": 0.8333, "cells": 6},
        "large.lab": {"accuracy": 0.9, "cells": 40}, "other": {"accuracy": 0.5, "cells": 4}})
    summary.failed_sources = ["small", "large.lab"]
    lines = format_summary(summary, 1.0, min_eval_cells=20).splitlines()
    notes = [line for line in lines if line.startswith("note: lab")]
    assert notes == ["note: lab small was gated on 6 held-out cells (under labs.min_eval_cells, 20): one cell moves "
                     "its accuracy by 0.1667; review more of its cells"], lines
    summary.blessed, summary.failed_sources = True, []
    assert not [line for line in format_summary(summary, 1.0, min_eval_cells=20).splitlines() if line.startswith("note: lab")]


def test_the_runners_lab_check_lets_the_export_it_read_go(tmp_path):
    # Read before the run starts, it had stayed in memory (up to 64 MiB) through the whole run.
    from components.image_example_gen import lab_sources
    from pipeline import run_inputs
    from testkit import review_export
    from testkit.images import CLASSES, sample_jpegs

    review_export.write_export(tmp_path / "lab" / "1.zip",
                               [review_export.cell(sample_jpegs("TRAIN", "NEUTROPHIL")[0], "NEUTROPHIL")])
    assert run_inputs.labs_with_cells({"lab": str(tmp_path / "lab")}, ["lab"], CLASSES, 10**7, 0.0, []) == ["lab"]
    assert lab_sources._held_export.data is None
