"""Older runs' copies of the images are deleted after a run (pipeline/retention.py)."""
from __future__ import annotations

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline import retention


def _store(path):
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(path)
    return metadata_store.MetadataStore(config)


def _examples(store, root, component: str, count: int) -> list[int]:
    """`count` Examples artifacts of one output, oldest first, each with two splits and an ingest report."""
    type_id = store.put_artifact_type(metadata_store_pb2.ArtifactType(name="Examples"))
    ids = []
    for n in range(count):
        uri = root / component / "examples" / str(10 + n)
        for split in ("Split-train", "Split-eval"):
            (uri / split).mkdir(parents=True)
            (uri / split / "data.gz").write_bytes(b"x" * 1000)
        (uri / "ingest_report.json").write_text("{}")
        ids += store.put_artifacts([metadata_store_pb2.Artifact(type_id=type_id, uri=str(uri),
                                                                state=metadata_store_pb2.Artifact.LIVE)])
    return ids


def test_older_copies_lose_their_splits_and_are_marked_deleted(tmp_path):
    store = _store(tmp_path / "metadata.sqlite")
    gen = _examples(store, tmp_path, "FileBasedExampleGen", 3)
    transform = _examples(store, tmp_path, "Transform", 2)
    pruned = retention.prune_examples(str(tmp_path / "metadata.sqlite"), keep=2)
    assert (pruned.artifacts, pruned.bytes_freed) == (1, 2000)  # ExampleGen's oldest only
    states = {a.id: a.state for a in _store(tmp_path / "metadata.sqlite").get_artifacts_by_type("Examples")}
    assert states[gen[0]] == metadata_store_pb2.Artifact.DELETED
    assert all(states[i] == metadata_store_pb2.Artifact.LIVE for i in gen[1:] + transform)
    oldest = tmp_path / "FileBasedExampleGen" / "examples" / "10"
    assert not list(oldest.glob("Split-*")) and (oldest / "ingest_report.json").is_file()  # the gate's checks read it
    assert retention.prune_examples(str(tmp_path / "metadata.sqlite"), keep=2).artifacts == 0  # nothing left to do


def test_keep_0_keeps_everything_and_a_first_run_has_nothing_to_prune(tmp_path):
    store = _store(tmp_path / "metadata.sqlite")
    _examples(store, tmp_path, "FileBasedExampleGen", 3)
    assert retention.prune_examples(str(tmp_path / "metadata.sqlite"), keep=0).artifacts == 0
    assert len(list(tmp_path.glob("FileBasedExampleGen/examples/*/Split-*"))) == 6
    assert retention.prune_examples(str(tmp_path / "nothing.sqlite"), keep=2).artifacts == 0
    assert not (tmp_path / "nothing.sqlite").exists()


def test_a_copy_a_failed_run_left_is_pruned_too(tmp_path):
    """A run stopped mid-write leaves an artifact that is not LIVE, with files: never used, never kept."""
    store = _store(tmp_path / "metadata.sqlite")
    ids = _examples(store, tmp_path, "FileBasedExampleGen", 2)
    [left] = store.get_artifacts_by_id([ids[1]])
    left.state = metadata_store_pb2.Artifact.ABANDONED
    store.put_artifacts([left])
    assert retention.prune_examples(str(tmp_path / "metadata.sqlite"), keep=1).artifacts == 1
    assert list(tmp_path.glob("FileBasedExampleGen/examples/10/Split-*"))  # the one LIVE copy stays


def test_a_failure_to_prune_is_one_warning_line_not_the_runs_failure(monkeypatch):
    from pipeline import local_runner
    from pipeline.config import load_config

    def held(*args):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(retention, "prune_examples", held)
    line = local_runner._prune_line(load_config(), 0.0)
    assert line == "warning: older runs' image copies were not deleted: PermissionError: [Errno 13] Permission denied"


def test_the_copies_the_finished_run_used_are_kept_however_old(tmp_path):
    """A run taken wholly from the cache (the exports that came after it removed again) uses old copies:
    pruned as old, the next run would ingest and train again with nothing changed."""
    store = _store(tmp_path / "metadata.sqlite")
    oldest, middle, _ = _examples(store, tmp_path, "FileBasedExampleGen", 3)
    type_id = store.put_execution_type(metadata_store_pb2.ExecutionType(name="Trainer"))

    def step_reading(artifact_id):
        read = metadata_store_pb2.Event(artifact_id=artifact_id, type=metadata_store_pb2.Event.INPUT)
        execution = metadata_store_pb2.Execution(type_id=type_id, last_known_state=metadata_store_pb2.Execution.CACHED)
        return store.put_execution(execution, [(store.get_artifacts_by_id([artifact_id])[0], read)], [])[0]

    before = step_reading(middle)  # an older run's step: it keeps nothing
    step_reading(oldest)           # this run's
    pruned = retention.prune_examples(str(tmp_path / "metadata.sqlite"), keep=1, after_execution_id=before)
    assert pruned.artifacts == 1
    states = {a.id: a.state for a in _store(tmp_path / "metadata.sqlite").get_artifacts_by_type("Examples")}
    assert states[oldest] == metadata_store_pb2.Artifact.LIVE and states[middle] == metadata_store_pb2.Artifact.DELETED


def test_a_copy_a_run_stopped_mid_step_left_is_pruned_too(tmp_path):
    """TFX records a step's outputs only when it succeeds and removes them only on an ordinary error: a
    run stopped mid-Transform (Ctrl-C, systemctl stop, a power cut) left up to 738 MiB that nothing
    recorded, so nothing deleted."""
    store = _store(tmp_path / "metadata.sqlite")
    _examples(store, tmp_path, "Transform", 2)
    stopped = tmp_path / "Transform" / "examples" / "99"
    (stopped / "Split-train").mkdir(parents=True)
    (stopped / "Split-train" / "data.gz").write_bytes(b"x" * 500)
    pruned = retention.prune_examples(str(tmp_path / "metadata.sqlite"), keep=2)
    assert (pruned.orphans, pruned.bytes_freed) == (1, 500)
    assert not list(stopped.glob("Split-*"))
    assert len(list(tmp_path.glob("Transform/examples/1[01]/Split-*"))) == 4  # the recorded copies stay
    assert retention.prune_examples(str(tmp_path / "metadata.sqlite"), keep=0).orphans == 0  # keep all: kept


def test_a_copy_recorded_under_another_spelling_of_its_folder_is_no_orphan(tmp_path):
    # --output-dir is kept as given, the config's path resolved: one store may hold both spellings.
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    store = _store(tmp_path / "metadata.sqlite")
    _examples(store, tmp_path / "real", "Transform", 1)
    by_link = tmp_path / "link" / "Transform" / "examples" / "11"
    (by_link / "Split-train").mkdir(parents=True)
    [type_id] = {a.type_id for a in store.get_artifacts_by_type("Examples")}
    store.put_artifacts([metadata_store_pb2.Artifact(type_id=type_id, uri=str(by_link),
                                                     state=metadata_store_pb2.Artifact.LIVE)])
    assert retention.prune_examples(str(tmp_path / "metadata.sqlite"), keep=2).orphans == 0
    assert (tmp_path / "real" / "Transform" / "examples" / "11" / "Split-train").is_dir()
