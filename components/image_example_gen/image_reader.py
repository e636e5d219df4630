"""Reading a folder of labelled images: listing, splitting, checking and encoding as tf.Examples.

Files are read through tf.io.gfile, so a data folder can be local or remote (gs://) when the
pipeline runs on a cluster. Every rejected input carries a reason; nothing is dropped silently.
"""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import io
import os
from typing import Iterable

import numpy as np
import tensorflow as tf
from PIL import Image, UnidentifiedImageError

from components.image_example_gen import cell_groups
from components.image_example_gen.stable_hash import hash_fraction
from components.image_example_gen import lab_sources
from models.features import (BASE_SOURCE, HEIGHT_KEY, IMAGE_KEY, LABEL_KEY, LABEL_NAME_KEY, PATH_KEY, SOURCE_KEY,
                             WIDTH_KEY)

gfile = tf.io.gfile


IMAGE_EXTENSIONS = lab_sources.IMAGE_EXTENSIONS  # one list for the dataset and the labs' exports
TRAIN_DIR, TEST_DIR = "TRAIN", "TEST"
SPLITS = ("train", "val", "eval")


class IngestError(RuntimeError):
    """The source cannot give a usable dataset; the message is one line for the user."""


@dataclasses.dataclass(frozen=True)
class Candidate:
    path: str          # absolute path of the file
    rel_path: str      # path relative to the data root: what the split hash and the report use
    split: str         # train | val | eval
    label_name: str
    label: int
    source: str = BASE_SOURCE  # or a lab's name
    member: str | None = None  # the file inside a review export zip (path is the zip)
    sha256: str | None = None  # a lab cell's image as listed: bytes read later must still be these


@dataclasses.dataclass(frozen=True)
class Rejected:
    rel_path: str
    split: str | None
    reason: str


def resolve_data_root(data_dir: str) -> str:
    """The folder holding TRAIN/TEST (or the class folders), for the layouts the Kaggle archive has.

    Accepts `<dir>`, `<dir>/images`, `<dir>/dataset2-master/images`; raises IngestError otherwise.
    """
    if not gfile.isdir(data_dir):
        raise IngestError(f"data directory not found: {data_dir}")
    for sub in ("", "images", os.path.join("dataset2-master", "images"),
                os.path.join("dataset2-master", "dataset2-master", "images")):
        root = os.path.join(data_dir, sub) if sub else data_dir
        if gfile.isdir(os.path.join(root, TRAIN_DIR)):
            return root.rstrip("/")
    return data_dir.rstrip("/")


def has_split_folders(root: str) -> bool:
    return gfile.isdir(os.path.join(root, TRAIN_DIR))


def _list_class_folders(folder: str, split_of, class_names: list[str], root: str,
                        candidates: list, rejected: list) -> None:
    for entry in sorted(e.rstrip("/") for e in gfile.listdir(folder)):
        class_dir = os.path.join(folder, entry)
        if lab_sources.ignored_name(entry):
            continue  # .DS_Store, a share's @eaDir thumbnails, a notebook's checkpoints: not inputs
        if not gfile.isdir(class_dir):
            rel = class_dir[len(root):].lstrip("/")
            rejected.append(Rejected(rel, split_of(rel), "not in a class folder"))
            continue
        for path in sorted(lab_sources.walk_files(class_dir)):
            rel = path[len(root):].lstrip("/")
            split = split_of(rel)
            if entry not in class_names:
                rejected.append(Rejected(rel, split, f"unknown class folder '{entry}'"))
            elif not path.lower().endswith(IMAGE_EXTENSIONS):
                rejected.append(Rejected(rel, split, "not an image file extension"))
            else:
                candidates.append(Candidate(path, rel, split, entry, class_names.index(entry)))


def max_file_bytes(max_pixels: int) -> int:
    """The largest file an image within max_pixels can be: 8 bytes a pixel (16-bit RGBA, stored), plus
    headers. A larger file is refused before it is read into memory."""
    return 8 * max_pixels + 2**20


def read_bytes(path: str, max_bytes: int | None = None) -> bytes:
    """The file's bytes; BadImage for one over max_bytes, of which no more than that is read (a bounded
    read, not a stat first: one request less per image on a bucket)."""
    with gfile.GFile(path, "rb") as f:
        if max_bytes is None:
            return f.read()
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise BadImage(f"file too large: over {max_bytes} bytes, more than an image within ingest.max_pixels takes")
    return data


