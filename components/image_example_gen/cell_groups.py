"""Which training images are augmented copies of the same original cell, and a validation split
made of whole groups.

The Kaggle TRAIN holds ~280 originals, each saved 13-155 times rotated, shifted, flipped and sheared,
and the file names carry no id of the original. A random split therefore puts copies of one cell on
both sides, and `val` measures memory, not new cells. Those changes move pixels but keep the frame's
colour make-up, so images are grouped by a colour histogram (8 levels per channel, square-rooted)
with average-linkage clustering cut at a fixed distance, per class. A group may hold a few originals;
what matters is that one original's copies are not spread over two groups.
"""
from __future__ import annotations

import dataclasses
import io
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence

import numpy as np
from PIL import Image
from scipy.cluster.hierarchy import fcluster, linkage

from components.image_example_gen.stable_hash import hash_fraction

LEVELS = 8               # per channel: 512 colour bins
THUMBNAIL = (80, 60)     # enough pixels for a stable histogram, fast to decode
CUT = 0.2                # clustering distance (Euclidean between square-rooted histograms)
# Average linkage keeps all n^2/2 distances: 20,000 images of one class need about 1.6 GB.
MAX_IMAGES_PER_CLASS = 20_000
_READ_THREADS = 8        # reads may be remote (gs://): overlap them


class TooManyImages(ValueError):
    """A class has more images than grouping handles; str() is one line for the user."""


def colour_signature(image: Image.Image) -> np.ndarray:
    pixels = np.asarray(image.convert("RGB").resize(THUMBNAIL), dtype=np.int64) * LEVELS // 256
    bins = (pixels[..., 0] * LEVELS + pixels[..., 1]) * LEVELS + pixels[..., 2]
    counts = np.bincount(bins.ravel(), minlength=LEVELS ** 3).astype(np.float64)
    return np.sqrt(counts / counts.sum())


def signature_of_file(data: bytes, max_pixels: int | None = None) -> np.ndarray | None:
    """The signature of an encoded image, or None when it does not decode or its header declares more
    than max_pixels (it is not decoded then; the ingest rejects it later)."""
    try:
        image = Image.open(io.BytesIO(data))
        if max_pixels is not None and image.width * image.height > max_pixels:
            return None
        return colour_signature(image)
    except Exception:  # noqa: BLE001 - any undecodable input simply stays a group of its own
        return None


def group_ids(signatures: np.ndarray, cut: float = CUT) -> np.ndarray:
    """Group number (from 0) of each signature; a single image is its own group."""
    if len(signatures) < 2:
        return np.zeros(len(signatures), dtype=np.int64)
    return fcluster(linkage(signatures, "average"), cut, "distance") - 1


@dataclasses.dataclass(frozen=True)
class GroupedFiles:
    key: str                 # the group's first file: a name that does not depend on clustering order
    members: tuple[str, ...]


def group_files(paths: Sequence[str], read_bytes: Callable[[str], bytes], cut: float = CUT,
                max_pixels: int | None = None) -> list[GroupedFiles]:
    """Groups the images of one class (read_bytes(path) reads one). Unreadable or undecodable files,
    and those over max_pixels, are groups of their own."""
    if len(paths) > MAX_IMAGES_PER_CLASS:
        raise TooManyImages(f"{len(paths)} images in one class is more than cell grouping handles "
                            f"({MAX_IMAGES_PER_CLASS}); set ingest.val_split=hash")

    def signature(path: str) -> np.ndarray | None:
        try:
            data = read_bytes(path)
        except Exception:  # noqa: BLE001 - unreadable: the decode step rejects it with its reason
            return None
        return signature_of_file(data, max_pixels)

    with ThreadPoolExecutor(_READ_THREADS) as pool:
        signatures = list(pool.map(signature, paths))
    readable = [i for i, s in enumerate(signatures) if s is not None]
    groups: dict[int, list[str]] = {}
    if readable:
        ids = group_ids(np.stack([signatures[i] for i in readable]), cut)
        for i, g in zip(readable, ids):
            groups.setdefault(int(g), []).append(paths[i])
    singles = [[paths[i]] for i, s in enumerate(signatures) if s is None]
    members = [sorted(m) for m in list(groups.values()) + singles]
    return sorted((GroupedFiles(m[0], tuple(m)) for m in members), key=lambda g: g.key)


def choose_val_groups(groups: Sequence[GroupedFiles], val_fraction: float,
                      order_key: Callable[[str], float]) -> set[str]:
    """Keys of the groups that form `val`: taken in a stable pseudo-random order (order_key of the
    group key) until they hold val_fraction of the images, always leaving one group for training."""
    total = sum(len(g.members) for g in groups)
    chosen: set[str] = set()
    taken = 0
    for group in sorted(groups, key=lambda g: order_key(g.key)):
        if taken >= val_fraction * total or len(chosen) == len(groups) - 1:
            break
        chosen.add(group.key)
        taken += len(group.members)
    return chosen


def split_by_cell_groups(candidates: Sequence, val_fraction: float, eval_fraction: float | None,
                         read_bytes: Callable[[str], bytes], max_pixels: int | None = None) -> list:
    """Candidates (image_reader.Candidate) with `val`, and with eval_fraction also `eval`, made of
    whole cell groups per class. eval_fraction None: `eval` is a folder of its own (TEST) and stays."""
    pool = [c for c in candidates if eval_fraction is not None or c.split != "eval"]
    by_class: dict[int, list] = {}
    for c in pool:
        by_class.setdefault(c.label, []).append(c)
    split_of: dict[str, str] = {}
    path_of = {c.rel_path: c.path for c in pool}
    for members in by_class.values():
        # Grouped by the path relative to the data root, so the split is the same on every machine.
        groups = group_files([c.rel_path for c in members], lambda rel: read_bytes(path_of[rel]),
                             max_pixels=max_pixels)
        if eval_fraction is not None:
            eval_keys = choose_val_groups(groups, eval_fraction, lambda k: hash_fraction(k + "#eval"))
            split_of.update({p: "eval" for g in groups if g.key in eval_keys for p in g.members})
            groups = [g for g in groups if g.key not in eval_keys]
        val_keys = choose_val_groups(groups, val_fraction, hash_fraction)
        split_of.update({p: "val" if g.key in val_keys else "train" for g in groups for p in g.members})
    return [dataclasses.replace(c, split=split_of.get(c.rel_path, c.split)) for c in candidates]
