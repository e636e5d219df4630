"""Which TEST_SIMPLE original each TEST image is a copy of, so that TEST can be reported per cell.

TEST holds augmented copies (rotated <= 20 degrees, shifted, flipped, sheared) of TEST_SIMPLE's
originals, and no file name says which. A copy keeps the colour make-up of its original's centre (its
edges are filled in by the augmentation), so each TEST image goes to the original of its class whose
centre is nearest in colour (components/image_example_gen/cell_groups.py's signature). That is
approximate where two originals of a class look alike: the dataset made about as many copies of each
original of a class, so uneven copies per cell within a class (the report lists them per class) show
where. Originals with the same bytes are one cell (the dataset's TEST_SIMPLE/EOSINOPHIL holds two such
pairs).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image

from components.image_example_gen.cell_groups import colour_signature

# Share of each side cut off before the signature: the augmentation's fill-in lies at the edges.
# Chosen on how evenly TEST's copies spread over their originals (the dataset makes equal numbers per
# original), not on any model's answers.
EDGE = 0.15


def centre_signature(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        w, h = image.size
        return colour_signature(image.crop((round(w * EDGE), round(h * EDGE),
                                            round(w * (1 - EDGE)), round(h * (1 - EDGE)))))


def cell_names(originals: list[Path]) -> list[str]:
    """Each original's cell, named CLASS/file; a file with the same bytes as an earlier one takes its name."""
    first: dict[str, str] = {}
    return [first.setdefault(hashlib.sha256(p.read_bytes()).hexdigest(), f"{p.parent.name}/{p.name}")
            for p in originals]


def assign(copies: list[Path], copy_labels: np.ndarray, originals: list[Path],
           original_labels: np.ndarray) -> list[str]:
    """The cell (see cell_names) of each copy: the nearest original of the copy's class."""
    names = cell_names(originals)
    original_labels = np.asarray(original_labels)
    signatures = np.stack([centre_signature(p) for p in originals])
    out = []
    for path, label in zip(copies, copy_labels):
        candidates = np.flatnonzero(original_labels == label)
        if not candidates.size:
            raise ValueError(f"{path}: no TEST_SIMPLE original of its class")
        distances = np.linalg.norm(signatures[candidates] - centre_signature(path), axis=1)
        out.append(names[candidates[int(distances.argmin())]])
    return out
