"""TFX's Pusher executor, except that a model the serving folder's newest version already holds, file
for file, is not pushed again.

A run with nothing changed gets the same model from the Trainer's cache, and the Evaluator, whose
baseline is now that model itself, blesses it again: TFX's Pusher would copy it to a new version.
TF Serving keeps the two newest versions (serving/config/models.config), so the copy would push out
the earlier, different model a rollback goes back to, and every browser would download the same
weights again. The pushed_model artifact then names the version already served, with
`already_served` set, and the TfjsPublisher finds that version already published.
"""
from __future__ import annotations

import hashlib
import os
import time

from absl import logging
from tfx.components.pusher import executor as tfx_pusher
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils

ALREADY_SERVED = "already_served"


def tree_digests(root: str) -> dict[str, str]:
    """{path relative to root: sha256 of its bytes} of every file under root (local or remote)."""
    digests = {}
    for folder, _, files in fileio.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            digest = hashlib.sha256()
            with fileio.open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
            digests[os.path.relpath(path, root)] = digest.hexdigest()
    return digests


# TFX's Pusher copies saved_model.pb last: a version folder without it is a push still going or cut short.
SAVED_MODEL = "saved_model.pb"
# A push takes seconds; a folder without saved_model.pb and untouched this long was cut short.
INTERRUPTED_AFTER_S = 3600


def _version_folders(base: str) -> list[str]:
    if not fileio.isdir(base):
        return []
    versions = [entry.rstrip("/") for entry in fileio.listdir(base)]
    return [v for v in versions if v.isdigit() and fileio.isdir(os.path.join(base, v))]


def newest_version(base: str) -> str | None:
    """The highest numeric version folder under a TF Serving model base that holds a whole push, or None."""
    whole = [v for v in _version_folders(base) if fileio.exists(os.path.join(base, v, SAVED_MODEL))]
    return max(whole, key=int) if whole else None


def remove_interrupted_pushes(base: str, now: float | None = None) -> list[str]:
    """Deletes the version folders of pushes cut short (no saved_model.pb, nothing written for an hour)
    and returns their versions. TF Serving counts such a folder among its newest versions and fails to
    load it, so the next push would leave one good version served, not two."""
    now = time.time() if now is None else now
    removed = []
    for version in _version_folders(base):
        folder = os.path.join(base, version)
        if fileio.exists(os.path.join(folder, SAVED_MODEL)):
            continue
        paths = [folder, *(os.path.join(d, name) for d, subdirs, files in fileio.walk(folder) for name in [*files, *subdirs])]
        last_write = max(fileio.stat(path).mtime_nsec for path in paths) / 1e9
        if last_write < now - INTERRUPTED_AFTER_S:
            fileio.rmtree(folder)
            removed.append(version)
    return removed


class Executor(tfx_pusher.Executor):
    def Do(self, input_dict, output_dict, exec_properties) -> None:
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination)
        if destination.WhichOneof("destination") == "filesystem" and self.CheckBlessing(input_dict):
            base = destination.filesystem.base_directory
            for cut_short in remove_interrupted_pushes(base):
                logging.warning("Pusher: deleted %s under %s, a push cut short (no %s)", cut_short, base, SAVED_MODEL)
            version = newest_version(base)
            model_path = self.GetModelPath(input_dict)
            if version and tree_digests(os.path.join(base, version)) == tree_digests(model_path):
                model_push = artifact_utils.get_single_instance(
                    output_dict[standard_component_specs.PUSHED_MODEL_KEY])
                io_utils.copy_dir(model_path, model_push.uri)  # as TFX's Pusher keeps it
                self._MarkPushed(model_push, pushed_destination=os.path.join(base, version), pushed_version=version)
                model_push.set_int_custom_property(ALREADY_SERVED, 1)
                logging.info("Pusher: version %s under %s is this model already; not pushed again", version, base)
                return
        super().Do(input_dict, output_dict, exec_properties)
