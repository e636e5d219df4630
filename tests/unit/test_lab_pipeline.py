"""How the pipeline takes labs: the configuration, the per-source gate, the skip of an unchanged
scheduled run."""
from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
from pathlib import Path

import pytest
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
from PIL import Image

from models import features
from pipeline import local_runner, run_inputs
from pipeline.config import load_config
from pipeline.eval_config import eval_config
from testkit import review_export
from testkit.images import make_dataset, sample_jpegs


def test_a_bad_lab_source_is_one_line_and_exit_2(capsys, tmp_path):
    assert local_runner.main(["--output-dir", str(tmp_path), "--lab-source", "mylab"]) == 2
    assert local_runner.main(["--output-dir", str(tmp_path), "--lab-source", "base=/tmp"]) == 2
    assert local_runner.main(["--output-dir", str(tmp_path), "--lab-source", f"mylab={tmp_path / 'none'}"]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(lines) == 3 and all(line.startswith("error: ") for line in lines)
    assert "needs a folder" in lines[0] and "not 'base'" in lines[1]
    assert lines[2] == f"error: lab source 'mylab': folder not found: {tmp_path / 'none'}"
    # A malformed one beside a good one of the same name is still "needs a folder".
    assert local_runner.main(["--output-dir", str(tmp_path), "--lab-source", "mylab",
                              "--lab-source", f"mylab={tmp_path}"]) == 2
    assert "needs a folder" in capsys.readouterr().err
    # One name given two folders: the second had silently replaced the first.
    assert local_runner.main(["--output-dir", str(tmp_path), "--lab-source", f"mylab={tmp_path}",
                              "--lab-source", f"mylab={tmp_path / 'other'}"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: --lab-source mylab is given two folders ({tmp_path}, {tmp_path / 'other'}): name each lab once")


def test_the_gate_demands_min_accuracy_of_the_base_and_no_regression_of_every_source():
    config = load_config(overrides=["evaluation.min_accuracy=0.85", "evaluation.max_accuracy_drop=0.02"])
    accuracy = next(m for spec in eval_config(config).metrics_specs for m in spec.metrics
                    if m.class_name == "SparseCategoricalAccuracy")
    gates = {(tuple(s.feature_keys), tuple(s.feature_values.items())): t.threshold
             for t in accuracy.per_slice_thresholds for s in t.slicing_specs}
    base = gates[((), ((features.SOURCE_KEY, features.BASE_SOURCE),))]
    assert base.value_threshold.lower_bound.value == 0.85 and not base.HasField("change_threshold")
    every = gates[((features.SOURCE_KEY,), ())]
    assert every.change_threshold.absolute.value == -0.02 and not every.HasField("value_threshold")
    assert len(gates) == 2  # nothing gates the mixed overall slice


def test_a_new_export_changes_what_a_scheduled_run_reads(tmp_path):
    data = make_dataset(tmp_path / "data", {"TRAIN": 2, "TEST": 1})
    config = load_config(overrides=[f"labs.dir={tmp_path / 'labs'}"])
    before = run_inputs.inputs_key(config, str(data))
    assert run_inputs.inputs_key(config, str(data)) == before
    review_export.write_export(tmp_path / "labs" / "mylab" / "1.zip",
                               [review_export.cell(sample_jpegs()[0], "EOSINOPHIL")])
    assert run_inputs.inputs_key(config, str(data)) != before


def test_a_new_package_lock_changes_what_a_scheduled_run_reads(tmp_path, monkeypatch):
    """A pull that bumped only a lock (a converter fix, say) rebuilt the environment, and the run was
    skipped as "nothing changed"."""
    assert sorted(p.name for p in run_inputs.LOCKS.glob("*.lock")) == ["converter.lock", "pipeline.lock"]
    data = make_dataset(tmp_path / "data", {"TRAIN": 2, "TEST": 1})
    (tmp_path / "locks").mkdir()
    (tmp_path / "locks" / "converter.lock").write_text("tensorflowjs==4.22.0\n")
    monkeypatch.setattr(run_inputs, "LOCKS", tmp_path / "locks")
    config = load_config()
    before = run_inputs.inputs_key(config, str(data))
    (tmp_path / "locks" / "converter.lock").write_text("tensorflowjs==4.22.1\n")
    assert run_inputs.inputs_key(config, str(data)) != before


def test_if_changed_skips_a_run_whose_inputs_the_last_finished_run_read(tmp_path, capsys):
    data = make_dataset(tmp_path / "data", {"TRAIN": 2, "TEST": 1})
    args = ["--data-dir", str(data), "--output-dir", str(tmp_path / "runs"), "--if-changed",
            "--set", f"labs.dir={tmp_path / 'labs'}"]
    config = load_config(overrides=local_runner.overrides_from(local_runner.parse_args(args)))
    run_dir = tmp_path / "runs" / config.pipeline_name
    run_dir.mkdir(parents=True)
    run_inputs.record_finished(str(run_dir), run_inputs.inputs_key(config, str(data)), "2026-12-06T00:00:00Z", True)
    # The metadata store moved aside (what an unreadable one's error says to do) is a fresh start: the
    # record of the last run had skipped it for good, and so it did again once a failed first run of
    # the fresh start had made a store.
    from tfx import v1 as tfx

    ran = []

    class Failing:
        def run(self, pipeline):
            ran.append(pipeline)
            from ml_metadata.metadata_store import metadata_store
            from ml_metadata.proto import metadata_store_pb2

            store = metadata_store_pb2.ConnectionConfig()
            store.sqlite.filename_uri = str(run_dir / "metadata.sqlite")
            metadata_store.MetadataStore(store)  # made, as a run's first step makes it
            raise RuntimeError("Trainer failed")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tfx.orchestration, "LocalDagRunner", Failing)
        assert local_runner.main(args) == 1
        assert local_runner.main(args) == 1
    assert len(ran) == 2 and "skipped" not in capsys.readouterr().out
    run_inputs.record_finished(str(run_dir), run_inputs.inputs_key(config, str(data)), "2026-12-06T00:00:00Z", True)
    assert local_runner.main(args) == 0
    assert "nothing changed since the run that finished 2026-12-06T00:00:00Z: skipped" in capsys.readouterr().out
    # After a run whose model was not blessed, a skip is a failure too (exit 1), until the inputs change:
    # exit 0 had shown a timer's unit green every week after one failed run.
    run_inputs.record_finished(str(run_dir), run_inputs.inputs_key(config, str(data)), "2026-12-07T00:00:00Z", False)
    assert local_runner.main(args) == 1
    assert capsys.readouterr().err.strip() == (
        "error: nothing changed since the run that finished 2026-12-07T00:00:00Z, whose model was not blessed "
        "(the last blessed model stays in service; it would not be blessed again): skipped")
    # A run whose blessing the summary did not find (it exited 1) is no blessed run either.
    run_inputs.record_finished(str(run_dir), run_inputs.inputs_key(config, str(data)), "2026-12-08T00:00:00Z", None)
    assert local_runner.main(args) == 1
    assert "whose model was not blessed" in capsys.readouterr().err


@pytest.mark.parametrize("where", ["data", "labs"])
def test_a_file_name_that_is_not_utf8_is_one_line_and_exit_2(capsys, tmp_path, where):
    # TensorFlow's file listing cannot return such a name; the run must say so, not end in a traceback.
    data = make_dataset(tmp_path / "data", {"TRAIN": 2, "TEST": 1})
    folder = data / "TRAIN" / "NEUTROPHIL" if where == "data" else tmp_path / "labs" / "mylab" / "NEUTROPHIL"
    folder.mkdir(parents=True, exist_ok=True)
    with open(os.fsencode(folder) + b"/cell\xff.jpeg", "wb") as f:
        f.write(sample_jpegs("TRAIN", "NEUTROPHIL")[0].read_bytes())
    code = local_runner.main(["--data-dir", str(data), "--output-dir", str(tmp_path / "out"),
                              "--set", f"labs.dir={tmp_path / 'labs'}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err, err
    assert err.startswith("error: a file name under ") and "is not UTF-8" in err


@pytest.mark.parametrize("case", ["bad name", "two folders", "output not writable", "output under a file",
                                  "data folder unreadable", "run lock unopenable"])
def test_a_bad_lab_folder_or_output_folder_is_one_line_and_exit_2_before_the_run(capsys, tmp_path, case, monkeypatch):
    # Found before the pipeline starts, as a bad data folder is: not a failed ExampleGen with exit 1.
    data = make_dataset(tmp_path / "data", {"TRAIN": 2, "TEST": 1})
    labs, out = tmp_path / "labs", tmp_path / "out"
    args = ["--data-dir", str(data), "--set", f"labs.dir={labs}"]
    (labs / "mylab").mkdir(parents=True)
    if case == "bad name":
        (labs / "my lab").mkdir()
    elif case == "two folders":
        (tmp_path / "elsewhere").mkdir()
        args += ["--lab-source", f"mylab={tmp_path / 'elsewhere'}"]
    elif case == "output not writable":
        if os.geteuid() == 0:
            pytest.skip("root writes to any folder")
        out.mkdir()
        out.chmod(0o500)
    elif case == "data folder unreadable":  # a sub-folder the run's user may not list: had been a traceback
        import tensorflow as tf

        from components.image_example_gen import image_reader

        def denied(*_args, **_kwargs):
            raise tf.errors.PermissionDeniedError(None, None, f"{data}/TRAIN/private; Permission denied")

        monkeypatch.setattr(image_reader, "list_source", denied)
    elif case == "run lock unopenable":  # e.g. left by a run as another user: had been a traceback
        (out / "bloodcell" / ".run.lock").mkdir(parents=True)
    else:
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "out"
    code = local_runner.main([*args, "--output-dir", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and err.startswith("error: "), err
    expected = {"bad name": "lab source name 'my lab' must be", "two folders": "lab 'mylab' is both a folder",
                "output not writable": "cannot create the output folder", "output under a file": "cannot create",
                "data folder unreadable": "cannot read the data folder", "run lock unopenable": "cannot open the run lock"}[case]
    assert expected in err, err


def test_an_edited_data_file_of_the_code_changes_what_a_scheduled_run_reads(tmp_path, monkeypatch):
    # The curated schema (pipeline/schema/schema.pbtxt) and the warm-up images are read by the run:
    # editing one must not give "nothing changed ... skipped". Bytecode the run writes changes nothing.
    import importlib.util

    from pipeline import code_version

    package = tmp_path / "pkg"
    (package / "schema").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "schema" / "schema.pbtxt").write_text("feature { name: 'a' }")
    spec = importlib.util.spec_from_file_location("pkg", package / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setattr(code_version, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(run_inputs, "serving", module)
    data = make_dataset(tmp_path / "data", {"TRAIN": 2, "TEST": 1})
    config = load_config(overrides=[f"labs.dir={tmp_path / 'labs'}"])
    monkeypatch.setattr(run_inputs, "code_fingerprint", lambda *m, **kw: code_version.code_fingerprint(
        *[x for x in m if x is module], **kw))  # only the test's package: the repo's lie outside tmp_path
    before = run_inputs.inputs_key(config, str(data))
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "x.cpython-313.pyc").write_bytes(b"\0")
    assert run_inputs.inputs_key(config, str(data)) == before
    (package / "schema" / "schema.pbtxt").write_text("feature { name: 'b' }")
    assert run_inputs.inputs_key(config, str(data)) != before


def bless(metadata_path: str, labs: list[str], report_dir, model_id: int | None = None,
          eval_fraction: float | None = None) -> None:
    """What a run's Evaluator leaves in the metadata store when it blesses a model: a ModelBlessing
    (blessed=1, current_model_id: the model's artifact id) whose execution read the ingest's Examples,
    whose report names the labs with cells (and the split of their cells, as newer ingests record it)."""
    report = report_dir / f"ingest_report_{len(list(report_dir.glob('ingest_report_*')))}.json"
    report.write_text(json.dumps({"labs": {name: {"cells": 3, "train": 2} for name in labs},
                                  **({"lab_eval_fraction": eval_fraction} if eval_fraction is not None else {})}))
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    store = metadata_store.MetadataStore(config)
    examples_type = store.put_artifact_type(metadata_store_pb2.ArtifactType(name="Examples"))
    blessing_type = store.put_artifact_type(metadata_store_pb2.ArtifactType(name="ModelBlessing"))
    evaluator = store.put_execution_type(metadata_store_pb2.ExecutionType(name="tfx.components.Evaluator"))
    examples = metadata_store_pb2.Artifact(type_id=examples_type, uri=str(report_dir),
                                           state=metadata_store_pb2.Artifact.LIVE)
    examples.custom_properties["ingest_report"].string_value = str(report)
    blessing = metadata_store_pb2.Artifact(type_id=blessing_type, uri=str(report_dir / "blessing"),
                                           state=metadata_store_pb2.Artifact.LIVE)
    blessing.custom_properties["blessed"].int_value = 1
    blessing.custom_properties["current_model_id"].int_value = model_id or 1000 + len(list(report_dir.glob("ingest_report_*")))
    execution = metadata_store_pb2.Execution(type_id=evaluator, last_known_state=metadata_store_pb2.Execution.COMPLETE)

    def event(kind, key):
        return metadata_store_pb2.Event(type=kind, path=metadata_store_pb2.Event.Path(
            steps=[metadata_store_pb2.Event.Path.Step(key=key), metadata_store_pb2.Event.Path.Step(index=0)]))

    store.put_execution(execution, [(examples, event(metadata_store_pb2.Event.INPUT, "examples")),
                                    (blessing, event(metadata_store_pb2.Event.OUTPUT, "blessing"))], [])


def test_a_metadata_store_cut_short_or_damaged_before_a_run(tmp_path, capsys):
    """The labs guard reads the metadata store before the run: an empty store (a first run killed as it
    was created) holds no blessed model; one that cannot be read is one line, exit 2."""
    data = make_dataset(tmp_path / "data", {"TRAIN": 2, "TEST": 1})
    args = ["--data-dir", str(data), "--output-dir", str(tmp_path / "runs"), "--if-changed",
            "--set", f"labs.dir={tmp_path / 'labs'}"]
    config = load_config(overrides=local_runner.overrides_from(local_runner.parse_args(args)))
    os.makedirs(config.run_dir)
    run_inputs.record_finished(config.run_dir, run_inputs.inputs_key(config, str(data)), "2026-12-06T00:00:00Z", True)
    open(config.metadata_path, "w").close()
    assert local_runner.main(args) == 0
    assert "skipped" in capsys.readouterr().out
    with open(config.metadata_path, "wb") as f:
        f.write(b"not a database" * 100)
    assert local_runner.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: cannot read the metadata store {config.metadata_path}: ") and "\n" not in err


def test_the_labs_are_those_of_the_newest_blessed_model_as_the_evaluators_baseline_is_chosen(tmp_path):
    """TFX's LatestBlessedModelStrategy takes the blessed model with the highest id: an older model
    blessed later (its Trainer cached, its Evaluator run again) is not the baseline."""
    from pipeline.run_summary import last_blessed_labs

    store = str(tmp_path / "metadata.sqlite")
    bless(store, ["mylab"], tmp_path, model_id=20)
    bless(store, [], tmp_path, model_id=10)
    assert last_blessed_labs(store) == ["mylab"]


def test_a_lab_the_last_blessed_model_was_adapted_to_must_be_found_or_retired(tmp_path, capsys):
    """A lab folder gone or unmounted had silently meant a model trained from the start, gated on the
    base alone, and published over the lab's adapted one. Which labs the last blessed model read comes
    from the metadata store, as the Evaluator's baseline does: a run killed after its Evaluator blessed
    a model, before it wrote its own record, had left the guard blind."""
    data = make_dataset(tmp_path / "data", {"TRAIN": 2, "TEST": 1})
    args = ["--data-dir", str(data), "--output-dir", str(tmp_path / "runs"), "--if-changed",
            "--set", f"labs.dir={tmp_path / 'labs'}"]
    retired = [*args, "--set", 'labs.retired=["2024","on"]']  # names YAML would read as a number and a boolean

    def key(argv):  # what --if-changed compares: the same inputs are skipped, so no pipeline runs here
        return run_inputs.inputs_key(load_config(overrides=local_runner.overrides_from(local_runner.parse_args(argv))),
                                     str(data))

    run_dir = tmp_path / "runs" / "bloodcell"
    run_dir.mkdir(parents=True)
    run_inputs.record_finished(str(run_dir), key(retired), "2026-12-06T00:00:00Z", True)  # an earlier run's
    bless(str(run_dir / "metadata.sqlite"), ["2024", "on"], tmp_path)  # then a run killed after blessing
    assert local_runner.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: the last blessed model was trained or gated on lab(s) 2024, on, which this run "
                          "does not find") and "\n" not in err
    # The command it suggests works as pasted into a shell (unquoted, YAML had read 2024 and on otherwise).
    suggested = shlex.split(err.split("with ", 1)[1].split(" (in the config")[0])
    assert suggested == ["--set", 'labs.retired=["2024","on"]']
    assert local_runner.main([*args, *suggested]) == 0
    assert "skipped" in capsys.readouterr().out
    bless(str(run_dir / "metadata.sqlite"), ["mylab", "other"], tmp_path)  # a later model, of two other labs
    # An empty lab folder is not a lab found: an unmounted share leaves its mount point behind.
    (tmp_path / "labs" / "mylab").mkdir(parents=True)
    assert local_runner.main([*args, "--set", "labs.retired=[other]"]) == 2
    assert "trained or gated on lab(s) mylab, which this run does not find" in capsys.readouterr().err
    # Nor is one that holds no cell the ingest would take (a zip that is not an export, images that
    # do not decode).
    (tmp_path / "labs" / "mylab" / "notanexport.zip").write_bytes(b"not a zip")
    (tmp_path / "labs" / "mylab" / "NEUTROPHIL").mkdir()
    (tmp_path / "labs" / "mylab" / "NEUTROPHIL" / "cut.jpeg").write_bytes(b"\xff\xd8\xff\xe0 cut short")
    assert local_runner.main([*args, "--set", "labs.retired=[other]"]) == 2
    assert "trained or gated on lab(s) mylab, which this run does not find" in capsys.readouterr().err
    # Nor is one whose cells are all held out: they never train, and the Trainer counts training cells.
    from components.image_example_gen.stable_hash import hash_fraction
    from testkit.images import encoded

    held_out = next(data for data in (encoded(Image.new("RGB", (40, 30), (i, 60, 120)), "JPEG") for i in range(256))
                    if hash_fraction(hashlib.sha256(data).hexdigest()) < 0.3)
    (tmp_path / "labs" / "mylab" / "NEUTROPHIL" / "held_out.jpeg").write_bytes(held_out)
    assert local_runner.main([*args, "--set", "labs.retired=[other]"]) == 2
    assert "trained or gated on lab(s) mylab, which this run does not find" in capsys.readouterr().err
    # Nor is one whose training cells are all images of the base dataset (the bundled sample reviewed to
    # try the page): the ingest refuses them, and the run had failed only in the Trainer.
    base_image = next(p for p in sorted(data.rglob("*.jp*g"))
                      if p.parent.parent.name == "TRAIN" and hash_fraction(hashlib.sha256(p.read_bytes()).hexdigest()) >= 0.3)
    shutil.copy(base_image, tmp_path / "labs" / "mylab" / "NEUTROPHIL" / "sample.jpeg")
    assert local_runner.main([*args, "--set", "labs.retired=[other]"]) == 2
    assert "trained or gated on lab(s) mylab, which this run does not find" in capsys.readouterr().err
    # A damaged record of the last run changes nothing: the store says which labs.
    (run_dir / run_inputs.LAST_RUN_FILE).write_text("{")
    assert local_runner.main([*args, "--set", "labs.retired=[other]"]) == 2
    assert "trained or gated on lab(s) mylab, which this run does not find" in capsys.readouterr().err
    # A later blessed model without labs forgets them.
    bless(str(run_dir / "metadata.sqlite"), [], tmp_path)
    run_inputs.record_finished(str(run_dir), key(args), "2026-12-07T00:00:00Z", True)
    assert local_runner.main(args) == 0
    assert "skipped" in capsys.readouterr().out


def test_a_bucket_prefix_given_on_the_command_line_stays_a_bucket_prefix():
    """--lab-source mylab=gs://... had become <cwd>/gs:/...: 'folder not found'; config.yaml's kept it."""
    args = local_runner.parse_args(["--lab-source", "mylab=gs://bucket/labs/mylab", "--data-dir", "gs://bucket/data",
                                    "--lab-source", "near=labs/near"])
    overrides = local_runner.overrides_from(args)
    assert "labs.sources.mylab=gs://bucket/labs/mylab" in overrides and "data_dir=gs://bucket/data" in overrides
    assert f"labs.sources.near={os.path.abspath('labs/near')}" in overrides


def test_a_lab_split_other_than_the_last_blessed_models_is_refused(tmp_path, capsys):
    """labs.eval_fraction decides which side of the split a lab's cell is on: changed between runs, cells
    the warm-started models had trained on became held-out cells, and the lab's gate scored them."""
    from components.image_example_gen.stable_hash import hash_fraction
    from testkit.images import encoded

    data = make_dataset(tmp_path / "data", {"TRAIN": 2, "TEST": 1})
    args = ["--data-dir", str(data), "--output-dir", str(tmp_path / "runs"), "--if-changed",
            "--set", f"labs.dir={tmp_path / 'labs'}"]
    trained = next(d for d in (encoded(Image.new("RGB", (40, 30), (i, 90, 30)), "JPEG") for i in range(256))
                   if hash_fraction(hashlib.sha256(d).hexdigest()) >= 0.5)
    (tmp_path / "labs" / "mylab" / "NEUTROPHIL").mkdir(parents=True)
    (tmp_path / "labs" / "mylab" / "NEUTROPHIL" / "a.jpeg").write_bytes(trained)
    run_dir = tmp_path / "runs" / "bloodcell"
    run_dir.mkdir(parents=True)
    config = load_config(overrides=local_runner.overrides_from(local_runner.parse_args(args)))
    run_inputs.record_finished(str(run_dir), run_inputs.inputs_key(config, str(data)), "2026-12-06T00:00:00Z", True)
    bless(str(run_dir / "metadata.sqlite"), ["mylab"], tmp_path, eval_fraction=0.3)
    assert local_runner.main([*args, "--set", "labs.eval_fraction=0.2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: labs.eval_fraction is 0.2, but the last blessed model's lab cells were split "
                          "with 0.3") and "\n" not in err
    assert local_runner.main(args) == 0 and "skipped" in capsys.readouterr().out  # the same split: no objection
    # Retired but still in its folder, the lab is still read: still refused.
    retired = [*args, "--set", "labs.eval_fraction=0.2", "--set", "labs.retired=[mylab]"]
    assert local_runner.main(retired) == 2 and "labs.eval_fraction is 0.2" in capsys.readouterr().err
    # Retired and gone, it binds nothing.
    (tmp_path / "labs" / "mylab" / "NEUTROPHIL" / "a.jpeg").unlink()
    (tmp_path / "labs" / "mylab" / "NEUTROPHIL").rmdir()
    (tmp_path / "labs" / "mylab").rmdir()
    config = load_config(overrides=local_runner.overrides_from(local_runner.parse_args(retired)))
    run_inputs.record_finished(str(run_dir), run_inputs.inputs_key(config, str(data)), "2026-12-06T01:00:00Z", True)
    assert local_runner.main(retired) == 0 and "skipped" in capsys.readouterr().out


def test_the_tests_read_no_lab_of_this_checkout():
    """`make test` on a lab's machine had run the pipeline over the lab's exports in labs/ (patient
    images): the sample's model was adapted to them, and a later `make run` without them refused."""
    from pipeline.config import REPO_ROOT, load_config

    assert not Path(load_config().labs_path).is_relative_to(REPO_ROOT)
    # As the runners read it: a --config default bound when they were imported had read the real file.
    args = local_runner.parse_args(["--data-dir", "x"])
    assert not Path(load_config(args.config, local_runner.overrides_from(args)).labs_path).is_relative_to(REPO_ROOT)