def list_source(data_root: str, class_names: list[str], val_fraction: float,
                eval_fraction: float, val_split: str,
                max_pixels: int | None = None) -> tuple[list[Candidate], list[Rejected]]:
    """Lists the image files of a source and assigns each to train / val / eval.

    With TRAIN/ and TEST/ folders: eval is TEST, and val is a share of TRAIN.
    Without them (class folders at the top): all three splits are shares of the images.
    val_split "hash": each file by a hash of its path. "cell_groups": whole groups of augmented copies
    of one cell (cell_groups.py; reads every image once, and decodes none over max_pixels), so val
    (and a hashed eval) holds new cells.
    """
    candidates: list[Candidate] = []
    rejected: list[Rejected] = []
    if has_split_folders(data_root):
        test_dir = os.path.join(data_root, TEST_DIR)
        if not gfile.isdir(test_dir):
            raise IngestError(f"{data_root} has {TRAIN_DIR}/ but no {TEST_DIR}/ folder: the eval split would be empty")
        _list_class_folders(os.path.join(data_root, TRAIN_DIR),
                            lambda rel: "val" if hash_fraction(rel) < val_fraction else "train",
                            class_names, data_root, candidates, rejected)
        _list_class_folders(test_dir, lambda rel: "eval", class_names, data_root, candidates, rejected)
    else:
        def split_of(rel: str) -> str:
            h = hash_fraction(rel)
            return "eval" if h < eval_fraction else "val" if h < eval_fraction + val_fraction else "train"
        _list_class_folders(data_root, split_of, class_names, data_root, candidates, rejected)
    if val_split == "cell_groups":
        try:
            candidates = cell_groups.split_by_cell_groups(
                candidates, val_fraction, None if has_split_folders(data_root) else eval_fraction,
                lambda path: read_bytes(path, max_file_bytes(max_pixels) if max_pixels else None), max_pixels)
        except cell_groups.TooManyImages as err:
            raise IngestError(str(err)) from None
    elif val_split != "hash":
        raise IngestError(f"unknown val_split '{val_split}' (hash or cell_groups)")
    for split in SPLITS:
        if not any(c.split == split for c in candidates):
            raise IngestError(
                f"split '{split}' has no images under {data_root} "
                f"(expected {TRAIN_DIR}/<CLASS>/* and {TEST_DIR}/<CLASS>/* with classes {', '.join(class_names)})")
    return candidates, rejected


class BadImage(ValueError):
    """An input that cannot become an example; str() is the reason for the report."""


def read_image(path: str, max_pixels: int, member: str | None = None,
               sha256: str | None = None) -> tuple[bytes, int, int]:
    """Returns (encoded bytes, height, width) of an RGB image ready for tf.io.decode_image.

    RGB JPEGs keep their original bytes; grayscale, RGBA, palette, PNG, BMP, GIF (its first frame) and
    WebP inputs are converted to RGB and stored as PNG (lossless). Raises BadImage with the reason otherwise.
    """
    if member:
        try:
            data = lab_sources.read_member(path, member)
        except (KeyError, *lab_sources.DAMAGED_ZIP) as err:  # the export was replaced after it was listed
            raise BadImage(f"the export changed during the run ({lab_sources.first_line(err)}); run again") from None
    else:
        data = read_bytes(path, max_file_bytes(max_pixels))
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:  # rewritten in place meanwhile
        raise BadImage("the file changed during the run (not the image that was reviewed); run again")
    if not data:
        raise BadImage("empty file (0 bytes)")
    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise BadImage("not an image (content is not a readable image format)") from None
    except Image.DecompressionBombError:
        # Pillow refuses, from the header alone, what is far over its own limit (twice 89 M pixels).
        raise BadImage(f"image too large: its header declares over {2 * Image.MAX_IMAGE_PIXELS} pixels") from None
    except MemoryError:
        raise
    except Exception as err:  # noqa: BLE001 - a damaged header raises whatever its plugin raises
        raise BadImage(f"truncated or corrupt image data ({_reason(err)})") from None
    width, height = img.size
    if width * height > max_pixels:
        raise BadImage(f"image too large: {width}x{height} pixels exceeds the limit of {max_pixels}")
    if img.format not in ("JPEG", "PNG", "BMP", "GIF", "WEBP"):
        raise BadImage(f"unsupported image format {img.format}")
    try:
        img.load()
    except MemoryError:
        raise
    except Exception as err:  # noqa: BLE001 - as above: ValueError, struct.error, IndexError, ...
        raise BadImage(f"truncated or corrupt image data ({_reason(err)})") from None
    if img.format == "JPEG" and img.mode == "RGB":
        return data, height, width
    return _as_rgb_png(img), height, width


def _reason(err: Exception) -> str:
    return f"{type(err).__name__}: {lab_sources.first_line(err)}"


def _as_rgb_png(img: Image.Image) -> bytes:
    if img.mode.startswith("I"):
        img = sixteen_bit_to_8(img)
    # A BMP's fourth channel is not read as transparency: TF Serving's decoder does not read it either.
    if img.format != "BMP" and (img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))  # slides are light: white behind
        rgb = Image.alpha_composite(canvas, rgba).convert("RGB")
    else:
        rgb = img.convert("RGB")
    out = io.BytesIO()
    rgb.save(out, format="PNG")
    return out.getvalue()


