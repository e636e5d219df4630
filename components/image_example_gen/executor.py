"""ExampleGen executor for folders of labelled images (TFX's Beam-based ExampleGen, custom executor).

Splits: train and val from TRAIN (val: whole groups of copies of one cell, or a hash of each file's
path), eval from TEST. Inputs that cannot become examples are listed with their reason in
`ingest_report.json` inside the Examples artifact (also summarised as custom properties), and the
execution fails when their share passes the limit.
"""
from __future__ import annotations

import json
import os
import re
from typing import Any

import apache_beam as beam
import tensorflow as tf
from google.protobuf import json_format, struct_pb2
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs

from components.image_example_gen import image_reader, lab_sources
from models.features import BASE_SOURCE, LAB_NAME_PATTERN

REPORT_FILE = "ingest_report.json"
LAB_NAME = re.compile(LAB_NAME_PATTERN)
_REJECTS_DIR = ".decode_rejects"
BASE_COPY = ("the same image as the base dataset's {}: a base image is not a lab's cell (it would be trained "
             "on and scored as both)")


def ingest_params(exec_properties: dict[str, Any]) -> dict[str, Any]:
    """The image ingest settings packed into ExampleGen's custom_config (a Struct in an Any)."""
    raw = exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY)
    custom = example_gen_pb2.CustomConfig()
    if raw:
        json_format.Parse(raw, custom)
    params = struct_pb2.Struct()
    custom.custom_config.Unpack(params)
    return json_format.MessageToDict(params)


def failed_report_path(examples_uri: str) -> str:
    """<pipeline_root>/<ExampleGen>/failed_ingest/<execution>/ingest_report.json"""
    component_dir = os.path.dirname(os.path.dirname(examples_uri.rstrip("/")))
    return os.path.join(component_dir, "failed_ingest", os.path.basename(examples_uri.rstrip("/")), REPORT_FILE)


def _remove_tree(path: str) -> None:
    # tf.io.gfile, like the writes: the artifact URI may be gs:// on a cluster.
    if tf.io.gfile.exists(path):
        tf.io.gfile.rmtree(path)


def _write_json(path: str, data: dict) -> None:
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, "w") as f:
        json.dump(data, f, indent=2)


EXPORT_UNIT_CELLS = 256  # cells of one export decoded in a row: the export is read once for them
FILE_UNIT_CELLS = 32


def work_units(candidates: list[image_reader.Candidate]) -> list[list[image_reader.Candidate]]:
    """The candidates in groups that one worker decodes one after another. An export's cells stay
    together: spread one by one, a worker switched exports at every cell and read a whole export
    again each time (a thread keeps one in memory)."""
    by_export: dict[str | None, list[image_reader.Candidate]] = {}
    for candidate in candidates:
        by_export.setdefault(candidate.path if candidate.member else None, []).append(candidate)
    units = []
    for export, group in by_export.items():
        size = FILE_UNIT_CELLS if export is None else EXPORT_UNIT_CELLS
        units += [group[i:i + size] for i in range(0, len(group), size)]
    return units


class _DecodeImage(beam.DoFn):
    """Candidate -> (split, serialized tf.Example); bad inputs go to the `rejected` output."""

    def __init__(self, max_pixels: int):
        self._max_pixels = max_pixels

    def process(self, candidate: image_reader.Candidate):
        try:
            yield candidate.split, image_reader.to_example(candidate, self._max_pixels)
        except image_reader.BadImage as err:
            yield beam.pvalue.TaggedOutput("rejected", json.dumps(
                {"rel_path": candidate.rel_path, "split": candidate.split, "reason": str(err)}))
        except (OSError, tf.errors.OpError) as err:  # unreadable: permissions, vanished, I/O error
            detail = getattr(err, "strerror", None) or getattr(err, "message", None) or str(err)
            yield beam.pvalue.TaggedOutput("rejected", json.dumps(
                {"rel_path": candidate.rel_path, "split": candidate.split,
                 "reason": f"unreadable file ({detail})"}))

    def finish_bundle(self):
        lab_sources.release_held_export()  # finish_bundle runs on the thread that read the bundle's cells


def _same_folder_key(folder: str) -> str:
    """A folder as compared with another: a local one with its symlinks resolved, a bucket prefix as written."""
    return os.path.normpath(folder) if "://" in folder else os.path.realpath(folder)


