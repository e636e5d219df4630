"""The ExampleGen's fingerprint sees what TFX's own misses: a file moved to another class folder with
its size and modification time kept (a corrected label), and files in nested folders."""
from __future__ import annotations

import os

from tfx.components.example_gen import utils
from tfx.proto import example_gen_pb2

from components.image_example_gen.driver import ImageFolderInputProcessor, folder_fingerprint
from testkit.images import make_dataset

SPLITS = [example_gen_pb2.Input.Split(name="train", pattern="TRAIN/*/*"),
          example_gen_pb2.Input.Split(name="eval", pattern="TEST/*/*")]


def fingerprint(root) -> str:
    processor = ImageFolderInputProcessor(str(root), SPLITS)
    span, version = processor.resolve_span_and_version()
    return processor.get_input_fingerprint(span, version)


def tfx_fingerprint(root) -> str:
    return utils.calculate_splits_fingerprint_span_and_version(str(root), SPLITS)[0]


def test_a_relabel_that_keeps_size_and_mtime_changes_the_fingerprint(tmp_path):
    root = make_dataset(tmp_path / "data", {"TRAIN": 2, "TEST": 1})
    before, tfx_before = fingerprint(root), tfx_fingerprint(root)
    src = next((root / "TRAIN" / "MONOCYTE").iterdir())
    stat = src.stat()
    dest = root / "TRAIN" / "NEUTROPHIL" / src.name
    os.rename(src, dest)
    os.utime(dest, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert tfx_fingerprint(root) == tfx_before  # what TFX alone sees: nothing changed
    assert fingerprint(root) != before


def test_a_file_in_a_nested_folder_counts(tmp_path):
    root = make_dataset(tmp_path / "data", {"TRAIN": 2, "TEST": 1})
    nested = root / "TRAIN" / "EOSINOPHIL" / "slide7"
    nested.mkdir()
    (nested / "cell1.jpeg").write_bytes(b"read by the ingest, at any depth")
    before, tfx_before = fingerprint(root), tfx_fingerprint(root)
    folder_times = nested.stat()
    (nested / "cell1.jpeg").rename(nested / "cell2.jpeg")  # same size, same time: only the name moves
    os.utime(nested, ns=(folder_times.st_atime_ns, folder_times.st_mtime_ns))
    assert tfx_fingerprint(root) == tfx_before
    assert fingerprint(root) != before


def test_the_same_tree_gives_the_same_fingerprint(tmp_path):
    a = make_dataset(tmp_path / "a", {"TRAIN": 2, "TEST": 1})
    assert folder_fingerprint(str(a)) == folder_fingerprint(str(a))
    assert folder_fingerprint(str(a)).startswith("files:")
