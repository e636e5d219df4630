"""What a local run reads, as one key: the configuration, the project's code, every data and lab file.
A scheduled run (`local_runner --if-changed`) with the key of the last finished run has nothing to do."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import tensorflow as tf

import components
import models
import pipeline
import serving
from components.image_example_gen import image_reader, lab_sources
from components.image_example_gen.driver import folder_fingerprint, labs_fingerprint
from pipeline.code_version import code_fingerprint
from pipeline.config import Config

LAST_RUN_FILE = "last_finished_run.json"
# The exact packages the run uses (the pipeline's and the tfjs converter's): a pull that only bumps one
# rebuilds the environment, and the run must not be skipped as unchanged.
LOCKS = Path(pipeline.__file__).resolve().parent.parent / "locks"


def inputs_key(config: Config, data_root: str) -> str:
    parts = [config.model_dump_json(), code_fingerprint(components, models, pipeline, serving, LOCKS, data_files=True),
             folder_fingerprint(data_root),
             labs_fingerprint({"labs_root": config.labs_path, "lab_sources": config.lab_sources()})]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def last_finished(run_dir: str) -> dict | None:
    try:
        with open(os.path.join(run_dir, LAST_RUN_FILE)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _write(run_dir: str, record: dict) -> None:
    path = os.path.join(run_dir, LAST_RUN_FILE)
    with open(path + ".tmp", "w") as f:
        json.dump(record, f)
    os.replace(path + ".tmp", path)


def forget_finished(run_dir: str) -> None:
    """The record of the last finished run belongs to the metadata store it was made with: a store moved
    aside (a fresh start) takes it along, or a run that fails before its first step skips the next."""
    try:
        os.remove(os.path.join(run_dir, LAST_RUN_FILE))
    except FileNotFoundError:
        pass


def record_finished(run_dir: str, key: str, finished_at: str, blessed: bool | None) -> None:
    _write(run_dir, {"inputs_key": key, "finished_at": finished_at, "blessed": blessed})


def _decodes(cell: lab_sources.Review, max_pixels: int) -> bool:
    try:
        image_reader.read_image(cell.path, max_pixels, cell.member)
        return True
    except (image_reader.BadImage, OSError, tf.errors.OpError):  # what the ingest refuses a cell for
        return False


def labs_with_cells(labs: dict[str, str], wanted: list[str], class_names: list[str], max_pixels: int,
                    eval_fraction: float, base_files: list[str]) -> list[str]:
    """Of the `wanted` labs, those whose folder holds a training cell the ingest would take (one image
    that decodes and is not an image of the base dataset, `base_files`, is enough; held-out cells never
    train): an unmounted share leaves an empty mount point, and a folder may hold only files the ingest
    refuses. The Trainer counts labs the same way. The base is read only when a lab has a cell."""
    base: set[str] | None = None

    def in_base(sha256: str) -> bool:
        nonlocal base
        if base is None:
            base = set(image_reader.file_digests(base_files, image_reader.max_file_bytes(max_pixels)))
        return sha256 in base

    if not set(wanted) & set(labs):
        return []
    try:
        # Every lab, as the ingest lists them: an image reviewed in two labs is one lab's cell.
        listings = {name: lab_sources.list_lab(name, folder, class_names) for name, folder in sorted(labs.items())}
        lab_sources.drop_cross_lab_duplicates(listings)

        def trains(name: str) -> bool:
            listing = listings[name]
            return any(_decodes(cell, max_pixels) and not in_base(cell.sha256)
                       for cell in listing.cells if listing.side(cell, eval_fraction) == "train")

        return [name for name in wanted if name in labs and trains(name)]
    finally:
        lab_sources.release_held_export()  # not held through the run this check comes before


def missing_labs(blessed_labs: list[str], labs: list[str], retired: list[str]) -> list[str]:
    """Labs the last blessed model was adapted to and gated on that this run would not read and that
    are not retired: without them it would train from the start and be gated on the base alone."""
    return sorted(set(blessed_labs) - set(labs) - set(retired))