def lab_folders(labs_root: str, named: dict[str, str]) -> dict[str, str]:
    """name -> folder of every lab source: each sub-folder of labs_root, and the named sources. One-line
    IngestError for a name the pipeline refuses, a folder not found, or one name given two folders."""
    folders = lab_sources.discover(labs_root)
    for name in sorted(set(folders) & set(named)):
        if _same_folder_key(folders[name]) != _same_folder_key(named[name]):
            raise image_reader.IngestError(f"lab '{name}' is both a folder of the labs folder ({folders[name]}) "
                                           f"and a named lab source ({named[name]}): rename one")
    sources = {**folders, **named}
    for name, root in sorted(sources.items()):
        if not LAB_NAME.match(name) or name == BASE_SOURCE:
            raise image_reader.IngestError(f"lab source name '{name}' must be 1-64 letters, digits, '.', '_' or '-', "
                                           f"starting with a letter or digit (and not '{BASE_SOURCE}')")
        if not tf.io.gfile.isdir(root):
            raise image_reader.IngestError(f"lab source '{name}': folder not found: {root}")
    return sources


class Executor(BaseExampleGenExecutor):
    """Reads <input_base>/{TRAIN,TEST}/<CLASS>/* (or <input_base>/<CLASS>/*) into tf.Examples."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        # Splitting needs the whole listing, so GenerateExamplesByBeam is overridden instead.
        raise NotImplementedError("image ExampleGen builds its splits in GenerateExamplesByBeam")

    def GenerateExamplesByBeam(self, pipeline: beam.Pipeline, exec_properties: dict[str, Any]):
        decoded = (
            pipeline
            | "ListedImages" >> beam.Create(work_units(self._candidates))
            | "Distribute" >> beam.Reshuffle()
            | "Cells" >> beam.FlatMap(lambda unit: unit)
            | "DecodeImages" >> beam.ParDo(_DecodeImage(int(self._params["max_pixels"]))).with_outputs(
                "rejected", main="examples"))
        _ = decoded.rejected | "WriteRejects" >> beam.io.WriteToText(
            self._rejects_prefix, file_name_suffix=".jsonl")
        by_split = decoded.examples | "BySplit" >> beam.Partition(
            lambda item, n: image_reader.SPLITS.index(item[0]), len(image_reader.SPLITS))
        return {split: by_split[i] | f"Payload[{split}]" >> beam.Values()
                for i, split in enumerate(image_reader.SPLITS)}

    def _list_labs(self, class_names: list[str]) -> dict:
        """name -> (candidates, refused files) of every lab source: each sub-folder of labs_root, and
        the named lab_sources."""
        labs_root = self._params.get("labs_root") or ""
        sources = lab_folders(labs_root, self._params.get("lab_sources") or {})
        self._stray_rejects = [image_reader.Rejected(r.rel_path, None, r.reason)
                               for r in lab_sources.stray_files(labs_root)]
        self._lab_listings = {name: lab_sources.list_lab(name, root, class_names)
                              for name, root in sorted(sources.items())}
        lab_sources.drop_cross_lab_duplicates(self._lab_listings)
        return {name: image_reader.lab_candidates(name, listing, class_names,
                                                  float(self._params.get("lab_eval_fraction", 0.3)))
                for name, listing in self._lab_listings.items()}

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        self._params = ingest_params(exec_properties)
        examples = artifact_utils.get_single_instance(output_dict[standard_component_specs.EXAMPLES_KEY])
        root = exec_properties[standard_component_specs.INPUT_BASE_KEY]
        if f"{image_reader.TRAIN_DIR}/" in str(exec_properties.get(standard_component_specs.INPUT_CONFIG_KEY, "")) \
                and not image_reader.has_split_folders(root):
            # The layout assumed when the spec was compiled (a bucket is not probed): its patterns would
            # match nothing, and the driver's fingerprint would never change as images do.
            raise image_reader.IngestError(
                f"{root} has no {image_reader.TRAIN_DIR}/ folder: a remote dataset needs the Kaggle layout "
                f"({image_reader.TRAIN_DIR}/<CLASS>/*, {image_reader.TEST_DIR}/<CLASS>/*)")
        self._candidates, listing_rejects = image_reader.list_source(
            root, list(self._params["class_names"]), self._params["val_fraction"],
            self._params["hash_split_eval_fraction"], self._params["val_split"], int(self._params["max_pixels"]))
        labs = self._list_labs(list(self._params["class_names"]))
        base_listing_rejects = list(listing_rejects)
        listing_rejects += self._stray_rejects
        lab_cells: dict[str, list[str]] = {}
        for listing in self._lab_listings.values():
            for cell in listing.cells:
                lab_cells.setdefault(cell.sha256, []).append(cell.rel_path)
        copies = image_reader.base_copies(self._candidates, lab_cells,
                                          image_reader.max_file_bytes(int(self._params["max_pixels"])))
        for candidates, refused in labs.values():
            self._candidates += [c for c in candidates if c.rel_path not in copies]
            listing_rejects += refused + [image_reader.Rejected(c.rel_path, None, BASE_COPY.format(copies[c.rel_path]))
                                          for c in candidates if c.rel_path in copies]
        rejects_dir = os.path.join(examples.uri, _REJECTS_DIR)
        self._rejects_prefix = os.path.join(rejects_dir, "rejects")

        super().Do(input_dict, output_dict, exec_properties)

        decode_rejects = []
        for path in tf.io.gfile.glob(self._rejects_prefix + "*"):
            with tf.io.gfile.GFile(path) as f:
                decode_rejects += [image_reader.Rejected(**json.loads(line)) for line in f if line.strip()]
        _remove_tree(rejects_dir)

        max_bad = float(self._params["max_bad_fraction"])
        rejects = listing_rejects + decode_rejects
        report = image_reader.summarize(self._candidates, rejects, max_bad)
        # The bad-share limit guards the base dataset (a broken mount, a wrong folder). A lab's refused
        # files are listed and never stop the run: that would throw its good cells away with them.
        base_candidates = [c for c in self._candidates if c.source == BASE_SOURCE]
        base_paths = {c.rel_path for c in base_candidates}
        base = image_reader.summarize(
            base_candidates, base_listing_rejects + [r for r in decode_rejects if r.rel_path in base_paths], max_bad)
        report["base_rejected_fraction"] = base["rejected_fraction"]
        problem = None
        empty = [s for s, c in report["splits"].items() if c["examples"] == 0]
        if empty:
            problem = f"split(s) {', '.join(empty)} have no valid images after rejecting bad inputs"
        elif base["rejected_fraction"] > max_bad:
            top = ", ".join(f"{k}: {v}" for k, v in sorted(base["rejected_by_reason"].items(), key=lambda kv: -kv[1])[:3])
            problem = (f"{base['rejected']} of {base['inputs']} inputs of the base dataset rejected "
                       f"({base['rejected_fraction']:.1%} > limit {max_bad:.1%}; {top})")
        elif missing := [n for n in self._params["class_names"] if not report["splits"]["train"]["per_class"].get(n)]:
            # A class never trained on: its output would never be learnt, and the review score would
            # have no centre for it.
            problem = f"no training images of {', '.join(missing)} (every class needs some)"
        bad_paths = {r.rel_path for r in decode_rejects} | set(copies)
        report["labs"] = {name: image_reader.lab_summary(self._lab_listings[name], candidates, bad_paths)
                          for name, (candidates, _) in labs.items()}
        report["val_split"] = self._params["val_split"]
        # Which side a lab's cell is on depends on it: the next run must split the same way (local_runner).
        report["lab_eval_fraction"] = float(self._params.get("lab_eval_fraction", 0.3))
        report["status"] = "failed" if problem else "ok"
        if problem:
            # Leave no examples that could pass for a finished ingest (TFX also removes the outputs
            # of a failed execution), and keep the report beside the artifact folder to read.
            for split in image_reader.SPLITS:
                _remove_tree(artifact_utils.get_split_uri([examples], split))
            report_path = failed_report_path(examples.uri)
            _write_json(report_path, report)
            raise image_reader.IngestError(f"{problem}; see {report_path}")
        report_path = os.path.join(examples.uri, REPORT_FILE)
        _write_json(report_path, report)

        examples.set_int_custom_property("ingest_inputs", report["inputs"])
        examples.set_int_custom_property("ingest_rejected", report["rejected"])
        examples.set_string_custom_property("ingest_report", report_path)