def sixteen_bit_to_8(img: Image.Image) -> Image.Image:
    """A 16-bit greyscale image as 8 bits (v * 255 / 65535, rounded: at most one level from TensorFlow's
    PNG decoder, which keeps the high byte), so training sees what TF Serving and the browser see;
    Pillow's convert("RGB") would clip every value above 255 to white."""
    values = np.asarray(img, dtype=np.float64)
    return Image.fromarray(np.clip(np.round(values * 255.0 / 65535.0), 0, 255).astype(np.uint8), "L")


def to_example(candidate: Candidate, max_pixels: int) -> bytes:
    """Serialized tf.Example for one image file; raises BadImage."""
    data, height, width = read_image(candidate.path, max_pixels, candidate.member, candidate.sha256)

    def b(v: bytes):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))

    def i(v: int):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[v]))

    return tf.train.Example(features=tf.train.Features(feature={
        IMAGE_KEY: b(data),
        LABEL_KEY: i(candidate.label),
        LABEL_NAME_KEY: b(candidate.label_name.encode()),
        PATH_KEY: b(candidate.rel_path.encode()),
        SOURCE_KEY: b(candidate.source.encode()),
        HEIGHT_KEY: i(height),
        WIDTH_KEY: i(width),
    })).SerializeToString()


def summarize(candidates: Iterable[Candidate], rejected: list[Rejected], max_bad_fraction: float) -> dict:
    """The ingest report: counts per split and every rejected input with its reason.

    `rejected` holds both kinds: inputs refused at listing (never candidates) and candidates that
    failed to decode.
    """
    candidates = list(candidates)
    bad_paths = {r.rel_path for r in rejected}
    inputs = len({c.rel_path for c in candidates} | bad_paths)
    per_split = {}
    for split in SPLITS:
        counts = collections.Counter(c.label_name for c in candidates if c.split == split and c.rel_path not in bad_paths)
        per_split[split] = {"examples": sum(counts.values()), "per_class": dict(sorted(counts.items()))}
    reasons: dict[str, int] = {}
    for r in rejected:
        key = r.reason.split(" (")[0].split(":")[0]
        reasons[key] = reasons.get(key, 0) + 1
    return {
        "inputs": inputs,
        "examples": inputs - len(bad_paths),
        "rejected": len(bad_paths),
        "rejected_fraction": round(len(bad_paths) / inputs, 6) if inputs else 0.0,
        "max_bad_fraction": max_bad_fraction,
        "splits": per_split,
        "rejected_by_reason": reasons,
        "rejected_inputs": [dataclasses.asdict(r) for r in sorted(rejected, key=lambda r: r.rel_path)],
    }


def file_digests(paths: Iterable[str], max_bytes: int) -> dict[str, str]:
    """{sha256 of a file's bytes: its path} for each file that can be read and is within max_bytes (the
    others are the decode step's to report)."""
    found: dict[str, str] = {}
    for path in paths:
        try:
            found[hashlib.sha256(read_bytes(path, max_bytes)).hexdigest()] = path
        except (tf.errors.OpError, BadImage):
            continue
    return found


def base_copies(base: list[Candidate], lab_cells: dict[str, list[str]], max_bytes: int) -> dict[str, str]:
    """{a lab cell's rel_path: the base image whose bytes it repeats}; lab_cells: sha256 -> the lab cells'
    rel_paths. A copy would let a base TEST image train, or a base training image score a lab; the base
    images are read for it only when a lab has cells."""
    if not lab_cells:
        return {}
    rel_of = {c.path: c.rel_path for c in base}
    return {rel_path: rel_of[path] for digest, path in file_digests(rel_of, max_bytes).items()
            for rel_path in lab_cells.get(digest, [])}


def lab_candidates(name: str, listing: lab_sources.LabListing, class_names: list[str],
                   eval_fraction: float) -> tuple[list[Candidate], list[Rejected]]:
    """A lab's latest reviews as candidates (train or eval by cell), and its refused files."""
    candidates = [Candidate(r.path, r.rel_path, listing.side(r, eval_fraction), r.label,
                            class_names.index(r.label), name, r.member, r.sha256) for r in listing.cells]
    return candidates, [Rejected(r.rel_path, None, r.reason) for r in listing.refused]


def lab_summary(listing: lab_sources.LabListing, candidates: list[Candidate], bad_paths: set[str]) -> dict:
    """What the ingest report says of one lab."""
    usable = [c for c in candidates if c.rel_path not in bad_paths]
    return {"cells": len(usable), "train": sum(c.split == "train" for c in usable),
            "eval": sum(c.split == "eval" for c in usable), "not_trained": listing.not_trained,
            "duplicates_collapsed": listing.duplicates, "relabelled": listing.relabelled,
            "refused": len(listing.refused) + len(candidates) - len(usable),
            "exports_of_other_labs": listing.other_lab_exports, "incomplete_exports": listing.incomplete_exports}
