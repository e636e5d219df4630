"""A run's own records are told from older runs' by their ids in the metadata store, not by the clock:
NTP stepping a clock that ran fast or slow must not change what the run summary reports or which image
copies the pruning keeps."""
from __future__ import annotations

import time

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline import local_runner

HOUR = 3600.0


def _store(path) -> metadata_store.MetadataStore:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(path)
    return metadata_store.MetadataStore(config)


def _artifact(store, kind: str, uri: str, **custom) -> metadata_store_pb2.Artifact:
    type_id = store.put_artifact_type(metadata_store_pb2.ArtifactType(name=kind))
    artifact = metadata_store_pb2.Artifact(type_id=type_id, uri=uri, state=metadata_store_pb2.Artifact.LIVE)
    for key, value in custom.items():
        artifact.custom_properties[key].int_value = value
    [artifact.id] = store.put_artifacts([artifact])
    return artifact


def _execution(store, kind: str, inputs=(), outputs=()) -> None:
    type_id = store.put_execution_type(metadata_store_pb2.ExecutionType(name=kind))
    events = [(a, metadata_store_pb2.Event(type=metadata_store_pb2.Event.INPUT)) for a in inputs]
    events += [(a, metadata_store_pb2.Event(type=metadata_store_pb2.Event.OUTPUT)) for a in outputs]
    node_type = store.put_context_type(metadata_store_pb2.ContextType(name="node"))
    node = next((c for c in store.get_contexts_by_type("node") if c.name == f"bloodcell.{kind}"),
                metadata_store_pb2.Context(type_id=node_type, name=f"bloodcell.{kind}"))
    store.put_execution(metadata_store_pb2.Execution(type_id=type_id, last_known_state=metadata_store_pb2.Execution.COMPLETE),
                        events, [node])


def _examples(store, root, count: int) -> list[metadata_store_pb2.Artifact]:
    copies = []
    for n in range(count):
        split = root / "pipeline_root" / "FileBasedExampleGen" / "examples" / str(n + 1) / "Split-train"
        split.mkdir(parents=True)
        (split / "data.gz").write_bytes(b"x" * 100)
        copies.append(_artifact(store, "Examples", str(split.parent)))
    return copies


def _run_with_clock_shift(tmp_path, monkeypatch, shift_s: list[float], this_run):
    """main with the Python clock shift_s[0] off the one the store's times were written with (the
    run may change it); the pipeline run is `this_run(store)`."""
    from tfx import v1 as tfx

    class Runner:
        def run(self, pipeline):
            this_run(_store(pipeline.metadata_connection_config.sqlite.filename_uri))

    real = time.time
    monkeypatch.setattr(tfx.orchestration, "LocalDagRunner", Runner)
    monkeypatch.setattr(time, "time", lambda: real() + shift_s[0])
    return local_runner.main(["--output-dir", str(tmp_path / "runs")])


def _blessing_run(store) -> None:
    _execution(store, "Evaluator", outputs=[_artifact(store, "ModelBlessing", "/blessing", blessed=1)])


def test_a_clock_set_back_since_the_last_run_does_not_report_that_run_as_this_one(tmp_path, monkeypatch, capfd):
    """Told apart by time, the last run's steps (recorded while the clock ran an hour fast) read as this
    run's: its push was reported as this run's."""
    run_dir = tmp_path / "runs" / "bloodcell"
    run_dir.mkdir(parents=True)
    store = _store(run_dir / "metadata.sqlite")
    _execution(store, "Pusher", outputs=[_artifact(store, "PushedModel", "/last/run", pushed=1)])
    assert _run_with_clock_shift(tmp_path, monkeypatch, [-HOUR], _blessing_run) == 0
    out = capfd.readouterr().out
    assert "pushed model: none" in out and "Pusher" not in out and "Evaluator" in out


def test_a_clock_set_back_during_the_run_keeps_its_summary_and_the_copies_it_used(tmp_path, monkeypatch, capfd):
    """Told apart by time, a run whose clock NTP set back an hour while it ran found none of its own
    steps: no blessing reported, and the older image copy its cached steps used was deleted."""
    run_dir = tmp_path / "runs" / "bloodcell"
    run_dir.mkdir(parents=True)
    store = _store(run_dir / "metadata.sqlite")
    oldest, *_ = _examples(store, run_dir, 3)

    shift = [HOUR]

    def cached_run(store):
        _execution(store, "Trainer", inputs=[oldest])
        _blessing_run(store)
        shift[0] = 0.0

    assert _run_with_clock_shift(tmp_path, monkeypatch, shift, cached_run) == 0
    out = capfd.readouterr().out
    assert "blessed: True" in out
    [wall] = [line.split()[-2] for line in out.splitlines() if "total wall time" in line]
    assert 0 <= float(wall) < HOUR / 2
    [kept] = _store(run_dir / "metadata.sqlite").get_artifacts_by_id([oldest.id])
    assert kept.state == metadata_store_pb2.Artifact.LIVE
    assert (run_dir / "pipeline_root" / "FileBasedExampleGen" / "examples" / "1" / "Split-train").is_dir()


def test_a_store_moved_aside_while_the_labs_are_listed_does_not_hide_the_run(tmp_path, monkeypatch, capfd):
    """The last id was read before the labs were listed (minutes on large labs): a store moved aside
    meanwhile (to start afresh) gave the run ids at or under it, and its blessing went unreported (exit 1)."""
    from pipeline import run_inputs

    run_dir = tmp_path / "runs" / "bloodcell"
    run_dir.mkdir(parents=True)
    store = _store(run_dir / "metadata.sqlite")
    for _ in range(3):
        _execution(store, "Trainer")
    listed = run_inputs.labs_with_cells

    def moved_aside_meanwhile(*args, **kwargs):
        (run_dir / "metadata.sqlite").rename(run_dir / "metadata.sqlite.old")
        return listed(*args, **kwargs)

    monkeypatch.setattr(run_inputs, "labs_with_cells", moved_aside_meanwhile)
    assert _run_with_clock_shift(tmp_path, monkeypatch, [0.0], _blessing_run) == 0
    assert "blessed: True" in capfd.readouterr().out
