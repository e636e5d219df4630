"""Frees the disk that older runs' copies of the images hold. Each run that reads the data again (any new
lab export) writes the ingested images (ExampleGen) and the transformed ones (Transform) anew:
831 MiB a run on the full dataset (93 + 738, `du -sh` of a full-data run), kept for good by LocalDagRunner.

Only Examples artifacts are pruned, as TFX's own garbage collection does it (artifacts marked in ML
Metadata, then their files removed): their split folders are deleted and their state set to DELETED, so
that TFX's cache never hands them to a later run (it takes only LIVE outputs, and runs the step again).
The ingest report beside the splits stays: the local runner's checks read the blessed model's."""
from __future__ import annotations

import dataclasses
import os
import shutil
from collections import defaultdict

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

SPLIT_PREFIX = "Split-"


@dataclasses.dataclass
class Pruned:
    artifacts: int = 0
    orphans: int = 0      # copies no artifact records: a run stopped mid-step left them
    bytes_freed: int = 0


def _size(folder: str) -> int:
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(folder) for name in names)


def _splits(uri: str) -> list[str]:
    try:
        return [os.path.join(uri, n) for n in sorted(os.listdir(uri)) if n.startswith(SPLIT_PREFIX)]
    except OSError:  # gone already, or never written
        return []


def _used_after(store, after_execution_id: int) -> set[int]:
    """The artifacts that the executions after that one read or wrote (a step taken from the cache is
    recorded too, with the outputs it reused)."""
    executions = [e.id for e in store.get_executions() if e.id > after_execution_id]
    return {event.artifact_id for event in store.get_events_by_execution_ids(executions)} if executions else set()


def _prune_orphans(output: str, recorded: set[str], pruned: Pruned) -> None:
    """Deletes the splits of each copy in an output's folder that no artifact records: TFX records a
    step's outputs only when it succeeds, and removes them only on an ordinary error, so a run stopped
    mid-step (Ctrl-C, a service stop, a power cut) leaves them. Runs never overlap (the run lock)."""
    try:
        folders = [os.path.join(output, n) for n in sorted(os.listdir(output))]
    except OSError:
        return
    for folder in folders:
        splits = _splits(folder) if os.path.realpath(folder) not in recorded else []
        for split in splits:
            pruned.bytes_freed += _size(split)
            shutil.rmtree(split)
        pruned.orphans += bool(splits)


def prune_examples(metadata_path: str, keep: int, after_execution_id: int | None = None) -> Pruned:
    """Keeps the `keep` newest Examples of each output (ExampleGen's, Transform's: one folder of the
    pipeline root each), and any that the run whose steps were recorded after execution
    `after_execution_id` read or wrote (a run taken from the cache uses older copies: the served
    model's); prunes the others. keep=0 keeps all."""
    pruned = Pruned()
    if keep <= 0 or not os.path.exists(metadata_path):
        return pruned
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE
    store = metadata_store.MetadataStore(config)
    used = _used_after(store, after_execution_id) if after_execution_id is not None else set()
    by_output = defaultdict(list)
    for artifact in store.get_artifacts_by_type("Examples"):
        if artifact.uri and "://" not in artifact.uri:
            by_output[os.path.dirname(os.path.normpath(artifact.uri))].append(artifact)
    # Every recorded copy, whichever spelling of the output folder recorded it (a symlink, a relative path).
    recorded = {os.path.realpath(a.uri) for group in by_output.values() for a in group}
    for output, artifacts in by_output.items():
        _prune_orphans(output, recorded, pruned)
        live = sorted((a for a in artifacts if a.state == metadata_store_pb2.Artifact.LIVE), key=lambda a: a.id)
        kept = {a.id for a in live[-keep:]} | used
        for artifact in artifacts:
            splits = _splits(artifact.uri)
            if artifact.id in kept or (not splits and artifact.state == metadata_store_pb2.Artifact.DELETED):
                continue
            # Marked first: a run stopped between the two steps leaves files nothing uses, never a
            # LIVE artifact without its files.
            if artifact.state != metadata_store_pb2.Artifact.DELETED:
                artifact.state = metadata_store_pb2.Artifact.DELETED
                store.put_artifacts([artifact])
            for split in splits:
                size = _size(split)
                shutil.rmtree(split)
                pruned.bytes_freed += size
            pruned.artifacts += 1
    return pruned
