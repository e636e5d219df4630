"""The ExampleGen's driver: TFX's file-based driver with a fingerprint that sees file names.

TFX fingerprints a split's files by their count, total size and modification times. Moving an image
to another class folder (a corrected label) keeps all three, so a cached run would keep the old
label; and files in nested folders escape the split patterns. This fingerprint adds every file under
the data root, at any depth, by its path relative to the root, size and modification time; and so does every lab source folder (a new review export
changes it, so the run is not taken from the cache).
"""
from __future__ import annotations

import hashlib
import os

import tensorflow as tf
# tfx.v1 exposes no driver classes; the file-based ExampleGens use these.
from tfx.components.example_gen import driver, input_processor, utils

from components.image_example_gen import executor, lab_sources


def folder_fingerprint(root: str, lab: bool = False) -> str:
    """sha256 over (relative path, size, modification time) of every file under root, in sorted order.
    TensorFlow gives the time in whole seconds (in a nanosecond field): a same-size rewrite within the
    second is not seen. Read as the ingest reads a folder: without hidden files and hidden or system
    folders (lab_sources.walk_files). A lab's folder is a share its people write to: a file or folder that
    cannot be read (a dangling link, a folder of another user) is in it by its name alone, for the ingest
    to report; elsewhere that raises tf.errors.OpError."""
    entries = []
    unreadable: list[tuple[str, str]] | None = [] if lab else None
    for path in lab_sources.walk_files(root, unreadable):
        try:
            stat = tf.io.gfile.stat(path)
        except tf.errors.OpError:
            if not lab:
                raise
            entries.append(f"{os.path.relpath(path, root)}\0unreadable")
            continue
        entries.append(f"{os.path.relpath(path, root)}\0{stat.length}\0{stat.mtime_nsec}")
    entries += [f"{os.path.relpath(folder, root)}\0unreadable folder" for folder, _ in unreadable or []]
    digest = hashlib.sha256("\n".join(sorted(entries)).encode("utf-8", "surrogateescape"))
    return f"files:{len(entries)},tree:{digest.hexdigest()}"


class ImageFolderInputProcessor(input_processor.FileBasedInputProcessor):
    def __init__(self, input_base_uri: str, splits, range_config=None):
        super().__init__(input_base_uri, splits, range_config)
        self._root = input_base_uri

    def get_input_fingerprint(self, span, version):
        return f"{super().get_input_fingerprint(span, version)}\n{folder_fingerprint(self._root)}"


def labs_fingerprint(params: dict) -> str:
    """The fingerprints of the lab folders the executor will read (labs_root and each named source)."""
    folders = ([params["labs_root"]] if params.get("labs_root") else []) + sorted(
        (params.get("lab_sources") or {}).values())
    return "\n".join(f"lab {folder}: {folder_fingerprint(folder, lab=True) if tf.io.gfile.isdir(folder) else 'missing'}"
                     for folder in folders)


class ImageFolderDriver(driver.FileBasedDriver):
    def resolve_exec_properties(self, exec_properties, pipeline_info, component_info):
        exec_properties = super().resolve_exec_properties(exec_properties, pipeline_info, component_info)
        labs = labs_fingerprint(executor.ingest_params(exec_properties))
        if labs:
            exec_properties[utils.FINGERPRINT_PROPERTY_NAME] += "\n" + labs
        return exec_properties

    def get_input_processor(self, splits, range_config=None, input_base_uri=None):
        assert input_base_uri
        return ImageFolderInputProcessor(input_base_uri, splits, range_config)
